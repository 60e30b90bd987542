# A model's inference as one C call (csrc/chain.h), included into _kernels.pyx
# after _pool.pxi and _conv_pool.pxi (``include "_chain.pxi"``).
#
# The caller (cnnfast.ops.training.InferenceChain, built by the layer API's
# plan) hands over the steps with their resolved specs and weight arrays once;
# this class copies them into C structs, checks them (geometry in C, the
# weights' dtypes and shapes, each step's input the size of the one before's
# output) and keeps references to every array the structs point into. A run
# then checks the input and output arrays and makes one C call without the GIL.

from libc.stdlib cimport free, malloc
from libc.string cimport memcpy

cdef extern from "chain.h" nogil:
    enum:
        CF_CHAIN_CONV
        CF_CHAIN_CONV_POOL
        CF_CHAIN_POOL
        CF_CHAIN_DENSE
        CF_CHAIN_SOFTMAX
    ctypedef struct cf_chain_step:
        int op
        cf_conv2d_shape conv
        cf_pool2d_shape pool
        int pool_mode
        int relu
        int64_t rows, depth, units
        const void *kernel
        const void *bias
        const void *src
        void *dst
    const char *cf_chain_step_error(const cf_chain_step *st)
    int64_t cf_chain_step_in_elems(const cf_chain_step *st)
    int64_t cf_chain_step_out_elems(const cf_chain_step *st)
    int cf_chain_run_by_dtype(cf_dtype dt, const cf_chain_step *steps, int64_t nsteps,
                              int nthreads)


