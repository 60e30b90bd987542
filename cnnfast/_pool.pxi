# Pooling wrappers, included into _kernels.pyx (``include "_pool.pxi"``).
#
# cnnfast.ops validates the user's arguments, resolves the pooling once
# (cnnfast._spec.PoolSpec) and allocates the outputs; these wrappers copy the
# spec into the C struct and re-check only what memory safety needs: dtypes,
# C-contiguity, arrays of the spec's shapes, and (in C, geometry.h) a window
# geometry under which every window holds an in-bounds cell. Then they release
# the GIL and call C.

# (the pool2d.h struct and the kernels' dispatch entries are declared in _kernels.pyx)

cdef extern from "geometry.h" nogil:
    const char *cf_pool2d_shape_error(const cf_pool2d_shape *p, int mode)


cdef cf_pool2d_shape _pool_fields(object spec) except *:
    """The resolved pooling (cnnfast._spec.PoolSpec) as the C struct, unchecked."""
    cdef cf_pool2d_shape p
    p.n, p.h, p.w, p.c = spec.n, spec.h, spec.w, spec.c
    p.oh, p.ow = spec.oh, spec.ow
    p.kh, p.kw, p.sh, p.sw, p.pt, p.pl = spec.kh, spec.kw, spec.sh, spec.sw, spec.pt, spec.pl
    return p


cdef cnp.ndarray _pool_arg(object a, str name, int typenum, bint writable):
    """a as a 4-D C-contiguous ndarray of the given type, else ValueError."""
    if not isinstance(a, cnp.ndarray):
        raise ValueError(f"{name}: expected a numpy array, got {type(a).__name__}")
    cdef cnp.ndarray arr = <cnp.ndarray>a
    if cnp.PyArray_TYPE(arr) != typenum:
        raise ValueError(
            f"{name}: dtype {arr.dtype} does not match the kernel's "
            f"{cnp.PyArray_DescrFromType(typenum)}"
        )
    if cnp.PyArray_NDIM(arr) != 4:
        raise ValueError(f"{name}: expected a 4-D array, got shape {(<object>arr).shape}")
    if not cnp.PyArray_IS_C_CONTIGUOUS(arr) or not cnp.PyArray_ISALIGNED(arr):
        raise ValueError(f"{name}: array must be aligned and C-contiguous")
    if writable and not cnp.PyArray_ISWRITEABLE(arr):
        raise ValueError(f"{name}: output array is read-only")
    return arr


cdef bint _pool_same_shape(cnp.ndarray a, cnp.ndarray b):
    cdef int i
    for i in range(4):
        if cnp.PyArray_DIMS(a)[i] != cnp.PyArray_DIMS(b)[i]:
            return False
    return True


cdef int _pool_float_type(object a, str name) except -1:
    if not isinstance(a, cnp.ndarray):
        raise ValueError(f"{name}: expected a numpy array, got {type(a).__name__}")
    cdef int t = cnp.PyArray_TYPE(<cnp.ndarray>a)
    if t != cnp.NPY_FLOAT32 and t != cnp.NPY_FLOAT64:
        raise ValueError(f"{name}: dtype must be float32 or float64, got {a.dtype}")
    return t


cdef int _pool_shape(cf_pool2d_shape *s, object spec, cnp.ndarray big, cnp.ndarray small,
                     int mode) except -1:
    """Fill s from the resolved pooling (cnnfast._spec.PoolSpec), check it in C
    (geometry.h) and check the input-sized and output-sized arrays against it."""
    s[0] = _pool_fields(spec)
    cdef const char *err = cf_pool2d_shape_error(s, mode)
    if err != NULL:
        raise ValueError(f"pooling geometry {spec!r}: {err.decode()}")
    cdef cnp.npy_intp *bd = cnp.PyArray_DIMS(big)
    cdef cnp.npy_intp *sd = cnp.PyArray_DIMS(small)
    if bd[0] != s.n or bd[1] != s.h or bd[2] != s.w or bd[3] != s.c:
        raise ValueError(f"input-sized array of shape {(<object>big).shape} does not match "
                         f"{spec!r}")
    if sd[0] != s.n or sd[1] != s.oh or sd[2] != s.ow or sd[3] != s.c:
        raise ValueError(f"output-sized array of shape {(<object>small).shape} does not "
                         f"match {spec!r}")
    return 0


