"""The functional API's cache of resolved problems.

A call such as ``conv2d(x, k, padding="same")`` resolves its geometry
(``cnnfast._spec``) from the shapes and the arguments; a training loop or a
server makes the same call with the same shapes many times. The resolved spec
is a pure function of those values, so it is cached on them (a bounded LRU):
a repeated call pays a dictionary lookup instead of the resolution and its
checks. Arguments that are not hashable (a padding given as a list) are made
tuples; anything still unhashable is resolved afresh, with the same result.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

from .. import _spec


def _hashable(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_hashable(v) for v in value)
    return value


def _cached(resolve: Callable[..., Any]) -> Callable[..., Any]:
    cached = functools.lru_cache(maxsize=512)(resolve)

    @functools.wraps(resolve)
    def lookup(*args: Any) -> Any:
        try:
            return cached(*args)
        except TypeError:  # an unhashable argument (a list, an array as padding)
            try:
                key = tuple(_hashable(a) for a in args)
                hash(key)
            except TypeError:
                return resolve(*args)
            return cached(*key)

    lookup.cache_clear = cached.cache_clear  # type: ignore[attr-defined]
    lookup.cache_info = cached.cache_info  # type: ignore[attr-defined]
    return lookup


# The argument values the cache keys on must compare equal exactly when they
# resolve alike; True == 1 would conflate a bool argument (refused) with 1, so
# the key carries each argument's type alongside it.
def _typed(resolve: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(resolve)
    def on_typed(*typed_args: Any) -> Any:
        return resolve(*typed_args[::2])

    cached = _cached(on_typed)

    @functools.wraps(resolve)
    def lookup(*args: Any) -> Any:
        key = []
        for a in args:
            key += (a, _type_key(a))
        return cached(*key)

    lookup.cache_clear = cached.cache_clear  # type: ignore[attr-defined]
    return lookup


def _type_key(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return (type(value), tuple(_type_key(v) for v in value))
    return type(value)


conv_spec = _typed(_spec.conv_spec)
pool_spec = _typed(_spec.pool_spec)
conv_pool_spec = _typed(_spec.conv_pool_spec)
