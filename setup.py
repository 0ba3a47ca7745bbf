"""Compiled accelerators: every ``*.pyx`` under ``ribd/`` and ``attribution/``.

Each one is optional. A machine without a C compiler still installs the package, and the
pure-Python code it speeds up is used instead. Tests run both and compare them. Why Cython:
the hot loops (raw UPDATE decoding, collector record scanning) cost a few microseconds each in
Python, and the service's whole answer costs one.
"""

from pathlib import Path

from setuptools import Extension, setup

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
    built = cythonize(extensions, language_level=3, compiler_directives={"boundscheck": False})
    for ext in built:  # cythonize makes new Extension objects and drops `optional`
        ext.optional = True
    return built


setup(ext_modules=_extensions())
