# Fused convolution + max/min pooling wrappers, included into _kernels.pyx
# after _pool.pxi (``include "_conv_pool.pxi"``).
#
# The caller (cnnfast.ops) resolved the geometry (cnnfast._spec.ConvPoolSpec);
# these wrappers copy it into the two C structs, check them in C (geometry.h:
# no pooling padding, windows that do not overlap, sizes that are the
# convolution output's) and the arrays against them, then release the GIL and
# call C.

cdef extern from "geometry.h" nogil:
    const char *cf_conv_pool_shape_error(const cf_conv2d_shape *s, const cf_pool2d_shape *p,
                                         int mode)


cdef int _conv_pool_structs(object spec, cf_conv2d_shape *s, cf_pool2d_shape *p) except -1:
    """The resolved conv + pool (cnnfast._spec.ConvPoolSpec) as the two C structs,
    refused unless the fused kernels can run them safely (geometry.h)."""
    s[0] = _conv_struct(spec.conv)
    p[0] = _pool_fields(spec.pool)
    cdef const char *err = cf_conv_pool_shape_error(s, p, spec.pool.mode)
    if err != NULL:
        raise ValueError(f"fused convolution + pooling {spec.conv!r}, {spec.pool!r}: "
                         f"{err.decode()}")
    return 0


def conv2d_pool2d_forward(cnp.ndarray x, cnp.ndarray kernel, object bias, cnp.ndarray y,
                          object argmax, object spec, bint mark_dead=False):
    """y = pool(conv(x) (+ bias) (relu)) as the resolved spec (ConvPoolSpec) says:
    unpadded pooling windows that do not overlap, max or min.

    y is (n, poh, pow, f); argmax None or int32
    like y, receiving flat indices into the (oh, ow) plane of the convolution.
    mark_dead: -1 instead where the pooled value is not > 0, so that the
    backward needs no ymask (the layers' own pairs; the public API keeps the
    indices of pool2d).
    """
    cdef cf_conv2d_shape s
    cdef cf_pool2d_shape p
    _conv_pool_structs(spec, &s, &p)
    cdef int mode = spec.pool.mode
    cdef bint relu = spec.relu
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
    cdef cf_dtype edt = _element_type(x, "x")
    cdef const void *xp = _data(x)
    cdef const void *kp = _data(kernel)
    cdef void *yp = _data(y)
    cdef cf_call_state cs
    with nogil:
        cf_call_begin(&cs)
        rc = cf_conv2d_pool_forward_by_dtype(edt, &s, &p, mode, xp, kp, bp, relu, yp, ap,
                                             mark_dead, nt)
        cf_call_end(&cs)
    if rc != 0:
        raise MemoryError("cnnfast: could not allocate convolution workspace")


def conv2d_pool2d_backward(cnp.ndarray x, cnp.ndarray dyp, cnp.ndarray argmax,
                           cnp.ndarray kernel, object dx, cnp.ndarray dkernel, object dbias,
                           object spec, object ymask=None):
    """dx (or None: not computed), dkernel, dbias of pool(conv(x)) from dyp (the
    pooled output's gradient) and the indices of conv2d_pool2d_forward on the
    same shapes (any value is memory-safe). ymask: the forward's pooled output
    of a pair with ReLU (dyp counts only where ymask > 0), or None."""
    cdef cf_conv2d_shape s
    cdef cf_pool2d_shape p
    _conv_pool_structs(spec, &s, &p)
    cdef int mode = spec.pool.mode
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
    cdef cf_dtype edt = _element_type(x, "x")
    cdef const void *xp = _data(x)
    cdef const void *dy_data = _data(dyp)
    cdef const void *kp = _data(kernel)
    cdef void *dkp = _data(dkernel)
    cdef cf_call_state cs
    with nogil:
        cf_call_begin(&cs)
        rc = cf_conv2d_pool_backward_by_dtype(edt, &s, &p, mode, xp, dy_data, ymp, ap, kp, dxp,
                                              dkp, dbp, nt)
        cf_call_end(&cs)
    if rc != 0:
        raise MemoryError("cnnfast: could not allocate convolution workspace")
