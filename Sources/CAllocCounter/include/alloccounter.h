#ifndef PARLEY_ALLOC_COUNTER_H
#define PARLEY_ALLOC_COUNTER_H
#include <stdint.h>

/// Counts of the heap calls made since the process started (every thread), for the allocation
/// tests: linking this module replaces malloc and its family in the whole process.
typedef struct {
    int64_t allocations;  // malloc, calloc, realloc of NULL, posix_memalign, aligned_alloc, memalign, valloc
    int64_t reallocations;  // realloc of a block already held
    int64_t frees;  // free of a block (not of NULL)
    int64_t bytes;  // bytes asked for by the allocations and reallocations
} parley_alloc_counts;

parley_alloc_counts parley_alloc_counts_now(void);

#endif
