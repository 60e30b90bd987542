"""Build script for cnnfast's compiled core.

One extension module, ``cnnfast._kernels``, made of the Cython boundary
(``cnnfast/_kernels.pyx``) and the plain C kernels in ``csrc/``.

OpenMP is probed with the compiler that ``build_ext`` will really use: a tiny
program is compiled *and linked* with each candidate flag set. When none works
(e.g. Apple clang without libomp) the build goes on without OpenMP, warns once
and the kernels run single-threaded (they guard every pragma with ``_OPENMP``).

No ``-march=native``: the baseline is plain x86-64 (or whatever the platform's
default is). AVX2/AVX-512 code lives in functions carrying GCC ``target``
attributes and is chosen at run time (see ``csrc/cpu_features.c``). No flag
here is x86-specific: on aarch64 / arm64 (Linux, Apple silicon) the same flags
build the portable code plus whatever the sources guard with ``__aarch64__``,
where Advanced SIMD (NEON) is part of the baseline.

OpenMP on macOS: Apple clang has no OpenMP runtime. With LLVM's libomp
installed (``brew install libomp``; Homebrew keeps it out of the default search
paths) the build finds it under /opt/homebrew/opt/libomp or
/usr/local/opt/libomp and uses ``-Xpreprocessor -fopenmp -lomp``; another
libomp installation is named with CNNFAST_OPENMP_PREFIX (a directory holding
include/omp.h and lib/libomp.dylib).

Environment switches:
  CNNFAST_NO_OPENMP=1     build without OpenMP on purpose
  CNNFAST_NATIVE=1        local builds only: add -march=native (-mcpu=native
                          on arm64/aarch64, where -march=native is not
                          accepted by every clang)
  CNNFAST_OPENMP_PREFIX   macOS: where libomp is installed (see above)
  CNNFAST_DEBUG=1         -O0 -g and Cython bounds checks
  CNNFAST_SANITIZE=list   build the C with the listed sanitizers, e.g.
                          "address" or "address,undefined" (for test runs with
                          the runtimes in LD_PRELOAD; see .ci/sanitize).
                          -fno-sanitize-recover=all is added so that every
                          report (UBSan's included) aborts the process.
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
import tempfile
import textwrap
from glob import glob

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

OPENMP_PROBE = textwrap.dedent(
    """
    #include <omp.h>
    #include <stdio.h>
    int main(void) {
        int n = 0;
        #pragma omp parallel reduction(+:n)
        n += 1;
        printf("%d %d\\n", n, omp_get_max_threads());
        return n < 1;
    }
    """
)


# A call to an undeclared function is only a warning in C99 mode, and the
# extension would then build, import, and fail at load time on the missing
# symbol: an error here instead.
_C_ERRORS = ["-Werror=implicit-function-declaration"]


def _env_on(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _openmp_candidates(compiler_type: str):
    """(compile flags, link flags) to try, in order."""
    if compiler_type == "msvc":
        return [(["/openmp:llvm"], []), (["/openmp"], [])]
    cands = [(["-fopenmp"], ["-fopenmp"])]
    if sys.platform == "darwin":
        extra_inc, extra_lib = [], []
        prefixes = [os.environ.get("CNNFAST_OPENMP_PREFIX", ""),
                    "/opt/homebrew/opt/libomp", "/usr/local/opt/libomp"]
        for prefix in prefixes:
            if prefix and os.path.isdir(prefix):
                extra_inc.append(f"-I{prefix}/include")
                extra_lib.append(f"-L{prefix}/lib")
        cands.append(
            (["-Xpreprocessor", "-fopenmp", *extra_inc], [*extra_lib, "-lomp"])
        )
    return cands


class BuildExt(build_ext):
    """build_ext that probes OpenMP with the real compiler before compiling."""

    def _try_openmp(self, cflags, lflags) -> bool:
        tmp = tempfile.mkdtemp(prefix="cnnfast-omp-")
        try:
            src = os.path.join(tmp, "probe.c")
            with open(src, "w") as f:
                f.write(OPENMP_PROBE)
            objs = self.compiler.compile([src], output_dir=tmp, extra_postargs=cflags)
            self.compiler.link_executable(
                objs, "probe", output_dir=tmp, extra_postargs=lflags
            )
            return True
        except Exception:  # any compile or link failure means "not available"
            return False
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def build_extensions(self):
        ctype = self.compiler.compiler_type
        omp = None
        if _env_on("CNNFAST_NO_OPENMP"):
            print("cnnfast: CNNFAST_NO_OPENMP set, building without OpenMP")
        else:
            for cflags, lflags in _openmp_candidates(ctype):
                if self._try_openmp(cflags, lflags):
                    omp = (cflags, lflags)
                    break
            if omp is None:
                print(
                    "\n" + "*" * 72 + "\n"
                    "cnnfast WARNING: this compiler cannot build OpenMP code.\n"
                    "cnnfast will be built without OpenMP and run single-threaded.\n"
                    "(On macOS: `brew install libomp`, then reinstall; see setup.py.)\n"
                    + "*" * 72 + "\n"
                )
        if ctype == "msvc":
            base = ["/O2"]
        elif _env_on("CNNFAST_DEBUG"):
            base = ["-O0", "-g", "-std=c99", "-Wall", "-Wextra", *_C_ERRORS]
        else:
            base = ["-O3", "-std=c99", "-Wall", "-Wextra", "-fno-math-errno", *_C_ERRORS]
            if _env_on("CNNFAST_NATIVE"):
                arm = platform.machine().lower() in ("arm64", "aarch64")
                base.append("-mcpu=native" if arm else "-march=native")
        san = ",".join(
            s.strip() for s in os.environ.get("CNNFAST_SANITIZE", "").split(",") if s.strip()
        )
        link_extra = []
        if san and ctype != "msvc":
            # -fno-sanitize-recover=all: UBSan otherwise prints a report and goes
            # on, so a test run would pass; with it every report aborts.
            san_flags = [f"-fsanitize={san}", "-fno-sanitize-recover=all"]
            base += [*san_flags, "-fno-omit-frame-pointer", "-g"]
            if "undefined" in san.split(","):
                # Python's CFLAGS carry -fwrapv, which defines signed overflow
                # as wrapping and so turns UBSan's overflow check off; these
                # flags come after them, so -fno-wrapv puts the check back.
                base.append("-fno-wrapv")
            link_extra += san_flags
        for ext in self.extensions:
            ext.extra_compile_args = base + (omp[0] if omp else [])
            ext.extra_link_args = link_extra + (omp[1] if omp else [])
            ext.define_macros = list(ext.define_macros or []) + [
                ("NPY_NO_DEPRECATED_API", "NPY_1_22_API_VERSION"),
                ("CNNFAST_COMPILER", f'"{_compiler_name(self.compiler)}"'),
            ]
        super().build_extensions()


def _compiler_name(compiler) -> str:
    exe = getattr(compiler, "compiler", None) or [compiler.compiler_type]
    return os.path.basename(str(exe[0])).replace('"', "")


DEBUG = _env_on("CNNFAST_DEBUG")
directives = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": False,
    "cdivision": True,
    "initializedcheck": DEBUG,
    "nonecheck": False,
    "embedsignature": True,
}

extensions = [
    Extension(
        "cnnfast._kernels",
        sources=["cnnfast/_kernels.pyx", *sorted(glob("csrc/*.c"))],
        include_dirs=["csrc", np.get_include()],
        # dladdr (csrc/threads.c names the OpenMP runtime in use) lives in libdl
        # before glibc 2.34 and in libc since.
        libraries=["dl"] if sys.platform.startswith("linux") else [],
        # headers (templates included by the .c files) trigger rebuilds too
        depends=sorted(glob("csrc/*.h")) + sorted(glob("cnnfast/*.pxi")),
    )
]

setup(
    ext_modules=cythonize(extensions, compiler_directives=directives),
    cmdclass={"build_ext": BuildExt},
)
