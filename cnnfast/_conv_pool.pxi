# Fused convolution + max/min pooling wrappers, included into _kernels.pyx
# after _pool.pxi (``include "_conv_pool.pxi"``).
#
# The caller (cnnfast.ops) resolved the convolution geometry, as for
# conv2d_forward; these wrappers check the arrays against it and the pooling
# window against the convolution output (no padding, non-overlapping windows,
# at least one window), then release the GIL and call C.

cdef extern from "conv2d.h" nogil:
    int cf_conv2d_pool_forward_f32(const cf_conv2d_shape *s, const cf_pool2d_shape *p,
                                   int mode, const float *x, const float *kernel,
                                   const float *bias, int relu, float *y, int32_t *argmax,
                                   int mark_dead, int nthreads)
    int cf_conv2d_pool_forward_f64(const cf_conv2d_shape *s, const cf_pool2d_shape *p,
                                   int mode, const double *x, const double *kernel,
                                   const double *bias, int relu, double *y,
                                   int32_t *argmax, int mark_dead, int nthreads)
    int cf_conv2d_pool_backward_f32(const cf_conv2d_shape *s, const cf_pool2d_shape *p,
                                    int mode, const float *x, const float *dyp,
                                    const float *ymask, const int32_t *argmax,
                                    const float *kernel, float *dx, float *dkernel,
                                    float *dbias, int nthreads)
    int cf_conv2d_pool_backward_f64(const cf_conv2d_shape *s, const cf_pool2d_shape *p,
                                    int mode, const double *x, const double *dyp,
                                    const double *ymask, const int32_t *argmax,
                                    const double *kernel, double *dx, double *dkernel,
                                    double *dbias, int nthreads)


cdef cf_pool2d_shape _conv_pool_shape(cf_conv2d_shape *s, tuple pool, int mode) except *:
    """The pooling of the convolution output: pool = (kh, kw, sh, sw)."""
    cdef cf_pool2d_shape p
    p.kh, p.kw, p.sh, p.sw = pool
    p.pt = p.pl = 0
    if mode != CF_POOL_MAX and mode != CF_POOL_MIN:
        raise ValueError(f"mode: the fused kernels pool by max (0) or min (2), got {mode}")
    if min(p.kh, p.kw) < 1 or p.sh < p.kh or p.sw < p.kw:
        raise ValueError(
            f"pool: needs windows >= 1 that do not overlap (strides >= pool_size), got "
            f"pool_size ({p.kh}, {p.kw}), strides ({p.sh}, {p.sw})")
    if s.oh < p.kh or s.ow < p.kw:
        raise ValueError(
            f"pool: window ({p.kh}, {p.kw}) larger than the convolution output "
            f"({s.oh}, {s.ow})")
    if s.oh * s.ow > 2147483647:
        raise ValueError(f"convolution output plane {s.oh}x{s.ow} too large for int32 indices")
    p.n, p.h, p.w, p.c = s.n, s.oh, s.ow, s.f
    p.oh = (s.oh - p.kh) // p.sh + 1
    p.ow = (s.ow - p.kw) // p.sw + 1
    return p


def conv2d_pool2d_forward(cnp.ndarray x, cnp.ndarray kernel, object bias, cnp.ndarray y,
                          object argmax, tuple shape, tuple pool, int mode, bint relu,
                          bint mark_dead=False):
    """y = pool(conv(x) (+ bias) (relu)), pool = (kh, kw, sh, sw), valid, no overlap.

    shape as for conv2d_forward; y is (n, poh, pow, f); argmax None or int32
    like y, receiving flat indices into the (oh, ow) plane of the convolution.
    mark_dead: -1 instead where the pooled value is not > 0, so that the
    backward needs no ymask (the layers' own pairs; the public API keeps the
    indices of pool2d).
    """
    cdef cf_conv2d_shape s = _shape(shape)
    cdef cf_pool2d_shape p = _conv_pool_shape(&s, pool, mode)
    cdef int nt = cf_get_num_threads()
    cdef int rc = 0
    cdef cnp.ndarray b, am
    cdef void *bp = NULL
    cdef int32_t *ap = NULL
    dt = x.dtype
    _check(x, dt, (s.n, s.h, s.w, s.c), "x")
    _check(kernel, dt, (s.kh, s.kw, s.c, s.f), "kernel")
    _check_out(y, dt, (p.n, p.oh, p.ow, p.c), "y")
    if bias is not None:
        b = bias
        _check(b, dt, (s.f,), "bias")
        bp = cnp.PyArray_DATA(b)
    if argmax is not None:
        am = argmax
        _check_out(am, np.int32, (p.n, p.oh, p.ow, p.c), "indices")
        ap = <int32_t *>cnp.PyArray_DATA(am)
    cdef cf_call_state cs
    if dt == np.float32:
        with nogil:
            cf_call_begin(&cs)
            rc = cf_conv2d_pool_forward_f32(&s, &p, mode, <const float *>cnp.PyArray_DATA(x),
                                            <const float *>cnp.PyArray_DATA(kernel),
                                            <const float *>bp, relu,
                                            <float *>cnp.PyArray_DATA(y), ap, mark_dead, nt)
            cf_call_end(&cs)
    elif dt == np.float64:
        with nogil:
            cf_call_begin(&cs)
            rc = cf_conv2d_pool_forward_f64(&s, &p, mode, <const double *>cnp.PyArray_DATA(x),
                                            <const double *>cnp.PyArray_DATA(kernel),
                                            <const double *>bp, relu,
                                            <double *>cnp.PyArray_DATA(y), ap, mark_dead,
                                            nt)
            cf_call_end(&cs)
    else:
        raise TypeError(f"x: unsupported dtype {dt}")
    if rc != 0:
        raise MemoryError("cnnfast: could not allocate convolution workspace")


