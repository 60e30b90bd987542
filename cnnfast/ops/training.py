"""The kernels of a training step, for callers that prepare their own arrays: the
layers, the losses and the optimizers of the layer API.

These take arrays that are already C-contiguous, aligned and of one float dtype,
and resolved specs (``cnnfast._spec``) that the caller built once and keeps per
input shape; they do no argument resolution, only the boundary's memory-safety
checks (a wrong array is a ValueError there, never a crash). The numpy-friendly
functions for everyone else are the rest of ``cnnfast.ops``.
"""

from __future__ import annotations

import numpy as np

from .. import _kernels
from ._arrays import empty_aligned


def takes_as_is(first: np.ndarray, *others: np.ndarray) -> bool:
    """Whether the kernels here take these arrays as they are: ndarrays of one float
    dtype (float32 or float64) and one shape, C-contiguous and aligned. Callers that
    have a NumPy route for anything else ask this first."""
    return (isinstance(first, np.ndarray) and first.dtype in (np.float32, np.float64)
            and all(isinstance(a, np.ndarray) and a.dtype == first.dtype
                    and a.shape == first.shape for a in others)
            and all(a.flags.c_contiguous and a.flags.aligned for a in (first, *others)))


def gemm(a: np.ndarray, b: np.ndarray, c: np.ndarray, bias: np.ndarray | None = None,
         relu: bool = False) -> None:
    """``c = a @ b (+ bias) (relu)`` for 2-D arrays of one float dtype: ``c``
    C-contiguous and aligned and sharing no memory with the inputs, ``a`` and ``b``
    with any whole-element strides (transposed views in place), ``bias`` None or
    contiguous (units,). The same kernels, threads and bits as ``ops.matmul`` and
    ``ops.dense``."""
    _kernels.gemm(a, b, c, False, bias, relu)


def relu_mask(dy: np.ndarray, y: np.ndarray) -> None:
    """ReLU backward in place: ``dy = where(y > 0, dy, 0)``, one OpenMP pass."""
    _kernels.relu_mask(dy, y)


def dropout(x: np.ndarray, key: int, rate: float, y: np.ndarray, mask: np.ndarray,
            offset: int = 0) -> None:
    """Inverted dropout forward into ``y`` and ``mask`` (``mask = (u >= rate) / (1 - rate)``,
    ``y = x * mask``), each element's ``u`` drawn from ``(key, offset + index)``: the same
    bits for any thread count. With ``offset = lo`` a call on elements ``[lo, hi)`` of a
    flattened array draws exactly that slice of the whole array's mask."""
    _kernels.dropout(x, key, rate, y, mask, offset)


def softmax_xent(logits: np.ndarray, y_true: np.ndarray, probs: np.ndarray | None,
                 grad: np.ndarray) -> float:
    """Mean softmax cross-entropy of ``logits`` (n, k) against ``y_true``, its gradient
    with respect to the logits written into ``grad``; ``probs`` is softmax(logits)
    when the caller has it, else None."""
    return float(_kernels.softmax_xent(logits, y_true, probs, grad))


def softmax(z: np.ndarray, out: np.ndarray) -> None:
    """``out = softmax(z)`` over the last axis (``exp(z - max) / sum``), both
    C-contiguous, aligned, of one float dtype and shape; ``out`` may be ``z``."""
    _kernels.softmax_rows(z, out)


def adam_update(p: np.ndarray, g: np.ndarray, m: np.ndarray, v: np.ndarray, alpha: float,
                one_minus_beta_1: float, one_minus_beta_2: float, epsilon: float) -> None:
    """One fused Adam step in place on the parameter ``p`` and the moments ``m``, ``v``."""
    _kernels.adam_update(p, g, m, v, alpha, one_minus_beta_1, one_minus_beta_2, epsilon)


def conv2d_forward(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None,
                   y: np.ndarray, spec, relu: bool) -> None:
    """``y = conv(x, kernel) (+ bias) (relu)`` for NHWC ``x``, HWCF ``kernel`` and
    ``y`` of the resolved convolution ``spec`` (ConvSpec)."""
    _kernels.conv2d_forward(x, kernel, bias, y, spec, relu)


