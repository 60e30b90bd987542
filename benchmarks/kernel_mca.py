"""The micro-kernels' inner loops through llvm-mca: predicted FMA-pipe use and GFLOP/s.

No ARM machine is needed: each kernel is compiled to assembly with the extension's
flags (the NEON ones with ``aarch64-linux-gnu-gcc``, the AVX2 ones with the host
``gcc``), its hottest innermost loop (the one with the most FMAs) is cut out at its
label and backward branch, and ``llvm-mca`` schedules it on a CPU model. The table
gives, per (kernel, model): cycles per loop iteration, the FMA pipes' predicted use
and GFLOP/s per core at the model's clock. ``--fmla-counts`` prints, instead, the
vector FMAs in every NEON function of the compiled objects.

    python benchmarks/kernel_mca.py            # the table (markdown)
    python benchmarks/kernel_mca.py --fmla-counts

Needs llvm-mca (Debian's ``llvm``), gcc, and for the NEON rows
``gcc-aarch64-linux-gnu`` and binutils' ``aarch64-linux-gnu-objdump``.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CSRC = os.path.join(ROOT, "csrc")
FLAGS = ["-O3", "-std=c99", "-fno-math-errno", "-fopenmp", "-I", CSRC]


@dataclass(frozen=True)
class Model:
    """An llvm-mca CPU model and the clock its GFLOP/s are given at."""

    triple: str
    mcpu: str
    label: str
    ghz: float


# Clocks: Graviton2 (Neoverse N1) 2.5 GHz and Graviton3 (Neoverse V1) 2.6 GHz (AWS);
# an M1 performance core 3.2 GHz (Apple); Zen 3 at 3.2 GHz, the AMD EPYC development
# machine's measured AVX2 ceiling (102 GFLOP/s per core = 32 FLOP/cycle x 3.2 GHz,
# notes/kernels.md); the host's clock from --host-ghz. LLVM's "apple-m1" is its
# Cyclone-family model (2 vector FMAs per cycle; an M1 Firestorm core issues 4), so
# the Firestorm row counts pipes by hand instead (see firestorm_cycles).
MODELS = {
    "neoverse-n1": Model("aarch64", "neoverse-n1", "Neoverse N1 (Graviton2)", 2.5),
    "neoverse-v1": Model("aarch64", "neoverse-v1", "Neoverse V1 (Graviton3)", 2.6),
    "apple-m1": Model("aarch64", "apple-m1", "apple-m1 (LLVM: Cyclone model)", 3.2),
    "znver3": Model("x86_64", "znver3", "Zen 3", 3.2),
    "sapphirerapids": Model("x86_64", "sapphirerapids", "Sapphire Rapids (this host)", 0.0),
}

# (source, compiler, function, lanes per FMA)
KERNELS = [
    ("ukernel_neon.c", "aarch64-linux-gnu-gcc", "uk_gemm_neon_f32", 4),
    ("ukernel_neon.c", "aarch64-linux-gnu-gcc", "uk_direct_neon_f32", 4),
    ("ukernel_neon.c", "aarch64-linux-gnu-gcc", "uk_taps_neon_f32", 4),
    ("ukernel_neon.c", "aarch64-linux-gnu-gcc", "uk_rows_neon_f32", 4),
    ("ukernel_neon.c", "aarch64-linux-gnu-gcc", "uk_gemm_neon_f64", 2),
    ("ukernel_neon.c", "aarch64-linux-gnu-gcc", "uk_direct_neon_f64", 2),
    ("ukernel_neon.c", "aarch64-linux-gnu-gcc", "uk_taps_neon_f64", 2),
    ("calibrate.c", "aarch64-linux-gnu-gcc", "fma_neon", 4),
    ("ukernel.c", "gcc", "uk_gemm_avx2_f32", 8),
    ("ukernel.c", "gcc", "uk_direct_avx2_f32", 8),
    ("ukernel.c", "gcc", "uk_taps_avx2_f32", 8),
    ("ukernel.c", "gcc", "uk_rows_avx2_f32", 8),
    ("calibrate.c", "gcc", "fma_avx2", 8),
]
ARM_MODELS = ["neoverse-n1", "neoverse-v1", "apple-m1"]
X86_MODELS = ["znver3", "sapphirerapids"]

# A block of independent FMAs: the model's own FMA ceiling, against which a
# loop's FMA-pipe use is measured (so a model that gives a core fewer FMA pipes
# than it has does not read as a badly scheduled kernel).
PEAK_BLOCK = {
    "aarch64": "\n".join(f"fmla v{i}.4s, v30.4s, v31.4s" for i in range(24)),
    "x86_64": "\n".join(f"vfmadd231ps %ymm14, %ymm15, %ymm{i}" for i in range(12)),
}


def llvm_mca() -> str | None:
    """The newest llvm-mca installed (LLVM 14's neoverse-n1 is the Cortex-A57 model,
    one 128-bit FMA per cycle; LLVM 17+ model the N1 itself)."""
    for v in range(25, 14, -1):
        if shutil.which(f"llvm-mca-{v}"):
            return f"llvm-mca-{v}"
    return shutil.which("llvm-mca") and "llvm-mca"


def firestorm_cycles(loop: list[str]) -> float:
    """Cycles per iteration on an M1 Firestorm core counted from its published pipes
    (4 FP/SIMD pipes that all issue FMLA, 3 load pipes, 8-wide decode): the largest
    of the three bounds, no latency or dependency modelled."""
    insns = [x.split()[0] for x in loop if x.strip() and not LABEL_RE.match(x)]
    nfma = sum(i == "fmla" for i in insns)
    nload = sum(i.startswith(("ldr", "ldp", "ld1")) for i in insns)
    return max(nfma / 4, nload / 3, len(insns) / 8)


FMA_RE = re.compile(r"^\s*(fmla|vfmadd\d+[ps][sd])\b")
LABEL_RE = re.compile(r"^(\.L\w+):")
BRANCH_RE = re.compile(
    r"^\s*(b\.?[a-z]{2}|b|cbnz|cbz|tbnz|tbz|j[a-z]+)\s+(?:[^,]+,\s*)*(\.L\w+)\s*$")


def compile_asm(source: str, cc: str, tmp: str) -> str:
    out = os.path.join(tmp, f"{cc}-{source}.s")
    if not os.path.exists(out):
        subprocess.run([cc, *FLAGS, "-S", os.path.join(CSRC, source), "-o", out], check=True)
    with open(out) as f:
        return f.read()


def function_lines(asm: str, name: str) -> list[str]:
    lines = asm.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith(f"{name}:"))
    end = next(i for i in range(start, len(lines)) if lines[i].strip().startswith(".size"))
    return lines[start:end]


def hot_loop(lines: list[str]) -> list[str]:
    """The innermost loop (a label and a later branch back to it, with no such loop
    inside) with the most FMAs; ties go to the shortest."""
    labels = {m.group(1): i for i, ln in enumerate(lines) if (m := LABEL_RE.match(ln))}
    loops = []
    for j, ln in enumerate(lines):
        m = BRANCH_RE.match(ln)
        if m and m.group(2) in labels and labels[m.group(2)] < j:
            loops.append((labels[m.group(2)], j))
    inner = [(a, b) for a, b in loops
             if not any(a <= a2 and b2 <= b and (a2, b2) != (a, b) for a2, b2 in loops)]

    def key(loop):
        a, b = loop
        body = lines[a:b + 1]
        return (sum(bool(FMA_RE.match(x)) for x in body), -len(body))

    a, b = max(inner, key=key)
    return [ln for ln in lines[a:b + 1]
            if not ln.strip().startswith((".p2align", ".align", ".loc", "//", "#"))]


def mca(exe: str, loop: list[str], model: Model, tmp: str) -> float:
    """llvm-mca's cycles per iteration of the loop."""
    path = os.path.join(tmp, "loop.s")
    with open(path, "w") as f:
        f.write("\n".join(loop) + "\n")
    out = subprocess.run([exe, f"-mtriple={model.triple}", f"-mcpu={model.mcpu}",
                          "-iterations=400", path], capture_output=True, text=True,
                         check=True).stdout
    iters = int(re.search(r"Iterations:\s+(\d+)", out).group(1))
    cycles = int(re.search(r"Total Cycles:\s+(\d+)", out).group(1))
    return cycles / iters


