"""The refusal every ``cnnfast.keras`` module gives for a Keras name cnnfast does not
implement: an ``AttributeError`` naming ``keras.<module>.<name>``, never a stand-in."""

from __future__ import annotations

from collections.abc import Callable


def refuse(module: str, available: list[str]) -> Callable[[str], object]:
    """A module ``__getattr__`` that refuses every name not in the module."""
    prefix = f"keras.{module}." if module else "keras."

    def __getattr__(name: str) -> object:
        if name.startswith("__"):
            raise AttributeError(name)
        raise AttributeError(
            f"{prefix}{name} is not implemented by cnnfast (cnnfast.{prefix.rstrip('.')} "
            f"provides: {', '.join(sorted(available))})")

    return __getattr__
