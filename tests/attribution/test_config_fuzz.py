"""Config fuzz: hostile and broken TOML through ``parse_config``; only ConfigError escapes.

Bounded and seeded (the same documents on every run, a few seconds in CI).
Three sources: the annotated example and the test config mutated line by
line (values swapped for hostile ones, lines duplicated, deleted, cut), random
documents built from the real key names with values of random types, and
byte-level damage. What is accepted must render as ExaBGP's config. A failure
prints the seed and the document.
"""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import pytest

from attribution.config import SECTION_KEYS, Config, ConfigError, parse_config
from attribution.reports.config import LINK_KEYS, PEERING_KEYS, REPORT_KEYS
from ribd.exabgp import render_config, render_env
from tests.attribution.helpers import CONFIG

EXAMPLE = (Path(__file__).resolve().parents[2] / "config" / "attribution.example.toml").read_text()
REPORT = """
[report]
currency = "EUR"
bucket_seconds = 300
[report.sampling]
"127.0.1.1" = 1000
[report.as_names]
64500 = "us"
[[report.links]]
name = "transit-a"
exporter = "127.0.1.1"
if_index = 10
kind = "transit"
peer_as = [65001]
price_per_mbps = 0.5
[report.peering]
already_peered = [65010]
"""
SEEDS = [CONFIG, EXAMPLE, CONFIG + REPORT]

# The key names come from the validators themselves, so a key added there is
# fuzzed here without a second list to keep in step.
KEYS = {section: sorted(keys) for section, keys in SECTION_KEYS.items() if section}
KEYS["report"] = sorted(REPORT_KEYS)
KEYS["report.links"] = sorted(LINK_KEYS)
KEYS["report.peering"] = sorted(PEERING_KEYS)
ARRAYS = {"routers", "overrides", "report.links", "ix"}

ATOMS = [
    "nan",
    "-nan",
    "inf",
    "-inf",
    "-1",
    "0",
    "-0.0",
    "1e308",
    "1e999",
    "4294967296",
    "9223372036854775807",
    "-9223372036854775808",
    "0x7fffffffffffffff",
    "1" + "0" * 5000,
    "true",
    '""',
    '" "',
    '"x"',
    '"127.0.0.1"',
    '"::1"',
    '"127.0.0.1:0"',
    '"[::1]:50051"',
    '"999.1.1.1"',
    '"02:00:00:00:00:0a"',
    '"aggregator"',
    '"highest"',
    '"supervised"',
    '"external"',
    '"transit"',
    '"edge1"',
    '"UTC"',
    '"../../etc/passwd"',
    '"é\u200b\U0001f600"',
    '"\\u0000"',
    '"a\\"b c"',
    '"/tmp/a b/feed.sock"',
    '"it\'s"',
    "'x'' ; } process evil { run /bin/true; }'",
    '"""multi\nline"""',
    "1979-05-27T07:32:00Z",
    "1979-05-27",
    "07:32:00",
    "[]",
    "[1, 2]",
    '["edge1", "edge2"]',
    '["127.0.1.1", 7]',
    "{}",
    '{a = 1, "b" = [2]}',
    "[" * 40 + "]" * 40,
    "[" * 700 + "]" * 700,
    "{a = " * 300 + "1" + "}" * 300,
]


def atom(rng: random.Random) -> str:
    if rng.random() < 0.15:
        return str(rng.randint(-(2**70), 2**70))
    if rng.random() < 0.05:
        return repr(rng.uniform(-1e6, 1e6))
    return rng.choice(ATOMS)


