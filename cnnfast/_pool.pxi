# Pooling wrappers, included into _kernels.pyx (``include "_pool.pxi"``).
#
# cnnfast.ops validates the user's arguments and allocates the outputs; these
# wrappers re-check only what memory safety needs: dtypes, C-contiguity, 4-D
# shapes that agree with each other, and a window geometry under which every
# window holds an in-bounds cell (the C kernels read the first in-bounds cell
# of each window unconditionally). Then they release the GIL and call C.

from libc.stdint cimport int32_t, int64_t

cimport numpy as cnp

cdef extern from "pool2d.h" nogil:
    enum: CF_POOL_MAX, CF_POOL_AVG, CF_POOL_MIN
    ctypedef struct cf_pool2d_shape:
        int64_t n, h, w, c
        int64_t oh, ow
        int64_t kh, kw
        int64_t sh, sw
        int64_t pt, pl
    void cf_pool2d_forward_f32(const cf_pool2d_shape *s, int mode, const float *x,
                               float *y, int32_t *argmax, int nthreads)
    void cf_pool2d_forward_f64(const cf_pool2d_shape *s, int mode, const double *x,
                               double *y, int32_t *argmax, int nthreads)
    int64_t cf_pool2d_backward_f32(const cf_pool2d_shape *s, int mode, const float *dy,
                                   const float *x, const int32_t *argmax, float *dx,
                                   int count_strays, int nthreads)
    int64_t cf_pool2d_backward_f64(const cf_pool2d_shape *s, int mode, const double *dy,
                                   const double *x, const int32_t *argmax, double *dx,
                                   int count_strays, int nthreads)
    int64_t cf_pool2d_first_stray_index(const cf_pool2d_shape *s, const int32_t *argmax,
                                        int nthreads)

cdef extern from "threads.h" nogil:
    int cf_get_num_threads()


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


cdef int _pool_shape(cf_pool2d_shape *s, cnp.ndarray big, cnp.ndarray small,
                     Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                     Py_ssize_t pt, Py_ssize_t pl, int mode) except -1:
    """Fill s from the input-sized and output-sized arrays and check it."""
    cdef cnp.npy_intp *bd = cnp.PyArray_DIMS(big)
    cdef cnp.npy_intp *sd = cnp.PyArray_DIMS(small)
    s.n, s.h, s.w, s.c = bd[0], bd[1], bd[2], bd[3]
    s.oh, s.ow = sd[1], sd[2]
    s.kh, s.kw, s.sh, s.sw, s.pt, s.pl = kh, kw, sh, sw, pt, pl
    if mode != CF_POOL_MAX and mode != CF_POOL_AVG and mode != CF_POOL_MIN:
        raise ValueError(f"mode: expected 0 (max), 1 (avg) or 2 (min), got {mode}")
    if sd[0] != bd[0] or sd[3] != bd[3]:
        raise ValueError(
            f"pooling arrays disagree on batch or channels: "
            f"{(<object>big).shape} vs {(<object>small).shape}"
        )
    if min(kh, kw, sh, sw) < 1 or min(s.h, s.w, s.c, s.oh, s.ow) < 1:
        raise ValueError(
            f"pool_size/strides must be >= 1 and H, W, C, OH, OW >= 1, got window "
            f"({kh}, {kw}), strides ({sh}, {sw}), input {(<object>big).shape}, "
            f"output {(<object>small).shape}"
        )
    # pt < kh puts an in-bounds row in the first window; a last window that
    # starts inside the image does the same for the last one.
    # in Python integers: with huge strides the int64 products could wrap
    if not (0 <= pt < kh and 0 <= pl < kw) or \
            (int(s.oh) - 1) * int(sh) - int(pt) >= int(s.h) or \
            (int(s.ow) - 1) * int(sw) - int(pl) >= int(s.w):
        raise ValueError(
            f"padding: geometry leaves a window without in-bounds cells (input "
            f"{(<object>big).shape}, output {(<object>small).shape}, window ({kh}, {kw}), strides "
            f"({sh}, {sw}), padding top/left ({pt}, {pl}))"
        )
    if s.h * s.w > 2147483647:
        raise ValueError(f"x: plane {s.h}x{s.w} too large for int32 indices")
    return 0