def conv2d_backward_input(dy: np.ndarray, kernel: np.ndarray, dx: np.ndarray, spec) -> None:
    """The input gradient ``dx`` (NHWC) of a convolution from ``dy``."""
    _kernels.conv2d_backward_input(dy, kernel, dx, spec)


def conv2d_backward_kernel(x: np.ndarray, dy: np.ndarray, dkernel: np.ndarray,
                           dbias: np.ndarray | None, spec) -> None:
    """The kernel and bias gradients of a convolution (fixed summation order)."""
    _kernels.conv2d_backward_kernel(x, dy, dkernel, dbias, spec)


def pool2d_forward(x: np.ndarray, y: np.ndarray, indices: np.ndarray | None, spec) -> None:
    """Pooling of NHWC ``x`` into ``y`` (and the winners' ``indices``, max/min) as the
    resolved ``spec`` (PoolSpec) says."""
    _kernels.pool2d_forward(x, y, indices, spec)


def pool2d_backward(dy: np.ndarray, x: np.ndarray | None, indices: np.ndarray | None,
                    dx: np.ndarray, spec) -> None:
    """The pooling gradient into ``dx`` (``x`` is read only by max/min without
    ``indices``); indices the caller made are memory-safe whatever their values."""
    _kernels.pool2d_backward(dy, x, indices, dx, spec)


def conv2d_pool2d_forward(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None,
                          y: np.ndarray, indices: np.ndarray | None, spec,
                          mark_dead: bool) -> None:
    """A fused convolution + max/min pooling (``spec``: a ConvPoolSpec with
    ``fused`` true) into ``y`` and ``indices``. ``mark_dead`` (with the spec's ReLU)
    stores -1 for windows ReLU zeroed: the backward's ReLU mask then travels in
    the indices and needs no activations."""
    _kernels.conv2d_pool2d_forward(x, kernel, bias, y, indices, spec, mark_dead)


def conv2d_pool2d_backward(x: np.ndarray, dy: np.ndarray, indices: np.ndarray,
                           kernel: np.ndarray, dx: np.ndarray | None, dkernel: np.ndarray,
                           dbias: np.ndarray | None, spec) -> None:
    """Gradients of :func:`conv2d_pool2d_forward` from its indices (-1: no gradient)."""
    _kernels.conv2d_pool2d_backward(x, dy, indices, kernel, dx, dkernel, dbias, spec, None)


class InferenceChain:
    """Inference steps run by one C call (``csrc/chain.h``): what a one-image
    ``predict`` costs is then the kernels' time, with no Python between the steps.

    ``steps`` (each the same kernel call, with the same arguments, as the layer that
    stands for it makes, so the same bits):

    - ``("conv", ConvSpec, kernel, bias, relu)``: a convolution, HWCF ``kernel``;
    - ``("conv_pool", ConvPoolSpec, kernel, bias)``: a fused convolution + max/min
      pooling (the spec's ReLU), no indices;
    - ``("pool", PoolSpec)``: pooling, no indices;
    - ``("dense", rows, kernel, bias, relu)``: ``(rows, depth) @ kernel (depth, units)``;
    - ``("softmax", rows, units)``: softmax of each row.

    Each step reads the values the one before wrote, in C order (a Flatten or an
    inference Dropout between two steps is no step). The chain keeps references to
    the weight arrays it was given and reads them on every call: in-place updates
    show, a layer's new array does not (its owner builds a new chain). The buffers
    between the steps are the chain's own, so one chain serves one caller at a time.
    """

    def __init__(self, dtype, in_shape: tuple[int, ...], out_shape: tuple[int, ...],
                 steps: list[tuple]) -> None:
        self.in_shape, self.out_shape = tuple(in_shape), tuple(out_shape)
        self.dtype = np.dtype(dtype)
        self._chain = _kernels.InferenceChain(
            self.dtype, self.in_shape, self.out_shape, list(steps),
            lambda count: empty_aligned(count, self.dtype))

    def __call__(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """The chain's output for ``x`` (of ``in_shape``, the chain's dtype, aligned and
        C-contiguous), in ``out`` or a new array."""
        if out is None:
            out = np.empty(self.out_shape, self.dtype)
        self._chain.run(x, out)
        return out
