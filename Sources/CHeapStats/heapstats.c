#include "heapstats.h"
#include <malloc.h>

parley_heap_stats parley_heap_stats_now(void) {
    parley_heap_stats s = {0, 0};
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
    struct mallinfo2 m = mallinfo2();
    s.in_use = m.uordblks + m.hblkhd;
    s.free = m.fordblks;
#endif
    return s;
}

int parley_heap_release(void) {
#if defined(__GLIBC__)
    return malloc_trim(0);
#else
    return 0;
#endif
}
