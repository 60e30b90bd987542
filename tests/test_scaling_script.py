"""benchmarks/scaling.py from the command line: usage errors and its Markdown table."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

import cnnfast

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "scaling.py"

# The fastest run the script allows: the registers-only FMA loop (a few ms a
# call), one round, the minimum 3 calls per sample.
FAST = ["--workloads", "fma", "--repeats", "1", "--sample", "0"]


def _run(*args: str) -> subprocess.CompletedProcess:
    # The script's own directory is first on its sys.path, not the repository:
    # point it at the cnnfast this test process imported, built in place or not.
    env = dict(os.environ)
    pkg_root = str(Path(cnnfast.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [pkg_root, env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True,
                          text=True, env=env, timeout=120)


@pytest.mark.parametrize(
    "option, value",
    [
        ("--workloads", "zzz"),
        ("--workloads", "b,zzz"),
        ("--workloads", ""),
        ("--workloads", "b,,c"),
        ("--threads", "1,-3"),
        ("--threads", "-3"),
        ("--threads", "0"),
        ("--threads", ""),
        ("--threads", "1,,2"),
        ("--threads", "two"),
        ("--threads", "1.5"),
        ("--threads", "1,1"),
        ("--threads", "4097"),
        ("--repeats", "0"),
        ("--sample", "nan"),
        ("--sample", "-1"),
    ],
)
def test_bad_arguments_are_usage_errors(option, value):
    # "--opt=value" so that values such as "-3" and "" reach the option intact
    proc = _run(f"{option}={value}")
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""
    last = proc.stderr.strip().splitlines()[-1]
    assert f"error: argument {option}: " in last
    assert "allowed: " in last


def _table(stdout: str) -> list[list[str]]:
    rows = [line for line in stdout.splitlines() if line.startswith("|")]
    assert rows, stdout
    return [line.strip("|").split("|") for line in rows]


@pytest.mark.parametrize(
    "threads, header",
    [
        # a single count: no baseline to compare with, so no speed-up column
        ("2", ["workload", "2 thr ms"]),
        ("1,2", ["workload", "1 thr ms", "2 thr ms", "x2 vs 1"]),
        ("1,2,3", ["workload", "1 thr ms", "2 thr ms", "3 thr ms", "x2 vs 1", "x3 vs 1"]),
    ],
)
def test_table_columns_agree(threads, header):
    proc = _run("--threads", threads, *FAST)
    assert proc.returncode == 0, proc.stderr
    rows = _table(proc.stdout)
    assert [cell.strip() for cell in rows[0]] == header
    assert [cell.strip() for cell in rows[1]] == ["---"] * len(header)
    assert len(rows) == 3  # header, separator, the FMA row
    assert all(len(row) == len(header) for row in rows)
    assert all(cell.strip() for cell in rows[2])
    speedups = [cell.strip() for cell in rows[2][1 + len(threads.split(",")):]]
    assert all(cell.endswith("x") for cell in speedups)


def test_thread_limit_is_cnnfast_s():
    # scaling.py checks the limit itself (for a clean usage error): it must
    # accept exactly what cnnfast.set_num_threads accepts.
    spec = importlib.util.spec_from_file_location("_scaling_under_test", SCRIPT)
    scaling = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(scaling)
    try:
        cnnfast.set_num_threads(scaling.MAX_THREADS)  # sets the count; starts no threads
        with pytest.raises(ValueError):
            cnnfast.set_num_threads(scaling.MAX_THREADS + 1)
    finally:
        cnnfast.set_num_threads(None)
