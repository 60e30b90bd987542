# cython: language_level=3
"""The Cython boundary of cnnfast: thin, GIL-free wrappers around the C kernels.

``cnnfast.ops`` validates the user's arguments, resolves the geometry once
(``cnnfast._spec``: ConvSpec, PoolSpec, ConvPoolSpec) and allocates the
outputs; these wrappers copy the resolved spec's fields into the C struct,
check only what memory safety needs (dtype, C-contiguity, shapes matching the
spec, and the struct itself, in C: csrc/geometry.h), release the GIL and call
into C, which owns the OpenMP parallel decomposition. They derive nothing.

Every C kernel call runs between cf_call_begin and cf_call_end (csrc/runtime.h):
the per-call gate that release_workspaces() waits on, and the kernels'
floating-point (subnormal) mode on the calling thread.
"""

cimport numpy as cnp
from libc.stdint cimport int32_t, int64_t, uint64_t

import numpy as np

cnp.import_array()

import os as _os

cdef extern from "threads.h" nogil:
    int cf_get_num_threads()
    void cf_set_num_threads(int n)
    int cf_openmp_enabled()
    int cf_openmp_version()
    const char *cf_openmp_library()

cdef extern from "runtime.h" nogil:
    ctypedef struct cf_call_state:
        pass
    void cf_call_begin(cf_call_state *st)
    void cf_call_end(cf_call_state *st)
    void cf_runtime_init()
    int cf_forked()
    int cf_set_flush_denormal(int on)
    int cf_get_flush_denormal()

cdef extern from "workspace.h" nogil:
    void cf_release_workspaces()
    void cf_workspace_reap_stale()

cdef extern from "cpu_features.h" nogil:
    int cf_simd_detected()
    int cf_simd_level()
    int cf_simd_set_cap(int level)
    const char *cf_simd_name(int level)

cdef extern from "conv2d.h" nogil:
    ctypedef struct cf_conv2d_shape:
        int64_t n, h, w, c
        int64_t oh, ow, f
        int64_t kh, kw
        int64_t sh, sw
        int64_t dh, dw
        int64_t pt, pl
        int64_t winograd

cdef extern from "pool2d.h" nogil:
    enum: CF_POOL_MAX, CF_POOL_AVG, CF_POOL_MIN
    ctypedef struct cf_pool2d_shape:
        int64_t n, h, w, c
        int64_t oh, ow
        int64_t kh, kw
        int64_t sh, sw
        int64_t pt, pl
    int64_t cf_pool2d_first_stray_index(const cf_pool2d_shape *s, const int32_t *argmax,
                                        int nthreads)

cdef extern from "calibrate.h" nogil:
    double cf_fma_ceiling(int64_t iters, int nthreads)

# One entry point per kernel, the element type an argument (csrc/dispatch.h).
cdef extern from "dispatch.h" nogil:
    ctypedef enum cf_dtype:
        CF_FLOAT32
        CF_FLOAT64
    int cf_conv2d_forward_by_dtype(cf_dtype dt, const cf_conv2d_shape *s, const void *x,
                                   const void *kernel, const void *bias, int relu, void *y,
                                   int nthreads)
    int cf_conv2d_backward_input_by_dtype(cf_dtype dt, const cf_conv2d_shape *s,
                                          const void *dy, const void *kernel, void *dx,
                                          int nthreads)
    int cf_conv2d_backward_kernel_by_dtype(cf_dtype dt, const cf_conv2d_shape *s,
                                           const void *x, const void *dy, void *dkernel,
                                           void *dbias, int nthreads)
    int cf_conv2d_pool_forward_by_dtype(cf_dtype dt, const cf_conv2d_shape *s,
                                        const cf_pool2d_shape *p, int mode, const void *x,
                                        const void *kernel, const void *bias, int relu,
                                        void *y, int32_t *argmax, int mark_dead, int nthreads)
    int cf_conv2d_pool_backward_by_dtype(cf_dtype dt, const cf_conv2d_shape *s,
                                         const cf_pool2d_shape *p, int mode, const void *x,
                                         const void *dyp, const void *ymask,
                                         const int32_t *argmax, const void *kernel, void *dx,
                                         void *dkernel, void *dbias, int nthreads)
    void cf_pool2d_forward_by_dtype(cf_dtype dt, const cf_pool2d_shape *s, int mode,
                                    const void *x, void *y, int32_t *argmax, int nthreads)
    int64_t cf_pool2d_backward_by_dtype(cf_dtype dt, const cf_pool2d_shape *s, int mode,
                                        const void *dy, const void *x, const int32_t *argmax,
                                        void *dx, int count_strays, int nthreads)
    int cf_gemm_by_dtype(cf_dtype dt, int64_t m, int64_t n, int64_t k, const void *a,
                         int64_t a_is, int64_t a_ks, const void *b, int64_t b_ks, int64_t b_js,
                         void *c, int64_t ldc, int accumulate, const void *bias, int relu,
                         int nthreads)
    void cf_relu_mask_by_dtype(cf_dtype dt, int64_t n, void *dy, const void *y, int nthreads)
    void cf_dropout_by_dtype(cf_dtype dt, int64_t n, uint64_t key, int64_t offset,
                             double rate, const void *x, void *y, void *mask, int nthreads)
    double cf_softmax_xent_by_dtype(cf_dtype dt, int64_t n, int64_t k, const void *z,
                                    const void *y, const void *probs, void *grad)
    void cf_softmax_rows_by_dtype(cf_dtype dt, int64_t n, int64_t k, const void *z, void *out)
    void cf_adam_by_dtype(cf_dtype dt, int64_t n, void *p, const void *g, void *m, void *v,
                          double alpha, double one_minus_b1, double one_minus_b2, double eps,
                          int nthreads)

