"""bench.vs_pmacct --late: router n's load is measured alone, after the others answer.

The mode exists because a router that comes up after the others' tables were
merged takes other code paths than a table loaded into an empty store; its
figures must be router n's alone. Run for real: a supervised ExaBGP, real BGP
sessions on loopback, a small derived table.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import bgpsend, realistic, synth
from bench.vs_load import Load, last_unique_prefix
from bench.vs_pmacct import cpu_share, rows_late
from bench.vs_service import _by_thread, _service_loaded, run_service


def _small_load(routers: int) -> Load:
    lines, _ = synth.generate(v4=3000, v6=500)
    tables = bgpsend.realistic_tables(realistic.model_from_lines("synth", lines), routers)
    return Load("small", tables, last_unique_prefix(tables.per_router[0]), dict(tables.prefixes))


def test_the_last_router_is_loaded_and_measured_after_the_first_ones_answer(
    tmp_path: Path,
) -> None:
    load = _small_load(3)
    res = run_service(load, tmp_path, timeout=120.0, late=True)
    assert res.seconds is not None, res.note
    # Two phases, each with ExaBGP's CPU of its own: routers 1-2 together, then router 3.
    assert set(res.cpu_first) == set(res.cpu) == {"service", "exabgp", "relay"}
    assert res.cpu_first_idle["exabgp"] >= res.cpu_first["exabgp"] > 0
    assert res.cpu_idle["service"] >= res.cpu["service"]
    rows = rows_late(load, res)
    shares = [r for r in rows if "/ ExaBGP CPU" in r.figure]
    assert [r.figure.rsplit(", ", 1)[1] for r in shares] == ["at answering", "once idle"]
    assert shares[0].value == pytest.approx(cpu_share(res.cpu) * 100)
    assert shares[0].baseline == pytest.approx(cpu_share(res.cpu_first) * 100)
    assert all("router 3 after 2 merged" in r.figure for r in rows)
    # Router 3's service CPU by thread (threads of 0.05 CPU-s and up; a table
    # this small may have none), the rest in a row of its own: they add up to
    # the process's CPU, and each is a row of the output.
    for threads, cpu in ((res.threads, res.cpu), (res.threads_idle, res.cpu_idle)):
        assert threads[-1]["name"] == "(ended threads, small ones, other processes)"
        assert sum(t["cpu"] for t in threads) == pytest.approx(cpu["service"], abs=0.02)
    by_thread = [r for r in rows if "service CPU-s by thread" in r.figure]
    assert len(by_thread) == len(res.threads) + len(res.threads_idle)


def test_the_share_is_relay_and_service_over_exabgp() -> None:
    assert cpu_share({"exabgp": 4.0, "relay": 0.2, "service": 0.8}) == pytest.approx(0.25)
    assert cpu_share({"relay": 0.2, "service": 0.8}) is None


def test_threads_are_split_since_the_first_reading_with_ended_ones_apart() -> None:
    before = {1: ("python", 1.0, 0.5), 2: ("python", 3.0, 0.0)}
    now = {1: ("python", 2.0, 0.5), 2: ("python", 3.01, 0.0), 3: ("grpc", 0.3, 0.1)}
    rows = _by_thread(before, now, {1: "feed-conn"}, service_cpu=2.0)
    assert [(r["name"], r["cpu"]) for r in rows] == [
        ("feed-conn", 1.0),
        ("grpc", 0.4),  # started since: all of its CPU
        ("(ended threads, small ones, other processes)", 0.6),
    ]


class _Stub:
    """ListRouters of 17 routers: 16 with their whole tables, the 17th a tenth of its."""

    def __init__(self, pb) -> None:
        self.pb = pb

    def ListRouters(self, request, timeout: float):
        pb = self.pb
        return pb.ListRoutersResponse(
            routers=[
                pb.RouterState(
                    name=f"r{k}",
                    families=[
                        pb.FamilyState(
                            family="ipv4 unicast",
                            prefixes=1000 if k < 17 else 100,
                            converged=k < 17,
                        )
                    ],
                )
                for k in range(1, 18)
            ]
        )


def test_the_poll_rate_follows_the_share_of_the_routers_loading_now() -> None:
    """A late router after 16 was polled 20 a second from its first UPDATE: the
    share counted the 16 full tables (16.1/17 >= POLL_FINE_FROM)."""
    from attribution.v1 import attribution_pb2 as pb

    load = Load("t", None, "10.0.0.0/8", {"ipv4 unicast": 1000})
    stub = _Stub(pb)
    assert _service_loaded(stub, pb, load, "10.0.0.1", 17, loading=1) == (False, 0.1)
    loaded, share = _service_loaded(stub, pb, load, "10.0.0.1", 17, loading=17)
    assert not loaded and share == pytest.approx(16.1 / 17)