def random_document(rng: random.Random) -> str:
    """Real table and key names, values of any type, tables in any order and count."""
    out = []
    if rng.random() < 0.9:
        out.append('[service]\nlocal_as = 64500\nrouter_id = "127.0.0.1"\n')
    for _ in range(rng.randint(0, 8)):
        table = rng.choice(list(KEYS))
        out.append(f"[[{table}]]" if table in ARRAYS else f"[{table}]")
        for _ in range(rng.randint(0, 6)):
            key = rng.choice(KEYS[table]) if rng.random() < 0.9 else rng.choice(["x", "é", "a.b"])
            out.append(f"{key} = {atom(rng)}")
    return "\n".join(out) + "\n"


VALUE_LINE = " = "


def mutate(text: str, rng: random.Random) -> str:
    lines = text.splitlines()
    for _ in range(rng.randint(1, 4)):
        if not lines:
            break
        i = rng.randrange(len(lines))
        op = rng.random()
        if op < 0.45 and VALUE_LINE in lines[i]:  # a hostile value for a real key
            lines[i] = lines[i].split(VALUE_LINE, 1)[0] + VALUE_LINE + atom(rng)
        elif op < 0.6:  # duplicate keys, duplicate tables
            lines.insert(i, lines[i])
        elif op < 0.7:
            del lines[i]
        elif op < 0.8:  # cut mid-line
            lines[i] = lines[i][: rng.randrange(len(lines[i]) + 1)]
        elif op < 0.9:  # table headers moved around
            lines.insert(rng.randrange(len(lines)), lines.pop(i))
        else:
            lines[i] = lines[i] + rng.choice(["[", "]", '"', "'", "\\", "=", "#", "\x00", "\r"])
    return "\n".join(lines) + "\n"


def damage(text: str, rng: random.Random) -> str:
    chars = list(text)
    for _ in range(rng.randint(1, 8)):
        if chars:
            chars[rng.randrange(len(chars))] = chr(rng.choice([rng.randint(0, 127), 0x85, 0xFEFF]))
    return "".join(chars)


def run(doc: str, label: str) -> None:
    try:
        config = parse_config(doc, "/fuzz.toml")
    except ConfigError as exc:
        assert str(exc).startswith("/fuzz.toml"), f"{label}: error without the file: {exc}"
        return
    except Exception as exc:  # the bug this test exists for
        pytest.fail(f"{label}: {type(exc).__name__} escaped parse_config: {exc!r}\n{doc[:3000]}")
    assert isinstance(config, Config)
    # What the config accepts, ExaBGP's config renderer must be able to write
    # (it refused a '"' in a password at start: the daemon exited 1).
    settings = config.bgp if config.bgp.work_dir else replace(config.bgp, work_dir="/run/x")
    try:
        render_config(settings)
        render_env(settings)
    except Exception as exc:
        pytest.fail(f"{label}: accepted but cannot be rendered for ExaBGP: {exc!r}\n{doc[:3000]}")


@pytest.mark.parametrize("seed", range(4))
def test_mutated_real_configs_raise_only_config_errors(seed):
    rng = random.Random(seed)
    for n in range(300):
        run(mutate(rng.choice(SEEDS), rng), f"seed {seed} mutation {n}")


@pytest.mark.parametrize("seed", range(4))
def test_random_documents_raise_only_config_errors(seed):
    rng = random.Random(1000 + seed)
    for n in range(300):
        run(random_document(rng), f"seed {seed} document {n}")


def test_damaged_bytes_raise_only_config_errors():
    rng = random.Random(7)
    for n in range(300):
        run(damage(rng.choice(SEEDS), rng), f"damage {n}")


def test_the_fuzz_inputs_reach_past_the_parser():
    """Not only syntax errors: a share of the documents parse and are checked further."""
    rng = random.Random(0)
    outcomes = {"ok": 0, "syntax": 0, "checked": 0}
    for _ in range(300):
        try:
            parse_config(mutate(rng.choice(SEEDS), rng), "/fuzz.toml")
            outcomes["ok"] += 1
        except ConfigError as exc:
            outcomes["syntax" if "TOML syntax error" in str(exc) else "checked"] += 1
    assert all(outcomes.values()), outcomes