cdef extern from *:
    """
    #ifndef CNNFAST_COMPILER
    #define CNNFAST_COMPILER "unknown"
    #endif
    static const char *cf_compiler_name(void) { return CNNFAST_COMPILER; }
    """
    const char *cf_compiler_name()


# ---------------------------------------------------------------- runtime --

cf_runtime_init()


def _after_fork_child():
    # The atfork handler in C marks the parent's other threads' workspaces as
    # stale (it may only do async-signal-safe work); free them here.
    cf_workspace_reap_stale()


if hasattr(_os, "register_at_fork"):
    _os.register_at_fork(after_in_child=_after_fork_child)


def forked():
    """True in a process forked from one that had loaded cnnfast."""
    return bool(cf_forked())


def release_workspaces():
    """Free every thread's cached kernel workspaces (waits for running calls)."""
    with nogil:
        cf_release_workspaces()


def set_flush_denormal(bint on):
    """Flush subnormals to zero in the kernels; True where supported."""
    return bool(cf_set_flush_denormal(on))


def get_flush_denormal():
    return bool(cf_get_flush_denormal())


def get_num_threads():
    """Threads the next kernel call from this thread will use."""
    return cf_get_num_threads()


def set_num_threads(int n):
    """n >= 1: use n threads; 0: back to the OpenMP default."""
    cf_set_num_threads(n)


def openmp_enabled():
    return bool(cf_openmp_enabled())


def openmp_version():
    return cf_openmp_version()


def openmp_library():
    """Path of the OpenMP runtime the kernels' calls are bound to ("" if unknown)."""
    return cf_openmp_library().decode(errors="replace")


def simd_level():
    return cf_simd_name(cf_simd_level()).decode()


def fma_ceiling(int64_t iters):
    """FLOPs done by a registers-only FMA loop of `iters` steps on every thread of
    the current team (calibrate.h): time it to get the cores' arithmetic ceiling."""
    if iters < 0:
        raise ValueError(f"iters must be >= 0, got {iters}")
    cdef int nt = cf_get_num_threads()
    cdef double flops
    cdef cf_call_state cs
    with nogil:
        cf_call_begin(&cs)
        flops = cf_fma_ceiling(iters, nt)
        cf_call_end(&cs)
    return flops


def simd_detected():
    return cf_simd_name(cf_simd_detected()).decode()


# "neon" (AArch64) has AVX2's rank: each platform's first vector level is 1
# (csrc/cpu_features.h), so either name caps at it on any platform.
_SIMD_LEVELS = {"scalar": 0, "avx2": 1, "neon": 1, "avx512": 2}


def set_simd_cap(str name):
    """Cap the SIMD path ("scalar", "avx2", "neon", "avx512"); returns the level now in use.

    For tests and comparisons; call it between kernel calls, not during them.
    """
    if name not in _SIMD_LEVELS:
        raise ValueError(f"unknown SIMD level {name!r}; expected one of {list(_SIMD_LEVELS)}")
    return cf_simd_name(cf_simd_set_cap(_SIMD_LEVELS[name])).decode()


