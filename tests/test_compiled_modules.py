"""Every Cython accelerator in the tree is built where it can be.

setup.py compiles each ``ribd/*.pyx`` and ``attribution/*.pyx`` as an optional
extension, so a failed compile installs quietly and the pure-Python twin runs:
right for a user without a compiler, wrong for CI, whose cross-checks would then
compare the Python code with itself. Listing the .pyx files here (rather than
naming modules) keeps a new accelerator from being forgotten.
"""

from __future__ import annotations

import importlib
import os
import shutil
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted(p for pkg in ("ribd", "attribution") for p in (ROOT / pkg).glob("*.pyx"))


def test_there_are_accelerators_to_check():
    assert SOURCES, "setup.py builds ribd/*.pyx and attribution/*.pyx: none found"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_each_accelerator_is_built_where_a_c_compiler_is(source: Path):
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(cc) is None:
        pytest.skip(f"no C compiler ({cc}): the pure-Python code runs, as designed")
    name = f"{source.parent.name}.{source.stem}"
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        if not os.environ.get("CI"):
            pytest.skip(f"{name} is not built in this checkout: `pip install -e .` builds it")
        pytest.fail(f"{cc} is here but {name} was not built ({exc}): setup.py failed on it")
    assert Path(module.__file__).suffix != ".py"
