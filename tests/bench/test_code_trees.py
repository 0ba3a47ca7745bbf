"""Benches that alternate checkouts (``--code A,B``) run each child from its own tree.

An A/B pair whose "B" quietly imported this checkout's ``ribd`` would measure
one code twice and report the spread as a gain; ``python -m`` puts the cwd
first on ``sys.path``, so the child needs both the environment and the cwd.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench.common import REPO
from bench.procs import codes, tree_env


def _tree(root: Path, name: str) -> Path:
    tree = root / name
    (tree / "ribd").mkdir(parents=True)
    (tree / "ribd" / "__init__.py").write_text(f"TREE = {name!r}\n")
    return tree


def _imported_tree(code: Path | None, cwd: Path | None) -> str:
    out = subprocess.run(
        [sys.executable, "-c", "import ribd; print(getattr(ribd, 'TREE', 'this checkout'))"],
        cwd=cwd,
        env=tree_env(code),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return out.stdout.strip()


def test_a_child_started_with_a_trees_env_imports_ribd_from_that_tree(tmp_path: Path) -> None:
    a, b = _tree(tmp_path, "a"), _tree(tmp_path, "b")
    elsewhere = tmp_path / "elsewhere"  # (a grandchild started from another cwd: the relay)
    elsewhere.mkdir()
    assert _imported_tree(a, elsewhere) == "a"
    assert _imported_tree(b, elsewhere) == "b"
    assert _imported_tree(b, b) == "b"


def test_without_a_tree_a_child_imports_this_checkout(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("PYTHONPATH", raising=False)
    assert _imported_tree(None, REPO) == "this checkout"


def test_a_tree_goes_before_a_pythonpath_already_set(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(_tree(tmp_path, "set")))
    env = tree_env(tmp_path / "a")
    assert env["PYTHONPATH"].split(":") == [str(tmp_path / "a"), str(tmp_path / "set")]


def test_code_names_resolve_in_order_and_none_means_this_checkout(tmp_path: Path) -> None:
    assert codes(f"{tmp_path}/b,{tmp_path}/a,") == [tmp_path / "b", tmp_path / "a"]
    assert codes("") == [REPO]