def compiler():
    return cf_compiler_name().decode()


# ---------------------------------------------------------------- helpers --

cdef cf_dtype _element_type(cnp.ndarray a, str name) except *:
    """The C element type of a float32 / float64 array; TypeError for any other."""
    cdef int t = cnp.PyArray_TYPE(a)
    if t == cnp.NPY_FLOAT32:
        return CF_FLOAT32
    if t == cnp.NPY_FLOAT64:
        return CF_FLOAT64
    raise TypeError(f"{name}: unsupported dtype {a.dtype} (float32 or float64)")


cdef inline void *_data(object a):
    """The data pointer of an ndarray, or NULL for None (an optional argument)."""
    return NULL if a is None else cnp.PyArray_DATA(<cnp.ndarray>a)


cdef inline void _check(cnp.ndarray a, object dtype, tuple shape, str name) except *:
    if a.dtype != dtype:
        raise ValueError(f"{name}: expected dtype {dtype}, got {a.dtype}")
    if not a.flags.c_contiguous or not a.flags.aligned:
        raise ValueError(f"{name}: expected an aligned C-contiguous array")
    if (<object>a).shape != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {(<object>a).shape}")


cdef bint _overlap(cnp.ndarray a, cnp.ndarray b):
    """Whether the byte ranges of two C-contiguous arrays overlap."""
    cdef char *pa = <char *>cnp.PyArray_DATA(a)
    cdef char *pb = <char *>cnp.PyArray_DATA(b)
    cdef cnp.npy_intp na = cnp.PyArray_NBYTES(a), nb = cnp.PyArray_NBYTES(b)
    return na > 0 and nb > 0 and pa < pb + nb and pb < pa + na


cdef inline void _check_out(cnp.ndarray a, object dtype, tuple shape, str name) except *:
    _check(a, dtype, shape, name)
    if not a.flags.writeable:
        raise ValueError(f"{name}: output array is read-only")


cdef extern from "geometry.h" nogil:
    const char *cf_conv2d_shape_error(const cf_conv2d_shape *s)


cdef cf_conv2d_shape _conv_struct(object spec) except *:
    """The resolved convolution (cnnfast._spec.ConvSpec) as the C struct, field by
    field, refused when the drivers could not index it safely (geometry.h)."""
    cdef cf_conv2d_shape s
    s.n, s.h, s.w, s.c = spec.n, spec.h, spec.w, spec.c
    s.oh, s.ow, s.f = spec.oh, spec.ow, spec.f
    s.kh, s.kw, s.sh, s.sw = spec.kh, spec.kw, spec.sh, spec.sw
    s.dh, s.dw, s.pt, s.pl = spec.dh, spec.dw, spec.pt, spec.pl
    s.winograd = spec.winograd_tile
    cdef const char *err = cf_conv2d_shape_error(&s)
    if err != NULL:
        raise ValueError(f"convolution geometry {spec!r}: {err.decode()}")
    return s


# ------------------------------------------------------------ convolution --

def conv2d_forward(cnp.ndarray x, cnp.ndarray kernel, object bias, cnp.ndarray y,
                   object spec, bint relu):
    """y[n, oh, ow, f] = conv(x NHWC, kernel (kh, kw, c, f)) (+ bias) (relu);
    spec: the resolved convolution (cnnfast._spec.ConvSpec)."""
    cdef cf_conv2d_shape s = _conv_struct(spec)
    cdef cf_dtype dt = _element_type(x, "x")
    dtype = x.dtype
    _check(x, dtype, (s.n, s.h, s.w, s.c), "x")
    _check(kernel, dtype, (s.kh, s.kw, s.c, s.f), "kernel")
    _check_out(y, dtype, (s.n, s.oh, s.ow, s.f), "y")
    if bias is not None:
        _check(bias, dtype, (s.f,), "bias")
    cdef const void *xp = _data(x)
    cdef const void *kp = _data(kernel)
    cdef const void *bp = _data(bias)
    cdef void *yp = _data(y)
    cdef int nt = cf_get_num_threads()
    cdef int rc
    cdef cf_call_state cs
    with nogil:
        cf_call_begin(&cs)
        rc = cf_conv2d_forward_by_dtype(dt, &s, xp, kp, bp, relu, yp, nt)
        cf_call_end(&cs)
    if rc != 0:
        raise MemoryError("cnnfast: could not allocate convolution workspace")


