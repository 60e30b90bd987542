"""``cnnfast bench --levels avx512,avx2``: one child process per SIMD level, one summary.

cnnfast reads ``CNNFAST_CPU_FEATURES`` and PyTorch its CPU capability when each is
first imported, so every level runs in its own process: ``python -m cnnfast.bench`` with
the same options, ``CNNFAST_CPU_FEATURES=<level>`` and, below AVX-512, the peers capped
the same way (``PEER_CAPS``: oneDNN's and MKL's ISA, ATen's capability and OpenBLAS's
core type, so that PyTorch and numpy's BLAS run their AVX2 code too). At avx512 those
variables are removed, so that the peers run at their best. The child checks that
cnnfast runs at the level asked for (and fails otherwise) and prints PyTorch's
``torch.backends.cpu.get_cpu_capability()`` in its header; its tables stream through as
it prints them; its JSON comes back through a temporary file. A level the CPU lacks is
skipped with the reason. At the end: the targets table of every level
(``targets.format_targets``), and with ``--json`` one document holding every level's run.
ONNX Runtime has no switch for its instruction set: it runs at the CPU's best at every
level, and the header says so.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile

from .._fileio import atomic_write
from .targets import format_targets

# the SIMD levels of cnnfast's x86 build, widest first
LEVELS = ("avx512", "avx2")
_RANK = {"scalar": 0, "avx2": 1, "avx512": 2}
PEER_CAPS: dict[str, dict[str, str]] = {
    "avx512": {},
    "avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2",
             "MKL_ENABLE_INSTRUCTIONS": "AVX2", "OPENBLAS_CORETYPE": "Haswell"},
}
CAP_VARIABLES = ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS",
                 "OPENBLAS_CORETYPE")
# what torch.backends.cpu.get_cpu_capability() says at each level
TORCH_CAPABILITY = {"avx512": "AVX512", "avx2": "AVX2"}


def parse_levels(spec: str) -> list[str]:
    """The levels of ``--levels`` (comma list, each once, in the order given)."""
    out: list[str] = []
    for word in spec.split(","):
        word = word.strip().lower()
        if not word:
            continue
        if word not in LEVELS:
            raise SystemExit(f"cnnfast bench: unknown SIMD level {word!r} in --levels; "
                             f"choose from {', '.join(LEVELS)}")
        if word not in out:
            out.append(word)
    if not out:
        raise SystemExit(f"cnnfast bench: --levels {spec!r} names no level; "
                         f"choose from {', '.join(LEVELS)}")
    return out


def skip_reason(level: str, detected: str) -> str | None:
    """Why ``level`` cannot run on a CPU whose widest level is ``detected``, or None."""
    if _RANK.get(detected, -1) < _RANK[level]:
        return f"skipped: this CPU lacks {level} (cnnfast detects {detected})"
    return None


def level_env(level: str, base: dict[str, str]) -> dict[str, str]:
    """The child's environment: ``base`` with cnnfast's level and the peers' caps set
    (or removed, where the level caps nothing), and this cnnfast importable."""
    env = {k: v for k, v in base.items() if k not in CAP_VARIABLES}
    env["CNNFAST_CPU_FEATURES"] = level
    env.update(PEER_CAPS[level])
    # the child must import the cnnfast this process runs, wherever it came from
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, base.get("PYTHONPATH")) if p)
    return env


def child_argv(args: argparse.Namespace, level: str, json_path: str) -> list[str]:
    """The options of ``level``'s child: this run's, without --levels, with its JSON
    written to ``json_path`` and its plot (if any) named after the level."""
    argv = ["--expect-level", level, "--json", json_path]
    for flag in ("quick", "tiny", "no_torch"):
        if getattr(args, flag):
            argv.append("--" + flag.replace("_", "-"))
    for opt in ("threads", "workloads", "repeats", "settle"):
        value = getattr(args, opt)
        if value is not None:
            argv += ["--" + opt, str(value)]
    if args.plot:
        stem, ext = os.path.splitext(os.path.abspath(args.plot))
        argv += ["--plot", f"{stem}-{level}{ext}"]
    return argv


def _run_child(args: argparse.Namespace, level: str, tmp: str) -> dict:
    """Run one level's child, streaming its output; its entry of the JSON document."""
    path = os.path.join(tmp, f"{level}.json")
    caps = PEER_CAPS[level]
    env_text = ", ".join(f"{k}={v}" for k, v in {"CNNFAST_CPU_FEATURES": level,
                                                  **caps}.items())
    print(f"\n######## SIMD level {level}: child process with {env_text} ########\n",
          flush=True)
    cmd = [sys.executable, "-m", "cnnfast.bench", *child_argv(args, level, path)]
    # run from tmp: ``python -m`` puts the working directory first on sys.path, where
    # a source checkout's cnnfast/ (without its compiled extension) would shadow
    # the one this process runs
    proc = subprocess.Popen(cmd, env=level_env(level, dict(os.environ)), cwd=tmp,
                            stdout=subprocess.PIPE, text=True, bufsize=1)
    assert proc.stdout is not None
    for line in proc.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
    code = proc.wait()
    entry: dict = {"level": level, "env": {"CNNFAST_CPU_FEATURES": level, **caps},
                   "returncode": code, "skipped": None, "failed": None, "run": None,
                   "targets": None}
    if code != 0:
        entry["failed"] = f"failed: the child process exited with status {code}"
        return entry
    try:
        with open(path, encoding="utf-8") as fh:
            entry["run"] = json.load(fh)
    except (OSError, ValueError) as exc:
        entry["failed"] = f"failed: no JSON from the child ({exc})"
        return entry
    entry["targets"] = entry["run"].get("targets")
    return entry


def run_levels(args: argparse.Namespace, levels: list[str], argv: list[str]) -> int:
    """Run every level in its own process, print the targets of all, write the JSON;
    the exit status is 1 when a level that could run failed."""
    from .._config import config_dict

    detected = config_dict()["simd_detected"]
    entries = []
    with tempfile.TemporaryDirectory(prefix="cnnfast-bench-") as tmp:
        for level in levels:
            why = skip_reason(level, detected)
            if why:
                print(f"\n######## SIMD level {level}: {why} ########", flush=True)
                entries.append({"level": level, "env": None, "returncode": None,
                                "skipped": why, "failed": None, "run": None,
                                "targets": None})
                continue
            entries.append(_run_child(args, level, tmp))
    print()
    print(format_targets([(e["level"], e["targets"], e["skipped"] or e["failed"])
                          for e in entries]))
    if args.json:
        doc = {"date": datetime.datetime.now().isoformat(timespec="seconds"),
               "command": " ".join(["cnnfast bench", *argv]),
               "simd_detected": detected, "levels": entries}
        try:
            with atomic_write(args.json, "w", encoding="utf-8") as fh:
                json.dump(doc, fh, indent=1)
        except OSError as exc:
            print(f"cnnfast bench: could not write {args.json}: {exc.strerror or exc}",
                  file=sys.stderr)
            return 1
        print(f"wrote {args.json}")
    return 1 if any(e["failed"] for e in entries) else 0