def table(host_ghz: float) -> str:
    exe = llvm_mca()
    version = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout
    llvm = re.search(r"LLVM version ([\d.]+)", version).group(1)
    rows = [f"llvm-mca: LLVM {llvm}", "",
            "| kernel | loop: instructions, FMAs | model | cycles / iteration "
            "| FMA-pipe use | GFLOP/s per core (clock) |",
            "|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory(prefix="cnnfast-mca-") as tmp:
        peak = {}
        for name, model in MODELS.items():
            block = PEAK_BLOCK[model.triple].splitlines()
            peak[name] = len(block) / mca(exe, block, model, tmp)
        for source, cc, fn, lanes in KERNELS:
            if shutil.which(cc) is None:
                rows.append(f"| {fn} | ({cc} not installed) | | | | |")
                continue
            loop = hot_loop(function_lines(compile_asm(source, cc, tmp), fn))
            nfma = sum(bool(FMA_RE.match(x)) for x in loop)
            ninsn = sum(1 for x in loop if not LABEL_RE.match(x))
            arm = cc.startswith("aarch64")
            for name in ARM_MODELS if arm else X86_MODELS:
                model = MODELS[name]
                ghz = model.ghz or host_ghz
                cyc = mca(exe, loop, model, tmp)
                rows.append(f"| {fn} | {ninsn}, {nfma} | {model.label} | {cyc:.2f} "
                            f"| {100 * nfma / cyc / peak[name]:.0f}% "
                            f"| {2 * lanes * nfma / cyc * ghz:.1f} ({ghz:.2f} GHz) |")
            if arm:
                cyc = firestorm_cycles(loop)
                rows.append(f"| {fn} | {ninsn}, {nfma} | M1 Firestorm (pipe counts) "
                            f"| {cyc:.2f} | {100 * nfma / 4 / cyc:.0f}% "
                            f"| {2 * lanes * nfma / cyc * 3.2:.1f} (3.20 GHz) |")
    return "\n".join(rows)


def fmla_counts() -> str:
    """Vector FMAs per function of the AArch64 objects (fmla on .4s / .2d)."""
    rows = ["| object | function | fmla |", "|---|---|---|"]
    with tempfile.TemporaryDirectory(prefix="cnnfast-fmla-") as tmp:
        for source in sorted(os.listdir(CSRC)):
            if not source.endswith(".c"):
                continue
            obj = os.path.join(tmp, source[:-2] + ".o")
            subprocess.run(["aarch64-linux-gnu-gcc", *FLAGS, "-c",
                            os.path.join(CSRC, source), "-o", obj], check=True)
            dis = subprocess.run(["aarch64-linux-gnu-objdump", "-d", "--no-show-raw-insn", obj],
                                 capture_output=True, text=True, check=True).stdout
            counts: dict[str, int] = {}
            fn = None
            for ln in dis.splitlines():
                if m := re.match(r"^[0-9a-f]+ <(.+)>:", ln):
                    fn = m.group(1)
                elif fn and re.search(r"\sfmla\s+v\d+\.(4s|2d)", ln):
                    counts[fn] = counts.get(fn, 0) + 1
            for fn, n in sorted(counts.items()):
                rows.append(f"| {source[:-2]}.o | {fn} | {n} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fmla-counts", action="store_true",
                    help="count the vector FMAs per function of the AArch64 objects")
    ap.add_argument("--host-ghz", type=float, default=3.9,
                    help="clock for the host model's GFLOP/s (default 3.9: the "
                         "development Xeon's measured AVX2 ceiling / 32 FLOP per cycle)")
    args = ap.parse_args(argv)
    if llvm_mca() is None and not args.fmla_counts:
        print("llvm-mca not found (apt-get install llvm)", file=sys.stderr)
        return 1
    print(fmla_counts() if args.fmla_counts else table(args.host_ghz))
    return 0


if __name__ == "__main__":
    sys.exit(main())
