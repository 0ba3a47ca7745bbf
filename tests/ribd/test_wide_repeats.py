"""A prefix twice in one UPDATE of a wide table (16 routers or more).

Reproduces a miscount found while testing prefix limits: the wide path reads
every prefix's entry before writing any, so a prefix twice, new to the router,
was counted twice in its family's prefixes and paths (a count that then never
fell back to 0), and of two ADD-PATH ids in one UPDATE only the second was
kept. Both the compiled path (ribd._wide) and the Python one (ribd.entries)
now apply such an UPDATE in runs without repeats, as the narrow loop does.
"""

from __future__ import annotations

import pytest

import ribd.rib
from ribd.attributes import AS_SEQUENCE, make_attributes
from ribd.events import IPV4_UNICAST, RoutesAnnounced, RoutesWithdrawn, SessionState
from ribd.rib import Rib
from ribd.ribload import runs_without_repeats

ROUTERS = [f"127.0.0.{k + 2}" for k in range(18)]
A = make_attributes(((AS_SEQUENCE, (65000, 1000)),), next_hop="192.0.2.254")
B = make_attributes(((AS_SEQUENCE, (65001, 1000)),), next_hop="192.0.2.253")


def _wide_rib(held_by_another: bool) -> Rib:
    rib = Rib()
    for r in ROUTERS:
        rib.apply(SessionState(r, "up"))
    for r in ROUTERS[:17]:  # 17 slots: wide entries
        rib.apply_many([RoutesAnnounced(r, IPV4_UNICAST, ("10.1.0.0/24",), None, A)])
    if held_by_another:
        rib.apply_many([RoutesAnnounced(ROUTERS[0], IPV4_UNICAST, ("10.9.0.0/24",), None, A)])
    assert rib.tables[IPV4_UNICAST].wide
    return rib


@pytest.fixture(params=["compiled", "python"])
def loop(request, monkeypatch) -> str:
    if request.param == "python":
        monkeypatch.setattr(ribd.rib, "ANNOUNCE_LOOP", None)
    return request.param


@pytest.mark.parametrize("held_by_another", [True, False])
def test_a_prefix_twice_is_counted_once_and_withdrawn_to_zero(loop, held_by_another) -> None:
    rib = _wide_rib(held_by_another)
    x = ROUTERS[17]
    twice = ("10.9.0.0/24", "10.8.0.0/24", "10.9.0.0/24")
    rib.apply_many([RoutesAnnounced(x, IPV4_UNICAST, twice, None, B)])
    fs = rib.routers[x].families[IPV4_UNICAST]
    assert (fs.prefixes, fs.paths, fs.writes) == (2, 2, 3)
    rib.apply_many([RoutesWithdrawn(x, IPV4_UNICAST, twice[:2], None)])
    assert (fs.prefixes, fs.paths) == (0, 0)


def test_two_add_path_ids_of_a_new_prefix_in_one_update_are_both_kept(loop) -> None:
    rib = _wide_rib(held_by_another=True)
    x = ROUTERS[17]
    rib.apply_many([RoutesAnnounced(x, IPV4_UNICAST, ("10.9.0.0/24", "10.9.0.0/24"), (1, 2), B)])
    assert sorted(m.path_id for m in rib.exact(x, IPV4_UNICAST, "10.9.0.0/24")) == [1, 2]
    fs = rib.routers[x].families[IPV4_UNICAST]
    assert (fs.prefixes, fs.paths) == (1, 2)


def test_runs_without_repeats_cut_where_a_prefix_comes_again() -> None:
    assert runs_without_repeats([1, 2, 1, 3, 2, 2], [5, 6, 7, 8, 9, 10]) == [
        ([1, 2], [5, 6]),
        ([1, 3, 2], [7, 8, 9]),
        ([2], [10]),
    ]
    assert runs_without_repeats([1, 2], None) == [([1, 2], None)]