def pool2d_forward(x, y, argmax, object spec):
    """y = pool(x) for x (N, H, W, C) and preallocated y (N, OH, OW, C), as the
    resolved pooling spec (cnnfast._spec.PoolSpec; its mode: 0 max, 1 avg, 2 min)
    says. argmax: None or an int32 array shaped like y that receives the flat
    index ih*W + iw of each winner (ignored for avg).
    """
    cdef int mode = spec.mode
    cdef int t = _pool_float_type(x, "x")
    cdef cnp.ndarray xa = _pool_arg(x, "x", t, False)
    cdef cnp.ndarray ya = _pool_arg(y, "y", t, True)
    cdef cnp.ndarray aa
    cdef int32_t *ap = NULL
    cdef cf_pool2d_shape s
    _pool_shape(&s, spec, xa, ya, mode)
    if argmax is not None and mode != CF_POOL_AVG:
        aa = _pool_arg(argmax, "indices", cnp.NPY_INT32, True)
        if not _pool_same_shape(aa, ya):
            raise ValueError(
                f"indices: shape {(<object>aa).shape} differs from y's {(<object>ya).shape}"
            )
        ap = <int32_t *>cnp.PyArray_DATA(aa)
    cdef cf_dtype dt = _element_type(xa, "x")
    cdef int nt = cf_get_num_threads()
    cdef const void *xp = cnp.PyArray_DATA(xa)
    cdef void *yp = cnp.PyArray_DATA(ya)
    cdef cf_call_state cs
    with nogil:
        cf_call_begin(&cs)
        cf_pool2d_forward_by_dtype(dt, &s, mode, xp, yp, ap, nt)
        cf_call_end(&cs)


def pool2d_backward(dy, x, argmax, dx, object spec, bint count_strays=False):
    """dx = d pool / dx applied to dy; dx (N, H, W, C) is fully overwritten; spec:
    the resolved pooling (cnnfast._spec.PoolSpec).

    x: the forward input, or None when mode is avg or argmax is given (then x
    is not read). argmax: None or the int32 indices of the forward on x.
    With count_strays, returns how many argmax entries are not a cell of their
    own window (their gradient was dropped); else (or without argmax) 0.
    """
    cdef int t = _pool_float_type(dy, "dy")
    cdef cnp.ndarray dya = _pool_arg(dy, "dy", t, False)
    cdef cnp.ndarray dxa = _pool_arg(dx, "dx", t, True)
    cdef cnp.ndarray xa, aa
    cdef const void *xp = NULL
    cdef int32_t *ap = NULL
    cdef cf_pool2d_shape s
    cdef int mode = spec.mode
    _pool_shape(&s, spec, dxa, dya, mode)
    if mode != CF_POOL_AVG:
        if argmax is not None:
            aa = _pool_arg(argmax, "indices", cnp.NPY_INT32, False)
            if not _pool_same_shape(aa, dya):
                raise ValueError(
                    f"indices: shape {(<object>aa).shape} differs from dy's "
                    f"{(<object>dya).shape}"
                )
            ap = <int32_t *>cnp.PyArray_DATA(aa)
        elif x is None:
            raise ValueError("x: needed for max/min pooling backward without indices")
        else:
            xa = _pool_arg(x, "x", t, False)
            if not _pool_same_shape(xa, dxa):
                raise ValueError(
                    f"x: shape {(<object>xa).shape} differs from dx's {(<object>dxa).shape}"
                )
            xp = cnp.PyArray_DATA(xa)
    cdef cf_dtype dt = _element_type(dya, "dy")
    cdef int nt = cf_get_num_threads()
    cdef const void *dyp = cnp.PyArray_DATA(dya)
    cdef void *dxp = cnp.PyArray_DATA(dxa)
    cdef int64_t stray
    cdef cf_call_state cs
    with nogil:
        cf_call_begin(&cs)
        stray = cf_pool2d_backward_by_dtype(dt, &s, mode, dyp, xp, ap, dxp, count_strays, nt)
        cf_call_end(&cs)
    return int(stray)


def pool2d_first_stray_index(argmax, object spec):
    """The flat position in argmax (N, OH, OW, C) of the first index that is not a
    cell of its own window of the spec's (H, W) plane, or -1 when every index is one.

    spec: the resolved pooling (cnnfast._spec.PoolSpec) whose windows the indices
    pick from."""
    cdef cnp.ndarray aa = _pool_arg(argmax, "indices", cnp.NPY_INT32, False)
    cdef cf_pool2d_shape s = _pool_fields(spec)
    cdef const char *err = cf_pool2d_shape_error(&s, spec.mode)
    if err != NULL:
        raise ValueError(f"pooling geometry {spec!r}: {err.decode()}")
    cdef cnp.npy_intp *ad = cnp.PyArray_DIMS(aa)
    if ad[0] != s.n or ad[1] != s.oh or ad[2] != s.ow or ad[3] != s.c:
        raise ValueError(f"indices of shape {(<object>aa).shape} do not match {spec!r}")
    cdef int nt = cf_get_num_threads()
    cdef const int32_t *ap = <const int32_t *>cnp.PyArray_DATA(aa)
    cdef int64_t pos
    cdef cf_call_state cs
    with nogil:
        cf_call_begin(&cs)
        pos = cf_pool2d_first_stray_index(&s, ap, nt)
        cf_call_end(&cs)
    return int(pos)
