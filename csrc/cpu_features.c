/* Run-time SIMD detection and the user/test cap: see cpu_features.h. */
#include "cpu_features.h"

#include <stdlib.h>
#include <string.h>

static int detected = -1;
static int cap = -1;

static int detect(void)
{
#if CF_HAVE_X86_DISPATCH
    __builtin_cpu_init();
    /* __builtin_cpu_supports checks CPUID and the OS's XSAVE state (GCC >= 11
     * and clang test XCR0 for AVX/AVX-512), so a kernel that disabled AVX-512
     * state makes us fall back. */
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
        return CF_SIMD_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return CF_SIMD_AVX2;
#endif
#if CF_HAVE_NEON
    return CF_SIMD_NEON; /* part of the AArch64 baseline */
#endif
    return CF_SIMD_SCALAR;
}

static int env_cap(void)
{
    const char *s = getenv("CNNFAST_CPU_FEATURES");
    if (s == NULL || *s == '\0')
        return CF_SIMD_AVX512;
    if (strcmp(s, "scalar") == 0)
        return CF_SIMD_SCALAR;
    if (strcmp(s, "avx2") == 0 || strcmp(s, "neon") == 0)
        return CF_SIMD_AVX2; /* == CF_SIMD_NEON */
    return CF_SIMD_AVX512;
}

int cf_simd_detected(void)
{
    if (detected < 0)
        detected = detect();
    return detected;
}

int cf_simd_level(void)
{
    int d = cf_simd_detected();
    if (cap < 0)
        cap = env_cap();
    return d < cap ? d : cap;
}

int cf_simd_set_cap(int level)
{
    if (level < CF_SIMD_SCALAR)
        level = CF_SIMD_SCALAR;
    cap = level;
    return cf_simd_level();
}

const char *cf_simd_name(int level)
{
    switch (level) {
    case CF_SIMD_AVX512: return "avx512";
    case CF_SIMD_AVX2: return CF_HAVE_NEON ? "neon" : "avx2"; /* == CF_SIMD_NEON */
    default: return "scalar";
    }
}
