"""Weight initialisers with Keras' names, defaults and formulas.

Fans follow Keras: a 2-D shape ``(fan_in, fan_out)``; a conv kernel in Keras'
``(kh, kw, in_channels, filters)`` layout has ``fan_in = kh*kw*in_channels`` and
``fan_out = kh*kw*filters`` (the receptive field counts). The normal variants of
Glorot and He draw from a normal truncated at two standard deviations, rescaled so
that the result has the intended variance (Keras' 0.8796... factor).

Draws come from ``cnnfast.utils.get_rng()`` unless the initialiser was given its own
``seed``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from . import utils

__all__ = [
    "Initializer", "GlorotUniform", "GlorotNormal", "HeUniform", "HeNormal",
    "Zeros", "Ones", "RandomNormal", "RandomUniform", "compute_fans", "get",
]

# std of a standard normal truncated to [-2, 2]; dividing by it restores unit variance.
_TRUNC_STD = 0.87962566103423978


def compute_fans(shape: Sequence[int]) -> tuple:
    """(fan_in, fan_out) of a weight shape, as Keras computes them."""
    shape = tuple(int(s) for s in shape)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


class Initializer:
    """Base class: ``init(shape, dtype) -> ndarray``."""

    def __init__(self, seed: int | None = None):
        self.seed = seed
        self._own_rng = None if seed is None else np.random.default_rng(seed)

    def _rng(self) -> np.random.Generator:
        return self._own_rng if self._own_rng is not None else utils.get_rng()

    def __call__(self, shape: Sequence[int], dtype="float32") -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Zeros(Initializer):
    def __call__(self, shape, dtype="float32"):
        return np.zeros(tuple(shape), dtype=dtype)


class Ones(Initializer):
    def __call__(self, shape, dtype="float32"):
        return np.ones(tuple(shape), dtype=dtype)


class RandomNormal(Initializer):
    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: int | None = None):
        super().__init__(seed)
        self.mean, self.stddev = float(mean), float(stddev)

    def __call__(self, shape, dtype="float32"):
        return self._rng().normal(self.mean, self.stddev, size=tuple(shape)).astype(dtype)


class RandomUniform(Initializer):
    def __init__(self, minval: float = -0.05, maxval: float = 0.05,
                 seed: int | None = None):
        super().__init__(seed)
        self.minval, self.maxval = float(minval), float(maxval)

    def __call__(self, shape, dtype="float32"):
        return self._rng().uniform(self.minval, self.maxval, size=tuple(shape)).astype(dtype)


class VarianceScaling(Initializer):
    """Keras' VarianceScaling: variance ``scale / fan`` with a uniform or truncated normal."""

    def __init__(self, scale: float = 1.0, mode: str = "fan_in",
                 distribution: str = "truncated_normal", seed: int | None = None):
        super().__init__(seed)
        if mode not in ("fan_in", "fan_out", "fan_avg"):
            raise ValueError(f"mode must be fan_in, fan_out or fan_avg, got {mode!r}")
        if distribution not in ("truncated_normal", "uniform"):
            raise ValueError(
                f"distribution must be truncated_normal or uniform, got {distribution!r}"
            )
        self.scale, self.mode, self.distribution = float(scale), mode, distribution

    def __call__(self, shape, dtype="float32"):
        shape = tuple(shape)
        fan_in, fan_out = compute_fans(shape)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        var = self.scale / max(1.0, fan)
        rng = self._rng()
        if self.distribution == "uniform":
            limit = math.sqrt(3.0 * var)
            return rng.uniform(-limit, limit, size=shape).astype(dtype)
        std = math.sqrt(var) / _TRUNC_STD
        return (_truncated_standard_normal(rng, shape) * std).astype(dtype)


def _truncated_standard_normal(rng: np.random.Generator, shape) -> np.ndarray:
    """Standard normal draws restricted to [-2, 2] by redrawing the rejected ones."""
    out = rng.standard_normal(size=shape)
    bad = np.abs(out) > 2.0
    # Each round redraws only the ~4.6% rejected values, so this ends in a few rounds.
    while bad.any():
        out[bad] = rng.standard_normal(size=int(bad.sum()))
        bad = np.abs(out) > 2.0
    return out


class GlorotUniform(VarianceScaling):
    def __init__(self, seed: int | None = None):
        super().__init__(1.0, "fan_avg", "uniform", seed)


class GlorotNormal(VarianceScaling):
    def __init__(self, seed: int | None = None):
        super().__init__(1.0, "fan_avg", "truncated_normal", seed)


class HeUniform(VarianceScaling):
    def __init__(self, seed: int | None = None):
        super().__init__(2.0, "fan_in", "uniform", seed)


class HeNormal(VarianceScaling):
    def __init__(self, seed: int | None = None):
        super().__init__(2.0, "fan_in", "truncated_normal", seed)


_REGISTRY = {
    "glorot_uniform": GlorotUniform,
    "glorot_normal": GlorotNormal,
    "he_uniform": HeUniform,
    "he_normal": HeNormal,
    "zeros": Zeros,
    "ones": Ones,
    "random_normal": RandomNormal,
    "random_uniform": RandomUniform,
}


def get(identifier: str | Initializer) -> Initializer:
    """Resolve a name (``"glorot_uniform"`` ...) or pass an ``Initializer`` through."""
    if isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, str):
        key = identifier.lower()
        if key in _REGISTRY:
            return _REGISTRY[key]()
        raise ValueError(
            f"unknown initializer {identifier!r}; expected one of {sorted(_REGISTRY)}"
        )
    if callable(identifier):
        # A plain function f(shape, dtype) is accepted, as in Keras.
        return _CallableInitializer(identifier)
    raise TypeError(f"initializer must be a name or an Initializer, got {identifier!r}")


class _CallableInitializer(Initializer):
    def __init__(self, fn):
        super().__init__(None)
        self.fn = fn

    def __call__(self, shape, dtype="float32"):
        return np.asarray(self.fn(tuple(shape), dtype), dtype=dtype)
