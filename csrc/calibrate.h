/* The machine's arithmetic ceiling, for reading benchmark figures.
 *
 * On a shared or virtualised machine the second core is not always a whole
 * core (a busy hyperthread sibling, a throttled clock), and then no kernel
 * can scale from 1 to 2 threads however it is written. This loop measures
 * what the cores give with nothing else in the way: registers only, no
 * memory traffic, no synchronisation inside. */
#ifndef CNNFAST_CALIBRATE_H
#define CNNFAST_CALIBRATE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Every thread of a team of nthreads runs `iters` steps of independent
 * float32 FMA chains on the widest vectors of the current SIMD level, as
 * many as its register file holds without spilling (30 for AVX-512, 14 for
 * AVX2 and scalar: enough to keep two FMA units busy despite the FMA
 * latency). Returns the floating-point operations done by the whole team
 * (2 per lane per FMA). */
double cf_fma_ceiling(int64_t iters, int nthreads);

#ifdef __cplusplus
}
#endif
#endif
