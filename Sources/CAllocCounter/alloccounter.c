// Replaces the C allocator's entry points for the process that links this module (an executable
// defines them, so every shared library's calls reach these too) and counts each call before
// handing it to glibc's own implementation (__libc_malloc and its family). Counting is a relaxed
// atomic add: the tests read the counts around a block of work on one thread.
#define _GNU_SOURCE
#include "alloccounter.h"
#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
extern void *__libc_memalign(size_t, size_t);

static _Atomic int64_t allocations, reallocations, frees, bytes;

static inline void counted(size_t n) {
    atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&bytes, (int64_t)n, memory_order_relaxed);
}

void *malloc(size_t n) {
    counted(n);
    return __libc_malloc(n);
}

void *calloc(size_t count, size_t n) {
    counted(count * n);
    return __libc_calloc(count, n);
}

void *realloc(void *p, size_t n) {
    if (p == NULL) {
        counted(n);
    } else {
        atomic_fetch_add_explicit(&reallocations, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&bytes, (int64_t)n, memory_order_relaxed);
    }
    return __libc_realloc(p, n);
}

void free(void *p) {
    if (p != NULL) atomic_fetch_add_explicit(&frees, 1, memory_order_relaxed);
    __libc_free(p);
}

void *memalign(size_t alignment, size_t n) {
    counted(n);
    return __libc_memalign(alignment, n);
}

void *aligned_alloc(size_t alignment, size_t n) {
    counted(n);
    return __libc_memalign(alignment, n);
}

int posix_memalign(void **out, size_t alignment, size_t n) {
    if (alignment < sizeof(void *) || (alignment & (alignment - 1)) != 0) return EINVAL;
    counted(n);
    void *p = __libc_memalign(alignment, n);
    if (p == NULL) return ENOMEM;
    *out = p;
    return 0;
}

void *valloc(size_t n) {
    counted(n);
    return __libc_memalign((size_t)sysconf(_SC_PAGESIZE), n);
}

parley_alloc_counts parley_alloc_counts_now(void) {
    parley_alloc_counts c;
    c.allocations = atomic_load_explicit(&allocations, memory_order_relaxed);
    c.reallocations = atomic_load_explicit(&reallocations, memory_order_relaxed);
    c.frees = atomic_load_explicit(&frees, memory_order_relaxed);
    c.bytes = atomic_load_explicit(&bytes, memory_order_relaxed);
    return c;
}
