#ifndef PARLEY_HEAPSTATS_H
#define PARLEY_HEAPSTATS_H
#include <stddef.h>

/// What the C heap holds, over every malloc arena (glibc's mallinfo2).
typedef struct {
    size_t in_use;   ///< bytes allocated now (including large blocks mapped on their own)
    size_t free;     ///< bytes malloc keeps for reuse without giving them back to the system
} parley_heap_stats;

parley_heap_stats parley_heap_stats_now(void);

/// Gives the free memory malloc keeps back to the system (glibc's malloc_trim(0): free pages
/// inside every arena, not only at the top). Returns 1 if any was released.
int parley_heap_release(void);

#endif
