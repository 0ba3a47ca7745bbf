"""The body's hex read sixteen digits a step (``ribd._rawhex``'s SSE2 step)
against ``bytes.fromhex`` and the pair table alone.

Since stop 37 (decode7) ``unhex`` turns sixteen hex digits into eight octets in
one SSE2 register where built, the table finishing the rest. It must give
``fromhex``'s octets for hex digits only (0-9, a-f, A-F, mixed) and None for any
other octet anywhere (every one of the 256 values at every place of a step),
and the same as the table alone for every text.
"""

from __future__ import annotations

import os
import random
import string

import pytest

_rawhex = pytest.importorskip("ribd._rawhex", reason="ribd._rawhex is not built here")
HEX = set(string.hexdigits.encode())


def _want(text: bytes) -> bytes | None:
    if len(text) % 2 or any(c not in HEX for c in text):
        return None
    return bytes.fromhex(text.decode())


def test_the_step_is_built_where_the_compiler_has_sse2() -> None:
    """Fails before stop 37 (no such step); on x86-64 SSE2 is always there."""
    import platform

    if platform.machine() in ("x86_64", "AMD64"):
        assert _rawhex.unhex_wide()


def test_every_octet_at_every_place_of_a_step() -> None:
    base = os.urandom(24).hex().encode()  # 48 digits: three steps of sixteen
    for at in range(len(base)):
        for c in range(256):
            text = base[:at] + bytes((c,)) + base[at + 1 :]
            want = _want(text)
            assert _rawhex.unhex_text(text) == want, (at, c)
            assert _rawhex.unhex_text(text, False) == want, (at, c)


def test_random_texts_of_every_length_and_case() -> None:
    rng = random.Random(37)
    digits = string.hexdigits
    for _ in range(20000):
        size = rng.choice((rng.randrange(40), rng.randrange(700)))
        text = "".join(rng.choice(digits) for _ in range(size))
        if rng.random() < 0.3 and text:
            at = rng.randrange(len(text))
            text = text[:at] + chr(rng.randrange(256)) + text[at + 1 :]
        raw = text.encode("latin-1")
        want = _want(raw)
        assert _rawhex.unhex_text(raw) == want, raw
        assert _rawhex.unhex_text(raw, True) == _rawhex.unhex_text(raw, False)
