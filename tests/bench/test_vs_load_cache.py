"""``bench.vs_load.cached_load``: the derived UPDATEs read back from the cache
are those derived, and a second run does not derive them again."""

from __future__ import annotations

from pathlib import Path

from bench import bgpsend, vs_load


def _load() -> vs_load.Load:
    tables = bgpsend.Tables(
        [[b"\x01\x02", b"\x03"], [b"\x04"]], ("ipv4 unicast",), True, 64500, {"ipv4 unicast": 2}
    )
    return vs_load.Load("tiny", tables, "10.0.0.0/8", {"ipv4 unicast": 2})


def test_cached_load_reads_back_what_was_derived_without_deriving_again(
    tmp_path: Path, monkeypatch
) -> None:
    calls = []

    def fake_make(source: str, routers: int, quick: bool) -> vs_load.Load:
        calls.append((source, routers, quick))
        return _load()

    monkeypatch.setattr(vs_load, "make_load", fake_make)
    first = vs_load.cached_load("synth", 2, True, tmp_path)
    again = vs_load.cached_load("synth", 2, True, tmp_path)
    assert calls == [("synth", 2, True)]
    assert again == first
    assert again.tables.per_router == [[b"\x01\x02", b"\x03"], [b"\x04"]]
    other = vs_load.cached_load("synth", 3, True, tmp_path)  # another key: derived
    assert calls[-1] == ("synth", 3, True) and other == first


def test_cached_load_without_a_directory_always_derives(monkeypatch) -> None:
    calls = []
    monkeypatch.setattr(vs_load, "make_load", lambda *a: calls.append(a) or _load())
    vs_load.cached_load("real", 1, False, None)
    vs_load.cached_load("real", 1, False, None)
    assert len(calls) == 2
