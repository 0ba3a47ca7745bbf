"""A patched compiled view answers exactly as a view built afresh (attribution.viewpatch)."""

from __future__ import annotations

import ipaddress
import random

import numpy as np
import pytest

from attribution.compiledview import view_signature
from attribution.fastpath import ChangedRanges, CompiledViews
from attribution.viewbuild import build_view
from attribution.viewpatch import patch_view
from ribd.attributes import AS_SEQUENCE, AS_SET, make_attributes
from ribd.events import RoutesAnnounced, RoutesWithdrawn, SessionState
from ribd.rib import Rib

V4, V6 = "ipv4 unicast", "ipv6 unicast"
R1, R2 = "192.0.2.1", "192.0.2.2"


def _prefixes(rng: random.Random, v4: bool, n: int) -> list[str]:
    out = {"0.0.0.0/0" if v4 else "::/0"}
    while len(out) < n:
        if v4:
            length = rng.choice([8, 12, 16, 20, 22, 24, 24, 28, 32])
            addr = rng.choice([10, 11, 192]) << 24 | rng.getrandbits(16) << 8
            net = ipaddress.ip_network((addr, length), strict=False)
        else:
            length = rng.choice([16, 32, 40, 48, 48, 56, 64, 80, 128])
            addr = 0x2001_0DB8 << 96 | rng.getrandbits(24) << 72 | rng.getrandbits(8) << 40
            net = ipaddress.ip_network((addr, length), strict=False)
        out.add(str(net))
    return sorted(out)


def _answer(view, key: int):
    i = int(view.lookup(np.array([key], dtype=view.starts.dtype))[0])
    if i < 0:
        return None
    m = view.route(i)
    columns = (
        view.origin_as,
        view.origin_as_highest,
        view.peer_as,
        view.peer_as_highest,
        view.provenance,
        view.from_set,
        view.stale,
    )
    return (m.prefix, id(m.attributes), m.path_id, m.stale, *(int(c[i]) for c in columns))


@pytest.mark.parametrize("v4", [True, False])
@pytest.mark.parametrize("seed", range(8))
def test_a_patched_view_answers_as_a_fresh_build(v4: bool, seed: int, monkeypatch) -> None:
    import attribution.viewpatch

    # Patch on top of patches whatever the garbage (a default route's change
    # repaints everything), to check them all.
    monkeypatch.setattr(attribution.viewpatch, "PATCH_GARBAGE", 1e9)
    rng = random.Random(seed)
    family = V4 if v4 else V6
    rib = Rib()
    for r in (R1, R2):
        rib.apply(SessionState(r, "up"))
    paths = [
        make_attributes(((AS_SEQUENCE, (65000 + i, 64500 + i)),), next_hop="192.0.2.254")
        for i in range(8)
    ]
    paths.append(make_attributes((), next_hop="192.0.2.254"))  # empty path: local
    # AS_SETs first and last: the "highest" columns differ from the plain ones.
    paths.append(make_attributes(((AS_SET, (64999, 64998)), (AS_SEQUENCE, (64510,)))))
    paths.append(make_attributes(((AS_SEQUENCE, (64520,)), (AS_SET, (64997, 64996)))))
    prefixes = _prefixes(rng, v4, 300)

    def announce(r: str, chosen: list[str]) -> None:
        rib.apply(RoutesAnnounced(r, family, tuple(chosen), None, rng.choice(paths)))

    for p in prefixes:
        announce(rng.choice([R1, R2, R1]), [p])
    view = build_view(rib, R1, family)
    assert view is not None
    for _ in range(4):  # successive patches on top of each other
        for _ in range(rng.randint(1, 40)):
            chosen = rng.sample(prefixes, rng.randint(1, 4))
            r = rng.choice([R1, R1, R2])
            if rng.random() < 0.6:
                announce(r, chosen)
            else:
                rib.apply(RoutesWithdrawn(r, family, tuple(chosen), None))
        patched = patch_view(rib, view, ChangedRanges, view_signature)
        fresh = build_view(rib, R1, family)
        assert patched is not None and fresh is not None
        assert patched.seq == fresh.seq
        points = {0, (1 << (32 if v4 else 64)) - 1}
        for b in (*fresh.starts.tolist(), *patched.starts.tolist()):
            points.update((b, max(b - 1, 0)))
        points.update(rng.getrandbits(32 if v4 else 64) for _ in range(500))
        long_v6 = set(fresh.long_v6.tolist()) | set(patched.long_v6.tolist())
        for key in sorted(points):
            if key in long_v6:
                continue  # the exact path answers there, from either view
            assert _answer(patched, key) == _answer(fresh, key), hex(key)
        view = patched


