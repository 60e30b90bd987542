/* Dense matrix product on the shared micro-kernels: see gemm.h. */
#include "gemm.h"

#include <string.h>

#include "blocking.h"
#include "cpu_features.h"
#include "runtime.h"
#include "threads.h"
#include "ukernel.h"
#include "workspace.h"

#define GM_T float
#define GM_SFX f32
#define GM_UK cf_ukernel_f32
#define GM_SELECT cf_ukernel_select_f32
#define GM_PX_FN cf_ukernel_direct_px_f32_fn
#include "gemm_impl.h"
#undef GM_T
#undef GM_SFX
#undef GM_UK
#undef GM_SELECT
#undef GM_PX_FN

#define GM_T double
#define GM_SFX f64
#define GM_UK cf_ukernel_f64
#define GM_SELECT cf_ukernel_select_f64
#define GM_PX_FN cf_ukernel_direct_px_f64_fn
#include "gemm_impl.h"
