"""What a service's life frees through the cyclic collector only, once ``ribd.gcpolicy`` froze.

Run in a process of its own (``python -m tests.attribution.gc_audit DIR [plant]``; a
frozen object would stay frozen in pytest's): a service (external ExaBGP, the
feed socket, a snapshot path) with ``gcpolicy.FREEZE_AFTER`` lowered, 18
routers' tables through the feed socket (wide entries, Overlays) and their
End-of-RIBs, the maintenance run until the load is frozen; then rounds of what
a running service does after a load: UPDATEs that replace and withdraw routes
over new feed connections, sessions down and up again with their refresh,
compiled views wanted and rebuilt, gRPC calls on new channels, a config
reload, a snapshot, a RIB garbage collection, more freezes. At the end every
frozen object is unfrozen and one full collection run with ``DEBUG_SAVEALL``:
an object the policy froze (noted by id and type at each freeze) that is in
that garbage died in a cycle, and would have leaked. Prints one JSON line.
"""

from __future__ import annotations

import contextlib
import gc
import json
import socket
import sys
import time
from collections import Counter
from pathlib import Path

import orjson

ROUTERS = [f"127.0.0.{20 + k}" for k in range(18)]
V4 = "ipv4 unicast"


def config_text(d: Path, overrides: int) -> str:
    lines = [
        "[service]",
        "local_as = 64500",
        'router_id = "127.0.0.1"',
        'grpc_listen = "127.0.0.1:0"',
        f'snapshot_path = "{d}/rib.snapshot"',
        "",
        "[bgp]",
        'exabgp = "external"',
        f'feed_socket = "{d}/feed.sock"',
        "stale_hold_time = 600",
        "",
    ]
    for k, neighbor in enumerate(ROUTERS):
        lines += [
            "[[routers]]",
            f'name = "r{k}"',
            f'neighbor = "{neighbor}"',
            f'exporters = ["127.0.1.{k + 1}"]',
            "",
        ]
    for k in range(overrides):
        lines += [
            "[[overrides]]",
            f'name = "o{k}"',
            'exporter = "127.0.1.1"',
            f"in_if = {20 + k}",
            f"peer_as = {65010 + k}",
            "",
        ]
    return "\n".join(lines)


def update(peer: str, prefixes: list[str], asns: tuple[int, ...], nh: str) -> bytes:
    body = {
        "attribute": {
            "origin": "igp",
            "as-path": {"0": {"element": "as-sequence", "value": list(asns)}},
        },
        "announce": {V4: {nh: [{"nlri": p} for p in prefixes]}},
    }
    return orjson.dumps(_message(peer, body))


def withdraw(peer: str, prefixes: list[str]) -> bytes:
    return orjson.dumps(_message(peer, {"withdraw": {V4: [{"nlri": p} for p in prefixes]}}))


def _message(peer: str, update: dict) -> dict:
    return {
        "exabgp": "5.0.0",
        "time": 1.0,
        "type": "update",
        "neighbor": {
            "address": {"local": "127.0.0.1", "peer": peer},
            "asn": {"local": 65000, "peer": 65000},
            "direction": "receive",
            "message": {"update": update},
        },
    }


def table(k: int, turn: int) -> list[bytes]:
    """Router ``k``'s UPDATEs: 40 sets of 8 prefixes, a share on paths of its own."""
    out = []
    for s in range(40):
        prefixes = [f"10.{s}.{p}.0/24" for p in range(8)]
        own = (k + s + turn) % 5 == 0
        asns = (65000 + k, 64000 + s + turn) if own else (65001, 64000 + s)
        out.append(update(ROUTERS[k], prefixes, asns, f"192.0.2.{k + 1}"))
    return out


def _name(o: object) -> str:
    return f"{type(o).__name__} {getattr(o, '__module__', '')}.{getattr(o, '__qualname__', '')}"


