"""A reloaded service answers every flow as a service started with the new file would.

The resolver keeps state across batches: each exporter's chain of routers to try, the
flat path's plans, canonical exporters, compiled views. A reload that left any of it
behind would answer with the old file's exporters, fallbacks or overrides until a
restart, and nothing but the answers would show it. So a real service (hand-fed RIB,
no ExaBGP) is reloaded with seeded random files, its caches warmed with the old file's
answers before each reload, and its answers compared with a fresh resolver's given the
same file. A refused file must leave the answers of the file before it.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from attribution.config import ConfigError, parse_config
from attribution.convert import columns_to_answers, resolution_to_columns
from attribution.resolver import Resolver
from ribd.attributes import AS_SEQUENCE, AS_SET, make_attributes
from ribd.events import EndOfRib, RoutesAnnounced, SessionState
from ribd.speaker import wait_until
from tests.attribution.helpers import external_service

ROUTERS = {"edge1": "127.0.0.11", "edge2": "127.0.0.12", "edge3": "127.0.0.13"}
EXPORTERS = ["127.0.1.1", "127.0.1.2", "127.0.1.3", "127.0.1.4", "::1"]
MACS = ["02:00:00:00:00:0a", "02:00:00:00:00:0b"]
V4, V6 = "ipv4 unicast", "ipv6 unicast"
# edge1 has both families, edge2 IPv4 only, edge3 nothing: fallbacks matter.
ROUTES = [
    ("edge1", V4, "10.0.0.0/8", ((AS_SEQUENCE, (65001, 65002)),)),
    ("edge1", V4, "10.1.0.0/16", ((AS_SEQUENCE, (65001, 65003)), (AS_SET, (65007, 65008)))),
    ("edge1", V4, "192.168.0.0/16", ()),
    ("edge1", V6, "2001:db8::/32", ((AS_SEQUENCE, (65001, 4200000001)),)),
    ("edge2", V4, "10.0.0.0/8", ((AS_SEQUENCE, (65100, 65101)),)),
    ("edge2", V4, "172.16.0.0/12", ((AS_SEQUENCE, (65100,)),)),
]
ADDRESSES = [("10.1.2.3", "10.9.9.9"), ("172.16.0.1", "192.168.1.1")]
ADDRESSES += [("2001:db8::5", "2001:db8::1")]
FLOWS = [
    {"exporter": exporter, "src_addr": src, "dst_addr": dst, "in_if": in_if, "src_mac": mac}
    for exporter in [*EXPORTERS, "127.0.1.9"]
    for src, dst in ADDRESSES
    for in_if, mac in ((20, MACS[0]), (20, MACS[1]), (30, ""), (7, ""))
]


def random_config(rng: random.Random) -> str:
    """A file over the same routers and sessions (what a reload applies live): exporters,
    fallback chains, overrides and the answer policy drawn at random."""
    names = list(ROUTERS)
    owners = {e: rng.choice([*names, None]) for e in EXPORTERS}
    text = (
        f"[service]\nlocal_as = {rng.choice([64500, 64501])}\n"
        'router_id = "127.0.0.1"\ngrpc_listen = "127.0.0.1:0"\n'
        f'as_set_policy = "{rng.choice(["aggregator", "highest"])}"\n'
        f"fallback = {rng.sample(names, rng.randint(0, 2))}\n".replace("'", '"')
    )
    for name, neighbor in ROUTERS.items():
        exporters = [e for e, owner in owners.items() if owner == name]
        others = [n for n in names if n != name]
        fallback = rng.sample(others, rng.randint(0, 2))
        text += (
            f'\n[[routers]]\nname = "{name}"\nneighbor = "{neighbor}"\n'
            f"exporters = {exporters}\nfallback = {fallback}\n".replace("'", '"')
        )
    for i in range(rng.randint(0, 5)):
        text += (
            f'\n[[overrides]]\nname = "rule-{i}"\nexporter = "{rng.choice(EXPORTERS)}"\n'
            f"in_if = {rng.choice([20, 30])}\npeer_as = {rng.choice([65010, 65020, 65030])}\n"
        )
        if rng.random() < 0.5:
            text += f'src_mac = "{rng.choice(MACS)}"\n'
    return text


def answers(resolver: Resolver) -> list[dict]:
    """The flow JSON the gRPC API would send for FLOWS (as the servicer encodes it)."""
    routing = resolver.routing
    res = resolver.resolve_dicts(FLOWS)
    cols, errors = resolution_to_columns(res, routing.local_as, routing.highest_as_set)
    return list(columns_to_answers(cols, errors))


def fresh_answers(service, text: str) -> list[dict]:
    return answers(Resolver(service.rib, parse_config(text, "fresh.toml")))


@pytest.fixture
def service(tmp_path: Path):
    service = external_service(tmp_path, config=random_config(random.Random(0)))
    path = tmp_path / "attribution.toml"
    bgp = path.read_text().split("[[routers]]", 1)[0].split("[bgp]")[1]
    service.start()
    try:
        rib = service.rib
        for neighbor in ROUTERS.values():
            rib.apply(SessionState(neighbor, "up"))
        for name, family, prefix, path_segments in ROUTES:
            attrs = make_attributes(path_segments, next_hop="127.0.0.99")
            rib.apply(RoutesAnnounced(ROUTERS[name], family, (prefix,), None, attrs))
        for neighbor in ROUTERS.values():
            rib.apply(EndOfRib(neighbor, V4))
            rib.apply(EndOfRib(neighbor, V6))
        # The daemon's compiled views, built by its maintenance thread once lookups ask:
        # the path whose plans and chains are kept across batches.
        answers(service.resolver)
        views = service.resolver.views
        wait_until(
            lambda: all(views.usable(ROUTERS[n], f) for n, f in (("edge1", V4), ("edge1", V6))),
            60,
            0.05,
            "edge1's compiled views",
        )
        yield service, path, bgp
    finally:
        service.stop()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_reloaded_service_answers_as_one_started_with_the_new_file(service, seed):
    service, path, bgp = service
    rng = random.Random(seed)
    taken = refused = 0
    current = path.read_text()
    for _ in range(12):
        answers(service.resolver)  # the old file's state, warmed
        text = random_config(rng).replace("[[routers]]", f"[bgp]{bgp}[[routers]]", 1)
        if rng.random() < 0.15:  # a broken file: refused, the running one kept
            text = text.replace("fallback = [", "fallback = [nope, ", 1)
        path.write_text(text)
        result = service.reload()
        if result.ok:
            taken += 1
            current = text
        else:
            refused += 1
            with pytest.raises(ConfigError):
                parse_config(text, "broken.toml")
        got = answers(service.resolver)
        assert got == fresh_answers(service, current), f"after {taken} reloads, {refused} refused"
    assert taken >= 6