def conv2d_pool2d_backward(cnp.ndarray x, cnp.ndarray dyp, cnp.ndarray argmax,
                           cnp.ndarray kernel, object dx, cnp.ndarray dkernel, object dbias,
                           tuple shape, tuple pool, int mode, object ymask=None):
    """dx (or None: not computed), dkernel, dbias of pool(conv(x)) from dyp (the
    pooled output's gradient) and the indices of conv2d_pool2d_forward on the
    same shapes (any value is memory-safe). ymask: the forward's pooled output
    of a pair with ReLU (dyp counts only where ymask > 0), or None."""
    cdef cf_conv2d_shape s = _shape(shape)
    cdef cf_pool2d_shape p = _conv_pool_shape(&s, pool, mode)
    cdef int nt = cf_get_num_threads()
    cdef int rc = 0
    cdef cnp.ndarray db, dxa
    cdef void *dbp = NULL
    cdef void *dxp = NULL
    cdef void *ymp = NULL
    dt = x.dtype
    _check(x, dt, (s.n, s.h, s.w, s.c), "x")
    _check(dyp, dt, (p.n, p.oh, p.ow, p.c), "dy")
    if ymask is not None:
        _check(ymask, dt, (p.n, p.oh, p.ow, p.c), "y")
        ymp = cnp.PyArray_DATA(<cnp.ndarray>ymask)
    _check(argmax, np.int32, (p.n, p.oh, p.ow, p.c), "indices")
    _check(kernel, dt, (s.kh, s.kw, s.c, s.f), "kernel")
    _check_out(dkernel, dt, (s.kh, s.kw, s.c, s.f), "dkernel")
    if dx is not None:
        dxa = dx
        _check_out(dxa, dt, (s.n, s.h, s.w, s.c), "dx")
        dxp = cnp.PyArray_DATA(dxa)
    if dbias is not None:
        db = dbias
        _check_out(db, dt, (s.f,), "dbias")
        dbp = cnp.PyArray_DATA(db)
    cdef const int32_t *ap = <const int32_t *>cnp.PyArray_DATA(argmax)
    cdef cf_call_state cs
    if dt == np.float32:
        with nogil:
            cf_call_begin(&cs)
            rc = cf_conv2d_pool_backward_f32(
                &s, &p, mode, <const float *>cnp.PyArray_DATA(x),
                <const float *>cnp.PyArray_DATA(dyp), <const float *>ymp, ap,
                <const float *>cnp.PyArray_DATA(kernel), <float *>dxp,
                <float *>cnp.PyArray_DATA(dkernel), <float *>dbp, nt)
            cf_call_end(&cs)
    elif dt == np.float64:
        with nogil:
            cf_call_begin(&cs)
            rc = cf_conv2d_pool_backward_f64(
                &s, &p, mode, <const double *>cnp.PyArray_DATA(x),
                <const double *>cnp.PyArray_DATA(dyp), <const double *>ymp, ap,
                <const double *>cnp.PyArray_DATA(kernel), <double *>dxp,
                <double *>cnp.PyArray_DATA(dkernel), <double *>dbp, nt)
            cf_call_end(&cs)
    else:
        raise TypeError(f"x: unsupported dtype {dt}")
    if rc != 0:
        raise MemoryError("cnnfast: could not allocate convolution workspace")
