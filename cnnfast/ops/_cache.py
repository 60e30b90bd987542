"""The functional API's cache of resolved problems.

A call such as ``conv2d(x, k, padding="same")`` resolves its geometry
(``cnnfast._spec``) from the shapes and the arguments; a training loop or a
server makes the same call with the same shapes many times. The resolved spec
is a pure function of those values, so it is kept in a dictionary keyed on
them: a repeated call pays a lookup instead of the resolution and its checks.

Only plain argument values are keys: ints, strings, None, and tuples of ints.
A bool or a float compares equal to an int (``True == 1``) but is an error
where an int is right, so such values, like lists and nested paddings, are
resolved afresh each time (with the same result, or the same error). The
dictionary is emptied when it reaches ``MAX_ENTRIES``: a bound, not an LRU,
since a program uses a handful of shapes.
"""

from __future__ import annotations

from typing import Any, Callable

from .. import _spec

MAX_ENTRIES = 1024

_PLAIN = (int, str, type(None))


def _plain(value: Any) -> bool:
    kind = type(value)
    if kind in _PLAIN:
        return True
    return kind is tuple and all(type(v) is int for v in value)


def _cached(resolve: Callable[..., Any], n_shapes: int) -> Callable[..., Any]:
    """``resolve`` (whose first ``n_shapes`` arguments are array shapes: tuples of
    ints by construction) with its results kept per plain argument set."""
    entries: dict[tuple, Any] = {}

    def lookup(*args: Any) -> Any:
        for a in args[n_shapes:]:
            if not _plain(a):
                return resolve(*args)
        try:
            return entries[args]
        except KeyError:
            pass
        spec = resolve(*args)
        if len(entries) >= MAX_ENTRIES:
            entries.clear()
        entries[args] = spec
        return spec

    lookup.__doc__ = resolve.__doc__
    lookup.__name__ = resolve.__name__
    lookup.cache_clear = entries.clear  # type: ignore[attr-defined]
    return lookup


conv_spec = _cached(_spec.conv_spec, 2)
pool_spec = _cached(_spec.pool_spec, 1)
conv_pool_spec = _cached(_spec.conv_pool_spec, 2)