def conv2d_backward_input(cnp.ndarray dy, cnp.ndarray kernel, cnp.ndarray dx,
                          object spec):
    """dx (n, h, w, c) from dy (n, oh, ow, f) and kernel (kh, kw, c, f)."""
    cdef cf_conv2d_shape s = _conv_struct(spec)
    cdef cf_dtype dt = _element_type(dy, "dy")
    dtype = dy.dtype
    _check(dy, dtype, (s.n, s.oh, s.ow, s.f), "dy")
    _check(kernel, dtype, (s.kh, s.kw, s.c, s.f), "kernel")
    _check_out(dx, dtype, (s.n, s.h, s.w, s.c), "dx")
    cdef const void *dyp = _data(dy)
    cdef const void *kp = _data(kernel)
    cdef void *dxp = _data(dx)
    cdef int nt = cf_get_num_threads()
    cdef int rc
    cdef cf_call_state cs
    with nogil:
        cf_call_begin(&cs)
        rc = cf_conv2d_backward_input_by_dtype(dt, &s, dyp, kp, dxp, nt)
        cf_call_end(&cs)
    if rc != 0:
        raise MemoryError("cnnfast: could not allocate convolution workspace")


def conv2d_backward_kernel(cnp.ndarray x, cnp.ndarray dy, cnp.ndarray dkernel,
                           object dbias, object spec):
    """dkernel (kh, kw, c, f) and dbias (f,) (or None) from x and dy."""
    cdef cf_conv2d_shape s = _conv_struct(spec)
    cdef cf_dtype dt = _element_type(x, "x")
    dtype = x.dtype
    _check(x, dtype, (s.n, s.h, s.w, s.c), "x")
    _check(dy, dtype, (s.n, s.oh, s.ow, s.f), "dy")
    _check_out(dkernel, dtype, (s.kh, s.kw, s.c, s.f), "dkernel")
    if dbias is not None:
        _check_out(dbias, dtype, (s.f,), "dbias")
    cdef const void *xp = _data(x)
    cdef const void *dyp = _data(dy)
    cdef void *dkp = _data(dkernel)
    cdef void *dbp = _data(dbias)
    cdef int nt = cf_get_num_threads()
    cdef int rc
    cdef cf_call_state cs
    with nogil:
        cf_call_begin(&cs)
        rc = cf_conv2d_backward_kernel_by_dtype(dt, &s, xp, dyp, dkp, dbp, nt)
        cf_call_end(&cs)
    if rc != 0:
        raise MemoryError("cnnfast: could not allocate convolution workspace")


# ----------------------------------------------------------------- matmul --

def gemm(cnp.ndarray a, cnp.ndarray b, cnp.ndarray c, bint accumulate, object bias=None,
         bint relu=False):
    """c (+)= a @ b (+ bias) (relu) for 2-D arrays of one dtype; a and b may
    have any strides that are whole elements (transposed views need no copy),
    c is C-contiguous, bias None or a contiguous (n,) array."""
    dt = c.dtype
    cdef void *bp = NULL
    if a.ndim != 2 or b.ndim != 2 or c.ndim != 2:
        raise ValueError("gemm: 2-D arrays expected")
    if bias is not None:  # after the ndim check: b.shape[1] must exist
        _check(bias, dt, (b.shape[1],), "bias")
        bp = cnp.PyArray_DATA(<cnp.ndarray>bias)
    if a.dtype != dt or b.dtype != dt:
        raise ValueError("gemm: dtypes differ")
    if not c.flags.c_contiguous or not c.flags.writeable or not c.flags.aligned:
        raise ValueError("gemm: c must be a writable aligned C-contiguous array")
    if not a.flags.aligned or not b.flags.aligned:
        raise ValueError("gemm: a and b must be aligned")
    cdef int64_t m = a.shape[0], k = a.shape[1], n = b.shape[1]
    if b.shape[0] != k or c.shape[0] != m or c.shape[1] != n:
        raise ValueError(f"gemm: shapes {(<object>a).shape} @ {(<object>b).shape} -> {(<object>c).shape}")
    cdef int64_t isz = dt.itemsize
    cdef int64_t a_is = a.strides[0] // isz, a_ks = a.strides[1] // isz
    cdef int64_t b_ks = b.strides[0] // isz, b_js = b.strides[1] // isz
    if (a.strides[0] % isz or a.strides[1] % isz or b.strides[0] % isz
            or b.strides[1] % isz):
        raise ValueError("gemm: strides must be whole elements")
    cdef int64_t ldc = n
    cdef cf_dtype edt = _element_type(c, "c")
    cdef const void *ap = _data(a)
    cdef const void *bmp = _data(b)
    cdef void *cp = _data(c)
    cdef int nt = cf_get_num_threads()
    cdef int rc
    cdef cf_call_state cs
    with nogil:
        cf_call_begin(&cs)
        rc = cf_gemm_by_dtype(edt, m, n, k, ap, a_is, a_ks, bmp, b_ks, b_js, cp, ldc, accumulate,
                              bp, relu, nt)
        cf_call_end(&cs)
    if rc != 0:
        raise MemoryError("cnnfast: could not allocate matmul workspace")


