// Counts the heap allocations of the whole test process, for the test that a training step allocates nothing.
#pragma once

/// Allocations (malloc, calloc, realloc, posix_memalign, aligned_alloc, memalign) the calling thread has made.
unsigned long allocation_count(void);

/// Those of them of 1 KiB or more: buffers, rather than the small boxes an unoptimised build makes for generic code.
unsigned long large_allocation_count(void);

/// 1 when this process's allocations are counted; 0 under a sanitizer, whose allocator replaces the counting one.
int allocations_counted(void);
