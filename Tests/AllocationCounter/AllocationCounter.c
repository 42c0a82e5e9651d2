// The test executable defines malloc and its kin, so every library in the process (the Swift runtime included)
// calls these; each counts, for the calling thread, and hands over to glibc's own allocator. Only tests link this.
#include <stddef.h>
#include "AllocationCounter.h"

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

// Per thread, so that tests running beside the one that counts do not disturb it.
static __thread unsigned long count, large;

static void counted(size_t size) {
    count += 1;
    if (size >= 1024) large += 1;
}

unsigned long allocation_count(void) { return count; }
unsigned long large_allocation_count(void) { return large; }

// A sanitizer brings its own allocator and intercepts these itself: under one, nothing is replaced or counted.
#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define DESCENT_SANITIZED 1
#endif
#endif

#ifdef DESCENT_SANITIZED
int allocations_counted(void) { return 0; }
#else
int allocations_counted(void) { return 1; }

void *malloc(size_t size) { counted(size); return __libc_malloc(size); }
void *calloc(size_t n, size_t size) { counted(n * size); return __libc_calloc(n, size); }
void *realloc(void *p, size_t size) { counted(size); return __libc_realloc(p, size); }
void *memalign(size_t alignment, size_t size) { counted(size); return __libc_memalign(alignment, size); }
void *aligned_alloc(size_t alignment, size_t size) { counted(size); return __libc_memalign(alignment, size); }
int posix_memalign(void **out, size_t alignment, size_t size) {
    counted(size);
    void *p = __libc_memalign(alignment, size);
    if (!p) return 12;  // ENOMEM
    *out = p;
    return 0;
}

#endif  // DESCENT_SANITIZED

#ifdef ALLOCATION_REPORT
// Built as a preloaded library by launch/allocations: prints the main thread's count when the process exits.
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
__attribute__((destructor)) static void report(void) {
    char line[96];
    const char *rank = getenv("OMPI_COMM_WORLD_RANK");
    int n = snprintf(line, sizeof line, "allocations rank %s: %lu\n", rank ? rank : "0", count);
    if (n > 0) write(2, line, (size_t)n);
}
#endif