# ------------------------------------------------------------- elementwise --

def relu_mask(cnp.ndarray dy, cnp.ndarray y):
    """In place: dy = where(y > 0, dy, 0), one OpenMP pass (ReLU backward)."""
    dt = dy.dtype
    if y.dtype != dt or (<object>y).shape != (<object>dy).shape:
        raise ValueError("relu_mask: dy and y must have the same dtype and shape")
    for a in (dy, y):
        if not a.flags.c_contiguous or not a.flags.aligned:
            raise ValueError("relu_mask: arrays must be aligned and C-contiguous")
    if not dy.flags.writeable:
        raise ValueError("relu_mask: dy is read-only")
    cdef cf_dtype edt = _element_type(dy, "relu_mask: dy")
    cdef int64_t n = dy.size
    cdef void *dyp = _data(dy)
    cdef const void *yp = _data(y)
    cdef int nt = cf_get_num_threads()
    cdef cf_call_state cs
    with nogil:
        cf_call_begin(&cs)
        cf_relu_mask_by_dtype(edt, n, dyp, yp, nt)
        cf_call_end(&cs)


def dropout(cnp.ndarray x, uint64_t key, double rate, cnp.ndarray y, cnp.ndarray mask,
            int64_t offset=0):
    """Inverted dropout forward in one OpenMP pass: mask = (u >= rate) / (1 - rate) in
    x's dtype, y = x * mask, with u uniform in [0, 1) drawn per element from
    (key, offset + index) (SplitMix64): the same bits for any thread count."""
    dt = x.dtype
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"dropout: rate must be in [0, 1), got {rate}")
    if offset < 0:
        raise ValueError(f"dropout: offset must be >= 0, got {offset}")
    for name, a in (("y", y), ("mask", mask)):
        if a.dtype != dt or (<object>a).shape != (<object>x).shape:
            raise ValueError(f"dropout: {name} must have x's dtype {dt} and shape "
                             f"{(<object>x).shape}, got {a.dtype} {(<object>a).shape}")
        if not a.flags.writeable:
            raise ValueError(f"dropout: {name} is read-only")
    for a in (x, y, mask):
        if not a.flags.c_contiguous or not a.flags.aligned:
            raise ValueError("dropout: arrays must be aligned and C-contiguous")
    cdef cf_dtype edt = _element_type(x, "dropout: x")
    cdef int64_t n = x.size
    cdef const void *xp = _data(x)
    cdef void *yp = _data(y)
    cdef void *mp = _data(mask)
    cdef int nt = cf_get_num_threads()
    cdef cf_call_state cs
    with nogil:
        cf_call_begin(&cs)
        cf_dropout_by_dtype(edt, n, key, offset, rate, xp, yp, mp, nt)
        cf_call_end(&cs)


