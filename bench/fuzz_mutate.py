"""How the fuzzer damages an input: JSON trees edited node by node, hostile values, bytes flipped.

Shared by every target of ``bench.fuzz`` and ``bench.fuzz_raw`` and by the
tests that replay their generators.
"""

from __future__ import annotations

import copy
import random
from typing import Any

import orjson

from ribd.checks import MAX_DEPTH

# -- mutations -------------------------------------------------------------------------------

DEEP = "__fuzz_deep__"  # stands for a deeply nested value; orjson cannot write one (254 max)


def _nested(rng: random.Random) -> bytes:
    depth = rng.choice([MAX_DEPTH, MAX_DEPTH + 1, 300, 1000, 1023, 1100, 100_000])
    if rng.random() < 0.5:
        return b"[" * depth + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


def _hostile(rng: random.Random) -> Any:
    return rng.choice(
        [
            None,
            True,
            0,
            -1,
            255,
            256,
            2**32 - 1,
            2**32,
            2**63 - 1,
            -(2**63),
            1.5,
            -1.0,
            1e300,
            "",
            "x" * rng.choice([1, 300, 70_000]),
            "256.1.1.1",
            "::",
            "10.0.0.0/33",
            "127.0.0.1\x00",
            "2001:DB8::1",
            "\u00e9\u2603",
            [],
            {},
            [DEEP],
            {"a": DEEP},
            DEEP,
        ]
    )


def _nodes(value: Any) -> list[tuple[Any, Any]]:
    """(container, key) for every value inside ``value`` (containers, breadth first)."""
    out: list[tuple[Any, Any]] = []
    todo = [value]
    while todo and len(out) < 5000:
        item = todo.pop()
        keys = list(item) if type(item) is dict else range(len(item))
        for k in keys:
            out.append((item, k))
            if type(item[k]) in (dict, list):
                todo.append(item[k])
    return out


def mutate_json(rng: random.Random, doc: Any, rounds: int = 0) -> Any:
    """Change 1-3 places of a decoded JSON document in place (returns it)."""
    for _ in range(rounds or rng.randint(1, 3)):
        nodes = _nodes(doc)
        if not nodes:
            return doc
        container, key = rng.choice(nodes)
        action = rng.random()
        if action < 0.6:
            container[key] = _hostile(rng)
        elif action < 0.7:
            del container[key]
        elif action < 0.8 and type(container) is dict:
            container[rng.choice(["x", "", "type", "peer", str(rng.randrange(300))])] = _hostile(
                rng
            )
        elif action < 0.9:
            other_container, other_key = rng.choice(nodes)
            container[key] = copy.deepcopy(other_container[other_key])
        elif type(container) is list:
            container.insert(key, copy.deepcopy(container[key]))
    return doc


def dump(doc: Any, rng: random.Random) -> bytes:
    """orjson.dumps, with every DEEP placeholder written as a deeply nested value."""
    data = orjson.dumps(doc)
    while b'"' + DEEP.encode() + b'"' in data:
        data = data.replace(b'"' + DEEP.encode() + b'"', _nested(rng), 1)
    return data


def mutate_bytes(rng: random.Random, data: bytes) -> bytes:
    for _ in range(rng.randint(1, 4)):
        n = len(data)
        at = rng.randrange(n + 1)
        action = rng.random()
        if action < 0.3 and n:
            i = rng.randrange(n)
            data = data[:i] + bytes([rng.randrange(256)]) + data[i + 1 :]
        elif action < 0.5:
            piece = rng.choice([b"\n", b'"', b"{", b"[", b"\\", b"\xff", b",", b"-", b"1e999"])
            data = data[:at] + piece + data[at:]
        elif action < 0.7:
            data = data[:at] + data[at + rng.randint(1, 40) :]
        elif action < 0.8:
            data = data[:at]
        else:
            end = min(n, at + rng.randint(1, 200))
            data = data[:end] + data[at:end] * rng.randint(1, 50) + data[end:]
    return data


def mutate_line(rng: random.Random, line: bytes) -> bytes:
    if rng.random() < 0.65:
        try:
            doc = orjson.loads(line)
        except orjson.JSONDecodeError:
            return mutate_bytes(rng, line)
        return dump(mutate_json(rng, doc), rng)
    return mutate_bytes(rng, line)
