/* Dense matrix product on the shared micro-kernels: see gemm.h. */
#include "gemm.h"

#include <string.h>

#include "cpu_features.h"
#include "runtime.h"
#include "threads.h"
#include "ukernel.h"
#include "workspace.h"

/* reduction block: KC x n of B in L2, KC x MR of A in L1 */
#define GM_KC 384
/* columns from which rows of A read in place use the 6 x 64 tile */
#define GM_WIDE_MIN_N 48
/* panels of A^T copied per block when A's columns are contiguous (a
 * transposed view, e.g. the Dense kernel gradient x.T @ dz) */
#define GM_AT_PANELS 4
/* largest column stride of B the packer's int32 gather indices reach */
#define GM_GATHER_MAX_JS ((int64_t)0x7fffffff / 64)

#define GM_T float
#define GM_SFX f32
#define GM_UK cf_ukernel_f32
#define GM_SELECT cf_ukernel_select_f32
#include "gemm_impl.h"
#undef GM_T
#undef GM_SFX
#undef GM_UK
#undef GM_SELECT

#define GM_T double
#define GM_SFX f64
#define GM_UK cf_ukernel_f64
#define GM_SELECT cf_ukernel_select_f64
#include "gemm_impl.h"