def test_refresh_patches_a_changed_view_and_rebuilds_after_a_layout_change() -> None:
    rib = Rib()
    rib.apply(SessionState(R1, "up"))
    a = make_attributes(((AS_SEQUENCE, (65001, 64501)),), next_hop="192.0.2.254")
    b = make_attributes(((AS_SEQUENCE, (65002, 64502)),), next_hop="192.0.2.254")
    rib.apply(RoutesAnnounced(R1, V4, ("10.0.0.0/8", "10.1.0.0/16"), None, a))
    views = CompiledViews(rib)
    with rib.lock:
        assert views.usable(R1, V4) is None  # asks for it
    assert views.refresh() == 1 and (views.builds, views.patches) == (1, 0)
    rib.apply(RoutesAnnounced(R1, V4, ("10.1.2.0/24",), None, b))
    views._wanted.add((R1, V4))
    assert views.refresh() == 1 and views.patches == 1
    view = views.current()[0]
    key = np.array([int(ipaddress.ip_address("10.1.2.3"))], dtype=np.uint32)
    assert view.route(int(view.lookup(key)[0])).attributes is b
    rib.apply(SessionState(R1, "down", reason="test"))  # purged: a new slot
    rib.apply(SessionState(R1, "up"))
    rib.apply(RoutesAnnounced(R1, V4, ("10.0.0.0/8",), None, b))
    views._wanted.add((R1, V4))
    assert views.refresh() == 1 and views.patches == 1  # rebuilt, not patched


def test_patches_of_one_refresh_share_store_reads_only_while_nothing_changed():
    """The patches of one refresh read each changed prefix from the store
    once for all routers (``memo``); a write between two of them (the lock
    is let go between views) must not leave the second reading the first's
    entries."""
    rib = Rib()
    first = make_attributes(((AS_SEQUENCE, (64500, 65001)),), next_hop="192.0.2.101")
    second = make_attributes(((AS_SEQUENCE, (64500, 65002)),), next_hop="192.0.2.102")
    for r in (R1, R2):
        rib.apply(SessionState(r, "up"))
        rib.apply(RoutesAnnounced(r, V4, ("10.0.0.0/8", "11.0.0.0/8"), None, first))
    views = [build_view(rib, r, V4) for r in (R1, R2)]
    rib.apply(RoutesAnnounced(R1, V4, ("10.1.0.0/16",), None, first))
    rib.apply(RoutesAnnounced(R2, V4, ("10.1.0.0/16",), None, first))
    memo: dict = {}
    one = patch_view(rib, views[0], ChangedRanges, view_signature, memo)
    rib.apply(RoutesAnnounced(R2, V4, ("10.1.0.0/16",), None, second))
    two = patch_view(rib, views[1], ChangedRanges, view_signature, memo)
    key = int(ipaddress.ip_address("10.1.2.3"))
    assert one is not None and two is not None
    assert _answer(one, key)[0] == "10.1.0.0/16"
    i = int(two.lookup(np.array([key], dtype=np.uint32))[0])
    assert two.route(i).attributes.origin_as == 65002  # R2's later path
