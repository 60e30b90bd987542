"""Optimizers with Keras' update rules: SGD (momentum, Nesterov), Adam, RMSprop.

``learning_rate`` may be set between steps (``model.optimizer.learning_rate = x``, as
the Keras callbacks do); the next step uses it. ``get_config()`` gives the constructor
arguments and ``state()`` / ``set_state()`` the step count and per-parameter slots
(what ``cnnfast.saving`` stores).

``apply(params, grads)`` updates the parameter arrays *in place* (so models,
layers and optimizer state keep referring to the same arrays). State (momenta,
moments) is allocated once per parameter on the first call, in the parameter's
dtype, and every update is written with ``out=`` into it: no per-step allocation
beyond one scratch array per parameter.

Formulas (as in ``keras.optimizers``):
- SGD: ``v = momentum*v - lr*g``; ``w += v`` or, with Nesterov, ``w += momentum*v - lr*g``;
  without momentum ``w -= lr*g``.
- Adam: ``m += (1-b1)(g-m)``, ``v += (1-b2)(g*g-v)``,
  ``w -= lr*sqrt(1-b2^t)/(1-b1^t) * m / (sqrt(v) + eps)`` with ``eps = 1e-7``.
- RMSprop: ``a = rho*a + (1-rho)*g*g``, ``w -= lr*g / sqrt(a + eps)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .ops import empty_aligned
from .ops import training as _training


def _zeros_aligned(p: np.ndarray) -> np.ndarray:
    """Optimizer state like p, 64-byte aligned (the fused update streams it as vectors)."""
    z = empty_aligned(p.shape, p.dtype)
    z.fill(0)
    return z


def _fusable(p: np.ndarray, *others: np.ndarray) -> bool:
    """True when the fused C update can run: same float dtype, aligned, C-contiguous,
    writable."""
    if (p.dtype not in (np.float32, np.float64) or not p.flags.c_contiguous
            or not p.flags.aligned):
        return False
    return all(
        o.dtype == p.dtype and o.flags.c_contiguous and o.flags.aligned and o.size == p.size
        for o in others
    ) and p.flags.writeable

__all__ = ["Optimizer", "SGD", "Adam", "RMSprop", "get"]


class Optimizer:
    """Base class: keeps ``iterations`` and per-parameter state."""

    #: the per-parameter state arrays, by attribute name (subclasses set it)
    _slot_names: tuple[str, ...] = ()

    def __init__(self, learning_rate: float):
        self.learning_rate = learning_rate
        self.iterations = 0
        self._shapes: list[tuple] = []
        self._scratch: list[np.ndarray] = []

    @property
    def learning_rate(self) -> float:
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
            raise TypeError(f"learning_rate must be a number (cnnfast has no learning-rate "
                            f"schedules: use LearningRateScheduler), got {value!r}")
        lr = float(value)
        if not lr > 0 or not math.isfinite(lr):
            raise ValueError(f"learning_rate must be a positive number, got {value!r}")
        self._learning_rate = lr

    def get_config(self) -> dict:
        """The constructor arguments (``type(self)(**get_config())`` is the same optimizer)."""
        return {"learning_rate": self.learning_rate}

    def state(self) -> dict[str, list[np.ndarray]]:
        """The per-parameter state arrays by slot name (empty before the first step)."""
        return {name: list(getattr(self, name)) for name in self._slot_names}

    def set_state(self, params: Sequence[np.ndarray], iterations: int,
                  slots: dict[str, Sequence[np.ndarray]]) -> None:
        """Restore the step count and the slots (shaped like ``state()``) for ``params``."""
        self._build(params)
        for name in self._slot_names:
            own = getattr(self, name)
            given = list(slots.get(name, []))
            if len(given) != len(own):
                raise ValueError(f"optimizer slot {name}: {len(own)} arrays expected, "
                                 f"got {len(given)}")
            for dst, src in zip(own, given):
                if np.shape(src) != dst.shape:
                    raise ValueError(f"optimizer slot {name}: shape {dst.shape} expected, "
                                     f"got {np.shape(src)}")
                np.copyto(dst, src, casting="unsafe")
        self.iterations = int(iterations)

    def _build(self, params: Sequence[np.ndarray]) -> None:
        self._shapes = [(p.shape, p.dtype) for p in params]
        self._scratch = [np.empty_like(p) for p in params]
        self._build_state(params)

    def _build_state(self, params: Sequence[np.ndarray]) -> None:
        pass

    def build(self, params: Sequence[np.ndarray]) -> None:
        """Allocate the state for ``params`` (zeros), as the first ``apply`` does; a
        state already built for their shapes is kept."""
        if [(p.shape, p.dtype) for p in params] != self._shapes:
            self._build(params)

    def apply(self, params: Sequence[np.ndarray], grads: Sequence[np.ndarray]) -> None:
        """One update step of ``params`` (in place) with ``grads``."""
        if len(params) != len(grads):
            raise ValueError(f"{len(params)} parameters but {len(grads)} gradients")
        if [(p.shape, p.dtype) for p in params] != self._shapes:
            self._build(params)
        self.iterations += 1
        for i, (p, g) in enumerate(zip(params, grads)):
            self._update(i, p, g, self._scratch[i])

    def _update(self, i: int, p: np.ndarray, g: np.ndarray, tmp: np.ndarray) -> None:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(learning_rate={self.learning_rate})"


class SGD(Optimizer):
    def __init__(self, learning_rate: float = 0.01, momentum: float = 0.0,
                 nesterov: bool = False):
        super().__init__(learning_rate)
        if not 0.0 <= float(momentum) <= 1.0:
            raise ValueError(f"momentum must be in [0, 1], got {momentum!r}")
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)
        self._velocity: list[np.ndarray] = []
        self._slot_names = ("_velocity",) if self.momentum else ()

    def get_config(self):
        return {"learning_rate": self.learning_rate, "momentum": self.momentum,
                "nesterov": self.nesterov}

    def _build_state(self, params):
        self._velocity = [_zeros_aligned(p) for p in params] if self.momentum else []

    def _update(self, i, p, g, tmp):
        lr = self.learning_rate
        if not self.momentum:
            np.multiply(g, lr, out=tmp)
            p -= tmp
            return
        v = self._velocity[i]
        v *= self.momentum
        np.multiply(g, lr, out=tmp)
        v -= tmp
        if self.nesterov:
            # w += momentum * v - lr * g   (tmp holds lr * g)
            p -= tmp
            np.multiply(v, self.momentum, out=tmp)
            p += tmp
        else:
            p += v


class Adam(Optimizer):
    def __init__(self, learning_rate: float = 0.001, beta_1: float = 0.9,
                 beta_2: float = 0.999, epsilon: float = 1e-7):
        super().__init__(learning_rate)
        for name, b in (("beta_1", beta_1), ("beta_2", beta_2)):
            if not 0.0 <= float(b) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {b!r}")
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)
        self._m: list[np.ndarray] = []
        self._v: list[np.ndarray] = []

    _slot_names = ("_m", "_v")

    def get_config(self):
        return {"learning_rate": self.learning_rate, "beta_1": self.beta_1,
                "beta_2": self.beta_2, "epsilon": self.epsilon}

    def _build_state(self, params):
        self._m = [_zeros_aligned(p) for p in params]
        self._v = [_zeros_aligned(p) for p in params]

    def _update(self, i, p, g, tmp):
        t = self.iterations
        alpha = self.learning_rate * math.sqrt(1.0 - self.beta_2**t) / (1.0 - self.beta_1**t)
        m, v = self._m[i], self._v[i]
        if _fusable(p, g, m, v):
            # one fused pass in C; the same operations in the same order as below
            _training.adam_update(p, g, m, v, alpha, 1.0 - self.beta_1, 1.0 - self.beta_2,
                                  self.epsilon)
            return
        # m += (g - m) * (1 - b1)
        np.subtract(g, m, out=tmp)
        tmp *= 1.0 - self.beta_1
        m += tmp
        # v += (g*g - v) * (1 - b2)
        np.multiply(g, g, out=tmp)
        tmp -= v
        tmp *= 1.0 - self.beta_2
        v += tmp
        # w -= alpha * m / (sqrt(v) + eps)
        np.sqrt(v, out=tmp)
        tmp += self.epsilon
        np.divide(m, tmp, out=tmp)
        tmp *= alpha
        p -= tmp


class RMSprop(Optimizer):
    """Keras's RMSprop: ``a = rho * a + (1 - rho) * g**2``, ``p -= lr * g / sqrt(a + eps)``."""

    def __init__(self, learning_rate: float = 0.001, rho: float = 0.9, epsilon: float = 1e-7):
        super().__init__(learning_rate)
        if not 0.0 <= float(rho) < 1.0:
            raise ValueError(f"rho must be in [0, 1), got {rho!r}")
        self.rho, self.epsilon = float(rho), float(epsilon)
        self._a: list[np.ndarray] = []

    _slot_names = ("_a",)

    def get_config(self):
        return {"learning_rate": self.learning_rate, "rho": self.rho, "epsilon": self.epsilon}

    def _build_state(self, params):
        self._a = [_zeros_aligned(p) for p in params]

    def _update(self, i, p, g, tmp):
        a = self._a[i]
        a *= self.rho
        np.multiply(g, g, out=tmp)
        tmp *= 1.0 - self.rho
        a += tmp
        # Keras's form: epsilon inside the square root (lr * g / sqrt(a + eps));
        # outside it, gradients near sqrt(eps) would take steps several times larger
        np.add(a, self.epsilon, out=tmp)
        np.sqrt(tmp, out=tmp)
        np.divide(g, tmp, out=tmp)
        tmp *= self.learning_rate
        p -= tmp


_REGISTRY = {"sgd": SGD, "adam": Adam, "rmsprop": RMSprop}
#: class name -> class, for configs (``cnnfast.saving``)
CLASSES = {cls.__name__: cls for cls in (SGD, Adam, RMSprop)}


def get(identifier: str | Optimizer) -> Optimizer:
    """Resolve ``"sgd"`` / ``"adam"`` / ``"rmsprop"`` or pass an ``Optimizer`` through."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str):
        key = identifier.lower()
        if key in _REGISTRY:
            return _REGISTRY[key]()
        raise ValueError(
            f"unknown optimizer {identifier!r}; expected one of {sorted(_REGISTRY)}"
        )
    raise TypeError(f"optimizer must be a name or an Optimizer, got {identifier!r}")
