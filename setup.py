"""Compiled accelerators: every ``*.pyx`` under ``ribd/`` and ``attribution/``.

Each one is optional. A machine without a C compiler still installs the package, and the
pure-Python code it speeds up is used instead. Tests run both and compare them. Why Cython:
the hot loops (raw UPDATE decoding, collector record scanning) cost a few microseconds each in
Python, and the service's whole answer costs one.
"""

import os
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

try:
    from Cython.Build import cythonize
except ImportError:  # pragma: no cover - build-system.requires installs Cython
    cythonize = None


def _extensions() -> list[Extension]:
    sources = sorted(str(p) for pkg in ("ribd", "attribution") for p in Path(pkg).glob("*.pyx"))
    extensions = [
        Extension(src[: -len(".pyx")].replace("/", "."), [src], optional=True) for src in sources
    ]
    if not extensions or cythonize is None:
        return []
    built = cythonize(
        extensions,
        language_level=3,
        compiler_directives={"boundscheck": False},
        nthreads=_cores(),
    )
    for ext in built:  # cythonize makes new Extension objects and drops `optional`
        ext.optional = True
    return built


def _cores() -> int:
    """The cores this process may run on: a container's CPU set, not the host's count."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class ParallelBuildExt(build_ext):
    """``build_ext`` compiling one extension per core unless ``-j`` says otherwise.

    Two dozen generated C files of 30-40k lines each: serially they took ~4 minutes of a
    fresh install (and of the container build) on a 2-core machine; an optional
    extension that fails to compile is still skipped, in parallel as in series."""

    def finalize_options(self) -> None:
        super().finalize_options()
        if not self.parallel:
            self.parallel = _cores()


setup(ext_modules=_extensions(), cmdclass={"build_ext": ParallelBuildExt})
