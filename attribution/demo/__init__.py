"""`attribution demo`: the whole service against a real BGP session, no router needed.

It starts the service (RIB, supervised ExaBGP, gRPC) on loopback, starts a
second ExaBGP that plays the edge router and announces ``table.json`` (IPv4
and IPv6, with nested prefixes, prepending, AS_SETs, an empty path, default
routes, 4-byte ASNs), waits for End-of-RIB, then attributes ``flows.jsonl``
through the gRPC bulk path and prints the answers. Among them: a flow whose
exporter's router (edge-b) never connected, answered by its fallback router
and flagged ``fallback``, and a flow from an exporter no router claims, which
gets the ``unknown_exporter`` error.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

from attribution.client import resolve_dicts
from attribution.service import Service
from ribd.speaker import Route, Speaker, free_port

log = logging.getLogger(__name__)
ROUTER = "127.0.0.2"  # the demo speaker plays this router
LOCAL_AS = 64500


def bundled(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def load_routes() -> list[Route]:
    table = json.loads(bundled("table.json"))
    return [
        Route(
            prefix=r["prefix"],
            next_hop=r["next_hop"],
            as_path=tuple(tuple(x) if isinstance(x, list) else x for x in r["as_path"]),
            communities=tuple(r.get("communities", ())),
            large_communities=tuple(r.get("large_communities", ())),
            local_pref=r.get("local_pref"),
            med=r.get("med"),
            origin=r.get("origin", "igp"),
        )
        for r in table["routes"]
    ]


def wait_converged(service: Service, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with service.rib.lock:
            r = service.rib.routers.get(ROUTER)
            if (
                r is not None
                and r.session == "up"
                and all(fs.converged for fs in r.families.values())
            ):
                return
        time.sleep(0.1)
    raise TimeoutError(f"the demo router did not send End-of-RIB within {timeout:.0f} s")


def run_demo(
    flows_path: str | None = None, as_json: bool = False, keep_running: bool = False
) -> int:
    work = Path(tempfile.mkdtemp(prefix="attribution-demo-", dir="/tmp"))
    bgp_port, grpc_port = free_port(), free_port()
    config_path = work / "demo.toml"
    config_path.write_text(
        bundled("demo.toml").format(bgp_port=bgp_port, grpc_port=grpc_port, work_dir=work)
    )
    target = f"127.0.0.1:{grpc_port}"
    service = Service(str(config_path))
    speaker = Speaker(
        peer_port=bgp_port,
        peer_as=LOCAL_AS,
        local_as=LOCAL_AS,
        local_address=ROUTER,
        routes=load_routes(),
        work_dir=str(work / "speaker"),
    )
    say = print if not as_json else (lambda *a, **k: print(*a, file=sys.stderr, **k))
    try:
        say(f"starting the service (gRPC {target}, BGP 127.0.0.1:{bgp_port}, ExaBGP supervised)")
        service.start()
        say(f"starting the demo router {ROUTER} (a second ExaBGP) with the bundled table")
        speaker.start()
        speaker.wait_established(timeout=60)
        wait_converged(service, timeout=60)
        fams = service.rib.routers[ROUTER].families
        say(
            f"BGP session up, End-of-RIB received: {fams['ipv4 unicast'].prefixes} IPv4 and "
            f"{fams['ipv6 unicast'].prefixes} IPv6 prefixes in the RIB of 'demo-edge'\n"
        )
        text = Path(flows_path).read_text() if flows_path else bundled("flows.jsonl")
        flows = [json.loads(line) for line in text.splitlines() if line.strip()]
        answers = list(resolve_dicts(target, flows))
        if as_json:
            for a in answers:
                print(json.dumps(a))
        else:
            print(render_table(answers))
        if keep_running:
            say(
                f"\nthe service keeps running. Try:\n"
                f"  attribution routers --target {target}\n"
                f"  attribution lookup --target {target} demo-edge 198.51.100.200\n"
                f"  grpcurl -plaintext {target} list\n"
                f"Ctrl-C stops it."
            )
            while True:
                time.sleep(3600)
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        service.stop()  # first: a planned stop, not the demo router's session lost and purged
        speaker.close()
        shutil.rmtree(work, ignore_errors=True)


def _as(a: dict, side: str, kind: str) -> str:
    value = a[f"{side}_{kind}_as"]
    prov = a[f"{side}_{kind}_provenance"]
    return f"{value} ({prov})"


def render_table(answers: list[dict]) -> str:
    """The answers as an aligned table, one flow per row, notes explaining flags."""
    from attribution.cli import format_table

    headers = [
        "#",
        "flow",
        "in_if",
        "router",
        "src peer",
        "src origin",
        "dst peer",
        "dst origin",
        "dst prefix",
        "notes",
    ]
    rows = []
    for n, a in enumerate(answers, 1):
        flow = f"{a.get('src_addr', '?')} -> {a.get('dst_addr', '?')}"
        if a.get("error"):
            rows.append(
                [
                    str(n),
                    flow,
                    str(a.get("in_if", "")),
                    "-",
                    "-",
                    "-",
                    "-",
                    "-",
                    "-",
                    f"{a['error_code']}: {a['error']}",
                ]
            )
            continue
        notes = []
        if a["override"]:
            notes.append(f"override {a['override']}")
        for flag in (
            "src_unrouted",
            "src_asymmetric",
            "dst_origin_as_set",
            "src_origin_as_set",
            "fallback",
            "dst_stale",
            "src_stale",
        ):
            if a[flag]:
                notes.append(flag)
        rows.append(
            [
                str(n),
                flow,
                str(a.get("in_if", "")),
                a["router"] or "-",
                _as(a, "src", "peer"),
                _as(a, "src", "origin"),
                _as(a, "dst", "peer"),
                _as(a, "dst", "origin"),
                a["dst_prefix"] or "-",
                ", ".join(notes),
            ]
        )
    return format_table(headers, rows)