def softmax_xent(cnp.ndarray z, cnp.ndarray y, object probs, cnp.ndarray grad):
    """Mean softmax cross-entropy of the logits z (n, k) against targets y; its
    gradient with respect to z into grad. probs: softmax(z) if known, or None.
    All C-contiguous, one dtype (float32 or float64). See csrc/softmax_xent.h."""
    dt = z.dtype
    if dt != np.float32 and dt != np.float64:
        raise TypeError(f"softmax_xent: unsupported dtype {dt}")
    if z.ndim != 2 or z.shape[1] < 1:
        raise ValueError(f"softmax_xent: logits must have shape (n, k >= 1), got {(<object>z).shape}")
    shape = (<object>z).shape
    cdef cnp.ndarray p = None
    arrays = [(z, "logits"), (y, "y"), (grad, "grad")]
    if probs is not None:
        p = probs
        arrays.append((p, "probs"))
    for a, name in arrays:
        if (<cnp.ndarray>a).dtype != dt or (<object>a).shape != shape:
            raise ValueError(f"softmax_xent: {name} must be a {dt} array of shape {shape}, "
                             f"got {(<cnp.ndarray>a).dtype} {(<object>a).shape}")
        if not (<cnp.ndarray>a).flags.c_contiguous or not (<cnp.ndarray>a).flags.aligned:
            raise ValueError(f"softmax_xent: {name} must be aligned and C-contiguous")
    if not grad.flags.writeable:
        raise ValueError("softmax_xent: grad is read-only")
    cdef cf_dtype edt = _element_type(z, "softmax_xent: logits")
    cdef int64_t n = z.shape[0], k = z.shape[1]
    cdef const void *zp = _data(z)
    cdef const void *yp = _data(y)
    cdef const void *pp = _data(p)
    cdef void *gp = _data(grad)
    cdef double loss
    cdef cf_call_state cs
    with nogil:
        cf_call_begin(&cs)
        loss = cf_softmax_xent_by_dtype(edt, n, k, zp, yp, pp, gp)
        cf_call_end(&cs)
    return loss


def softmax_rows(cnp.ndarray z, cnp.ndarray out):
    """out = softmax of z over its last axis (see csrc/softmax_xent.h): both
    C-contiguous and aligned, one float dtype, one shape; out is z or shares no
    memory with it."""
    dt = z.dtype
    if dt != np.float32 and dt != np.float64:
        raise TypeError(f"softmax_rows: unsupported dtype {dt}")
    shape = (<object>z).shape
    if z.ndim < 1 or z.shape[z.ndim - 1] < 1:
        raise ValueError(f"softmax_rows: z must have a last axis of length >= 1, got shape {shape}")
    if out.dtype != dt or (<object>out).shape != shape:
        raise ValueError(f"softmax_rows: out must be a {dt} array of shape {shape}, "
                         f"got {out.dtype} {(<object>out).shape}")
    for a, name in ((z, "z"), (out, "out")):
        if not (<cnp.ndarray>a).flags.c_contiguous or not (<cnp.ndarray>a).flags.aligned:
            raise ValueError(f"softmax_rows: {name} must be aligned and C-contiguous")
    if not out.flags.writeable:
        raise ValueError("softmax_rows: out is read-only")
    cdef const void *zp = _data(z)
    cdef void *op = _data(out)
    if op != zp and _overlap(z, out):
        raise ValueError("softmax_rows: out overlaps z without being z")
    cdef cf_dtype edt = _element_type(z, "softmax_rows: z")
    cdef int64_t k = z.shape[z.ndim - 1]
    cdef int64_t n = z.size // k
    cdef cf_call_state cs
    with nogil:
        cf_call_begin(&cs)
        cf_softmax_rows_by_dtype(edt, n, k, zp, op)
        cf_call_end(&cs)


# -------------------------------------------------------------- optimizers --

def adam_update(cnp.ndarray p, cnp.ndarray g, cnp.ndarray m, cnp.ndarray v,
                double alpha, double one_minus_b1, double one_minus_b2, double eps):
    """Fused Adam step in place on p, m, v (same dtype, C-contiguous, same size)."""
    dt = p.dtype
    cdef cnp.ndarray a
    for a, name in ((p, "p"), (g, "g"), (m, "m"), (v, "v")):
        if a.dtype != dt or not a.flags.c_contiguous or not a.flags.aligned:
            raise ValueError(f"adam_update: {name} must be an aligned C-contiguous {dt} array")
        if a.size != p.size:
            raise ValueError(f"adam_update: {name} has {a.size} elements, p has {p.size}")
    for a, name in ((p, "p"), (m, "m"), (v, "v")):
        if not a.flags.writeable:
            raise ValueError(f"adam_update: {name} is read-only")
    cdef cf_dtype edt = _element_type(p, "adam_update: p")
    cdef int64_t n = p.size
    cdef void *pp = _data(p)
    cdef const void *gp = _data(g)
    cdef void *mp = _data(m)
    cdef void *vp = _data(v)
    cdef int nt = cf_get_num_threads()
    cdef cf_call_state cs
    with nogil:
        cf_call_begin(&cs)
        cf_adam_by_dtype(edt, n, pp, gp, mp, vp, alpha, one_minus_b1, one_minus_b2, eps, nt)
        cf_call_end(&cs)


# ---------------------------------------------------------------- pooling --

include "_pool.pxi"
include "_conv_pool.pxi"
include "_chain.pxi"
