/* Run-time choice of the SIMD code path.
 *
 * The package is compiled for the platform's baseline; AVX2+FMA and AVX-512
 * kernels are compiled into functions with GCC `target` attributes and only
 * called when the CPU (and the OS, via XCR0) supports them. The environment
 * variable CNNFAST_CPU_FEATURES=scalar|avx2|avx512 caps the level (for tests
 * and comparisons); a level the CPU lacks is never selected.
 *
 * On AArch64 the Advanced SIMD (NEON) kernels are the baseline: every
 * AArch64 CPU has them, so there is nothing to detect, and
 * CNNFAST_CPU_FEATURES=scalar caps them. NEON shares AVX2's rank (level 1):
 * the two never coexist, and each platform's first vector level is 1, so the
 * tables indexed by level and the "level >= 1" tests need no platform case.
 * The name of level 1 is the platform's ("avx2" or "neon"); either name caps
 * at level 1 anywhere. */
#ifndef CNNFAST_CPU_FEATURES_H
#define CNNFAST_CPU_FEATURES_H

#ifdef __cplusplus
extern "C" {
#endif

enum cf_simd_level {
    CF_SIMD_SCALAR = 0,
    CF_SIMD_AVX2 = 1,   /* AVX2 + FMA (x86-64) */
    CF_SIMD_NEON = 1,   /* Advanced SIMD (AArch64): AVX2's rank, see above */
    CF_SIMD_AVX512 = 2  /* AVX-512 F/BW/DQ/VL */
};

/* Highest level this CPU supports (ignores the cap). */
int cf_simd_detected(void);

/* Level in use now: min(detected, cap). */
int cf_simd_level(void);

/* Cap the level (used by tests); values above the detected level are
 * clamped. Returns the level now in use. Not thread-safe against concurrent
 * kernel calls: call it between them. */
int cf_simd_set_cap(int level);

const char *cf_simd_name(int level);

/* Compiler-support switches: the target-attribute code paths exist only on
 * x86-64 with GCC or clang. */
#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
#define CF_HAVE_X86_DISPATCH 1
#else
#define CF_HAVE_X86_DISPATCH 0
#endif

/* The NEON kernels (ukernel_neon.c, pool2d_neon_impl.h): AArch64 with GCC
 * or clang (arm_neon.h). */
#if defined(__aarch64__) && (defined(__GNUC__) || defined(__clang__))
#define CF_HAVE_NEON 1
#else
#define CF_HAVE_NEON 0
#endif

#ifdef __cplusplus
}
#endif
#endif
