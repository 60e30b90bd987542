"""The README's functional-API and threads examples run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks() -> list[str]:
    if not README.exists():
        pytest.skip("README.md is not next to the tests (installed without the source tree)")
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_functional_and_threads_examples_run():
    blocks = _python_blocks()
    functional = next(b for b in blocks if "cnnfast.conv2d(" in b and "Sequential" not in b)
    threads = next(b for b in blocks if "set_num_threads" in b)
    namespace: dict = {}
    exec(compile(functional, "README functional example", "exec"), namespace)
    try:
        exec(compile(threads, "README threads example", "exec"), namespace)
    finally:
        import cnnfast

        cnnfast.set_num_threads(None)