def main() -> None:
    d = Path(sys.argv[1])
    from attribution.client import channel
    from attribution.service import Service
    from attribution.v1 import attribution_pb2 as pb
    from attribution.v1 import attribution_pb2_grpc as pb_grpc
    from ribd import gcpolicy
    from ribd.events import EndOfRib, SessionState
    from ribd.speaker import wait_until
    from tests.attribution.observed import registry_sample

    path = d / "attribution.toml"
    path.write_text(config_text(d, 1))
    service = Service(str(path))
    service.start()
    rib = service.rib
    gcpolicy.FREEZE_AFTER = 200

    frozen: dict[int, str] = {}

    class Noting:
        """``gc`` for ``ribd.gcpolicy``: each freeze notes what it freezes."""

        def __getattr__(self, name: str) -> object:
            return getattr(gc, name)

        @staticmethod
        def freeze() -> None:
            frozen.update((id(o), type(o).__name__) for o in gc.get_objects())
            gc.freeze()

    gcpolicy.gc = Noting()  # type: ignore[assignment]
    lines_done = 0

    def feed(lines: list[bytes]) -> None:
        nonlocal lines_done
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(service.feed.socket_path)
            s.sendall(b"\n".join(lines) + b"\n")
        lines_done += len(lines)
        wait_until(lambda: service.feed.stats()["lines"] >= lines_done, 30)

    def settle() -> None:
        for neighbor in ROUTERS:
            rib.apply(EndOfRib(neighbor, V4))
        while rib.maintenance():
            pass

    # ``plant``: a cycle alive at the load's freeze and dropped after it, which
    # the audit must report (tests/attribution/test_gc_policy.py).
    planted: list = []
    if len(sys.argv) > 2 and sys.argv[2] == "plant":
        cycle: dict = {}
        cycle["self"] = cycle
        planted.append(cycle)
        del cycle
    for neighbor in ROUTERS:
        rib.apply(SessionState(neighbor, "up"))
    for k in range(len(ROUTERS)):
        feed(table(k, 0))
    settle()
    first = gcpolicy.freezes()
    planted.clear()
    for turn in range(1, 4):
        # Routes replaced (other sets, other rows), some withdrawn, new connections.
        for k in range(0, len(ROUTERS), 3):
            feed([*table(k, turn)[: 20 + turn], withdraw(ROUTERS[k], [f"10.39.{turn}.0/24"])])
        # Sessions down with a hold and up again: the stale generation, then the refresh.
        for neighbor in ROUTERS[turn::4]:
            rib.apply(SessionState(neighbor, "down", reason="audit"))
            rib.apply(SessionState(neighbor, "up"))
        for k in range(turn, len(ROUTERS), 4):
            feed(table(k, turn))
        settle()
        with rib.lock:
            service.resolver.views.want_missing(ROUTERS)
        if service.resolver.views.refresh():
            service.servicer.forget_old_views()
        with channel(f"127.0.0.1:{service.grpc_port}") as ch:
            stub = pb_grpc.AttributionStub(ch)
            for k in range(8):
                stub.Resolve(
                    pb.Flow(exporter=f"127.0.1.{k + 1}", src_addr="10.1.1.1", dst_addr="10.2.2.2")
                )
            with contextlib.suppress(Exception):  # a refused flow: an exception, its traceback
                stub.Resolve(pb.Flow(exporter="not an address", src_addr="x", dst_addr="y"))
        path.write_text(config_text(d, 1 + turn))
        service.reload()
        service.write_snapshot()
        rib.collect_garbage()
        while rib.maintenance():
            pass
        time.sleep(0.3)  # the service's own threads' rounds
    freezes = gcpolicy.freezes()
    exposed = registry_sample(service, "attribution_gc_freezes_total")
    service.stop()
    gc.collect()  # what died young
    gc.set_debug(gc.DEBUG_SAVEALL)
    gc.unfreeze()
    gc.collect()
    leaked = Counter(type(o).__name__ for o in gc.garbage if frozen.get(id(o)) == type(o).__name__)
    print(
        json.dumps(
            {
                "freezes_at_load": first,
                "freezes": freezes,
                "freezes_exposed": exposed,
                "frozen_noted": len(frozen),
                "garbage": sum(1 for _ in gc.garbage),
                "leaked": dict(leaked.most_common(30)),
                "garbage_types": dict(
                    Counter(type(o).__name__ for o in gc.garbage).most_common(30)
                ),
                "named": sorted(
                    Counter(
                        _name(o)
                        for o in gc.garbage
                        if frozen.get(id(o)) == type(o).__name__
                        and isinstance(o, (type, type(main)))
                    ).items()
                ),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