def pool2d_forward(x, y, argmax, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh,
                   Py_ssize_t sw, Py_ssize_t pt, Py_ssize_t pl, int mode):
    """y = pool(x) for x (N, H, W, C) and preallocated y (N, OH, OW, C).

    mode: 0 max, 1 avg, 2 min. argmax: None or an int32 array shaped like y
    that receives the flat index ih*W + iw of each winner (ignored for avg).
    """
    cdef int t = _pool_float_type(x, "x")
    cdef cnp.ndarray xa = _pool_arg(x, "x", t, False)
    cdef cnp.ndarray ya = _pool_arg(y, "y", t, True)
    cdef cnp.ndarray aa
    cdef int32_t *ap = NULL
    cdef cf_pool2d_shape s
    _pool_shape(&s, xa, ya, kh, kw, sh, sw, pt, pl, mode)
    if argmax is not None and mode != CF_POOL_AVG:
        aa = _pool_arg(argmax, "indices", cnp.NPY_INT32, True)
        if not _pool_same_shape(aa, ya):
            raise ValueError(
                f"indices: shape {(<object>aa).shape} differs from y's {(<object>ya).shape}"
            )
        ap = <int32_t *>cnp.PyArray_DATA(aa)
    cdef int nt = cf_get_num_threads()
    cdef void *xp = cnp.PyArray_DATA(xa)
    cdef void *yp = cnp.PyArray_DATA(ya)
    cdef cf_call_state cs
    if t == cnp.NPY_FLOAT32:
        with nogil:
            cf_call_begin(&cs)
            cf_pool2d_forward_f32(&s, mode, <const float *>xp, <float *>yp, ap, nt)
            cf_call_end(&cs)
    else:
        with nogil:
            cf_call_begin(&cs)
            cf_pool2d_forward_f64(&s, mode, <const double *>xp, <double *>yp, ap, nt)
            cf_call_end(&cs)


def pool2d_backward(dy, x, argmax, dx, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh,
                    Py_ssize_t sw, Py_ssize_t pt, Py_ssize_t pl, int mode,
                    bint count_strays=False):
    """dx = d pool / dx applied to dy; dx (N, H, W, C) is fully overwritten.

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
    _pool_shape(&s, dxa, dya, kh, kw, sh, sw, pt, pl, mode)
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
    cdef int nt = cf_get_num_threads()
    cdef void *dyp = cnp.PyArray_DATA(dya)
    cdef void *dxp = cnp.PyArray_DATA(dxa)
    cdef int64_t stray
    cdef cf_call_state cs
    if t == cnp.NPY_FLOAT32:
        with nogil:
            cf_call_begin(&cs)
            stray = cf_pool2d_backward_f32(&s, mode, <const float *>dyp, <const float *>xp,
                                           ap, <float *>dxp, count_strays, nt)
            cf_call_end(&cs)
    else:
        with nogil:
            cf_call_begin(&cs)
            stray = cf_pool2d_backward_f64(&s, mode, <const double *>dyp,
                                           <const double *>xp, ap, <double *>dxp,
                                           count_strays, nt)
            cf_call_end(&cs)
    return int(stray)


def pool2d_first_stray_index(argmax, Py_ssize_t h, Py_ssize_t w, Py_ssize_t kh,
                             Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t pt,
                             Py_ssize_t pl):
    """The flat position in argmax (N, OH, OW, C) of the first index that is not a
    cell of its own window of an (H, W) plane, or -1 when every index is one."""
    cdef cnp.ndarray aa = _pool_arg(argmax, "indices", cnp.NPY_INT32, False)
    cdef cf_pool2d_shape s
    s.n = cnp.PyArray_DIMS(aa)[0]
    s.oh = cnp.PyArray_DIMS(aa)[1]
    s.ow = cnp.PyArray_DIMS(aa)[2]
    s.c = cnp.PyArray_DIMS(aa)[3]
    s.h, s.w, s.kh, s.kw, s.sh, s.sw, s.pt, s.pl = h, w, kh, kw, sh, sw, pt, pl
    if min(h, w, kh, kw, sh, sw) < 1 or pt < 0 or pl < 0:
        raise ValueError("pool2d_first_stray_index: sizes must be >= 1, paddings >= 0")
    cdef int nt = cf_get_num_threads()
    cdef const int32_t *ap = <const int32_t *>cnp.PyArray_DATA(aa)
    cdef int64_t pos
    cdef cf_call_state cs
    with nogil:
        cf_call_begin(&cs)
        pos = cf_pool2d_first_stray_index(&s, ap, nt)
        cf_call_end(&cs)
    return int(pos)