cdef class InferenceChain:
    """Steps of inference run by one C call (see cnnfast.ops.training.InferenceChain).

    ``steps``: tuples ``("conv", ConvSpec, kernel, bias, relu)``,
    ``("conv_pool", ConvPoolSpec, kernel, bias)``, ``("pool", PoolSpec)``,
    ``("dense", rows, kernel (depth, units), bias, relu)``, ``("softmax", rows, units)``;
    ``alloc(count)``: an aligned 1-D array of ``count`` values of ``dtype`` (the
    buffers between the steps, two, used in turn: one for the outputs of the even
    steps, one for the odd, each as large as the largest it holds).
    """

    cdef cf_chain_step *steps
    cdef int64_t nsteps
    cdef cf_dtype dt
    cdef readonly object dtype
    cdef readonly tuple in_shape, out_shape
    cdef list keep

    def __cinit__(self):
        self.steps = NULL
        self.nsteps = 0

    def __dealloc__(self):
        free(self.steps)

    def __init__(self, dtype, tuple in_shape, tuple out_shape, list steps, object alloc):
        if not steps:
            raise ValueError("an inference chain needs at least one step")
        self.dtype = np.dtype(dtype)
        if self.dtype == np.float32:
            self.dt = CF_FLOAT32
        elif self.dtype == np.float64:
            self.dt = CF_FLOAT64
        else:
            raise TypeError(f"dtype: unsupported {self.dtype} (float32 or float64)")
        self.in_shape, self.out_shape = in_shape, out_shape
        self.keep = []
        cdef int64_t n = len(steps), i
        # runnable only once all of this succeeds (nsteps > 0): a chain whose
        # construction raised, or is raising now, runs nothing
        self.nsteps = 0
        free(self.steps)
        self.steps = <cf_chain_step *>malloc(n * sizeof(cf_chain_step))
        if self.steps == NULL:
            raise MemoryError()
        cdef cf_chain_step *st
        cdef const char *err
        cdef int64_t count, expect = 1
        cdef int64_t biggest[2]
        biggest[0] = biggest[1] = 0
        for d in in_shape:
            expect *= d
        for i in range(n):
            st = &self.steps[i]
            self._fill(st, steps[i], i)
            err = cf_chain_step_error(st)
            if err != NULL:
                raise ValueError(f"inference step {i} {steps[i][0]!r}: {err.decode()}")
            count = cf_chain_step_in_elems(st)
            if count != expect:
                raise ValueError(f"inference step {i} {steps[i][0]!r} takes {count} values, "
                                 f"the one before gives {expect}")
            expect = cf_chain_step_out_elems(st)
            if i < n - 1 and expect > biggest[i % 2]:
                biggest[i % 2] = expect
        count = 1
        for d in out_shape:
            count *= d
        if count != expect:
            raise ValueError(f"the last inference step gives {expect} values, out_shape "
                             f"{out_shape} holds {count}")
        cdef cnp.ndarray buf
        bufs = [alloc(biggest[0]), alloc(biggest[1])] if n > 1 else []
        for i in range(len(bufs)):
            _check_out(bufs[i], self.dtype, (biggest[i],), "chain buffer")
        self.keep.extend(bufs)
        # step i writes buffer i % 2 and step i + 1 reads it (the first reads the
        # input, the last writes the output: set by each run)
        for i in range(n - 1):
            buf = bufs[i % 2]
            self.steps[i].dst = cnp.PyArray_DATA(buf)
            self.steps[i + 1].src = cnp.PyArray_DATA(buf)
        self.nsteps = n

    cdef int _fill(self, cf_chain_step *st, tuple step, int64_t i) except -1:
        st.op, st.relu, st.pool_mode = -1, 0, 0
        st.rows = st.depth = st.units = 0
        st.kernel = st.bias = st.src = NULL
        st.dst = NULL
        kind = step[0]
        dtype = self.dtype
        if kind == "conv":
            _, spec, kernel, bias, relu = step
            st.op = CF_CHAIN_CONV
            st.conv = _conv_struct(spec)
            st.relu = bool(relu)
            self._weights(st, kernel, bias, (st.conv.kh, st.conv.kw, st.conv.c, st.conv.f))
        elif kind == "conv_pool":
            _, spec, kernel, bias = step
            st.op = CF_CHAIN_CONV_POOL
            _conv_pool_structs(spec, &st.conv, &st.pool)
            st.pool_mode = spec.pool.mode
            st.relu = bool(spec.relu)
            self._weights(st, kernel, bias, (st.conv.kh, st.conv.kw, st.conv.c, st.conv.f))
        elif kind == "pool":
            _, spec = step
            st.op = CF_CHAIN_POOL
            st.pool = _pool_fields(spec)
            st.pool_mode = spec.mode
        elif kind == "dense":
            _, rows, kernel, bias, relu = step
            st.op = CF_CHAIN_DENSE
            st.rows = rows
            if not isinstance(kernel, cnp.ndarray) or (<cnp.ndarray>kernel).ndim != 2:
                raise ValueError(f"inference step {i} 'dense': kernel must be a 2-D array")
            st.depth, st.units = kernel.shape
            st.relu = bool(relu)
            self._weights(st, kernel, bias, (st.depth, st.units))
        elif kind == "softmax":
            _, rows, units = step
            st.op = CF_CHAIN_SOFTMAX
            st.rows, st.units = rows, units
        else:
            raise ValueError(f"inference step {i}: unknown kind {kind!r}")
        return 0

    cdef int _weights(self, cf_chain_step *st, object kernel, object bias,
                      tuple kshape) except -1:
        if not isinstance(kernel, cnp.ndarray):
            raise ValueError("kernel: expected a numpy array")
        _check(kernel, self.dtype, kshape, "kernel")
        st.kernel = cnp.PyArray_DATA(<cnp.ndarray>kernel)
        self.keep.append(kernel)
        if bias is not None:
            if not isinstance(bias, cnp.ndarray):
                raise ValueError("bias: expected a numpy array")
            _check(bias, self.dtype, (kshape[len(kshape) - 1],), "bias")
            st.bias = cnp.PyArray_DATA(<cnp.ndarray>bias)
            self.keep.append(bias)
        return 0

    def run(self, cnp.ndarray x, cnp.ndarray out):
        """out = the chain applied to x (x of in_shape, out of out_shape, both of the
        chain's dtype, aligned and C-contiguous, not overlapping)."""
        if self.nsteps == 0:
            raise ValueError("this inference chain was not built (its construction failed)")
        _check(x, self.dtype, self.in_shape, "x")
        _check_out(out, self.dtype, self.out_shape, "out")
        if _overlap(x, out):
            raise ValueError("out: must not overlap x")
        cdef size_t size = <size_t>self.nsteps * sizeof(cf_chain_step)
        # a copy per run: the run's own input and output pointers, the template untouched
        cdef cf_chain_step *run = <cf_chain_step *>malloc(size)
        if run == NULL:
            raise MemoryError()
        memcpy(run, self.steps, size)
        # the arrays this copy points into, held for the call (a concurrent __init__
        # replaces self.keep)
        cdef list alive = self.keep
        run[0].src = cnp.PyArray_DATA(x)
        run[self.nsteps - 1].dst = cnp.PyArray_DATA(out)
        cdef int nt = cf_get_num_threads()
        cdef int rc
        cdef cf_call_state cs
        with nogil:
            cf_call_begin(&cs)
            rc = cf_chain_run_by_dtype(self.dt, run, self.nsteps, nt)
            cf_call_end(&cs)
        free(run)
        del alive
        if rc != 0:
            raise MemoryError("cnnfast: could not allocate an inference workspace")
