"""ExaBGP's CPU for one full table over a real BGP session, by API mode and setting.

The real table's UPDATEs (byte for byte, from the MRT file in ``../shared/data``)
are sent over a real TCP session on loopback to the supervised ExaBGP of a
``BgpTestbed`` (RIB + feed + relay as the service runs them), with the
neighbor's API block rendered for each mode of ``ribd.exabgp_config.API_MODES``
and ExaBGP settings on top. Per variant: CPU-seconds of ExaBGP, of the relay
and of this process (the service's side: feed, parser or raw decoder, RIB)
from the first UPDATE until the RIB holds the table, converged; for
``no-update`` (nothing decoded, the RIB stays empty) until ExaBGP's CPU stops
growing. The relay's and the service's parts are then compared with ExaBGP's.

``python -m bench.exabgp_api [--variants json,raw,...]`` (heavy: run under
``flock /tmp/heavy.lock``).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import subprocess
import threading
import time

from bench.common import cpu_seconds, log
from bench.exabgp_log import (
    END_OF_RIB,
    MRT,
    PEER_AS,
    PREFIXES,
    ROUTER,
    _children,
    established_session,
    updates,
)

VARIANTS: dict[str, tuple[str, dict[str, str]]] = {
    "json": ("json", {}),
    "raw": ("raw", {}),
    "raw+parsed": ("raw+parsed", {}),
    "consolidate": ("consolidate", {}),
    "no-update": ("no-update", {}),
    "raw-warning": ("raw", {"exabgp.log.level": "WARNING"}),
    "raw-speed": ("raw", {"exabgp.reactor.speed": "0.1"}),
    "raw-ack": ("raw", {"exabgp.api.ack": "true"}),
}


def thread_cpu() -> dict[str, float]:
    """CPU-seconds of this process's live threads by thread name (feed reader, maintenance...)."""
    out: dict[str, float] = {}
    for t in threading.enumerate():
        try:
            cpu = cpu_seconds(f"self/task/{t.native_id}")
        except OSError:
            continue
        name = t.name.split("-")[0] if t.name.startswith("Thread-") else t.name
        out[name] = out.get(name, 0.0) + cpu
    return out


def one_run(name: str, messages: list[bytes], profile: str = "") -> dict:
    from attribution.service import tune_gc
    from ribd.exabgp import ExabgpSupervisor
    from ribd.settings import NeighborSettings
    from ribd.speaker import BgpTestbed, wait_until

    tune_gc()  # as ``attribution serve`` does: the default collector rescans the table
    mode, extra = VARIANTS[name]
    tb = BgpTestbed(
        local_as=PEER_AS,
        neighbors=[NeighborSettings("r1", ROUTER, PEER_AS, add_path=False)],
        api_mode=mode,
    )
    tb.settings = dataclasses.replace(tb.settings, extra=dict(extra))
    tb.supervisor = ExabgpSupervisor(tb.settings, tb.rib)
    tb.start()
    try:
        wait_until(lambda: tb.supervisor.pid is not None, 30)
        exabgp = tb.supervisor.pid
        sock = established_session(tb)
        relays = _children(exabgp)
        cpu0 = {"exabgp": cpu_seconds(exabgp), "service": time.process_time()}
        cpu0["relay"] = sum(cpu_seconds(p) for p in relays)
        threads0 = thread_cpu()
        spies = []
        if profile:  # py-spy samples ExaBGP and this process (the service side), folded stacks
            for who, pid, rate in (("exabgp", exabgp, "200"), ("service", os.getpid(), "100")):
                spies.append(
                    subprocess.Popen(
                        [
                            *("py-spy", "record", "--pid", str(pid), "-r", rate, "-f", "raw"),
                            *("-o", os.path.join(profile, f"{who}-{name}.txt")),
                        ],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                )
            time.sleep(1.0)
        t0 = time.monotonic()
        sock.sendall(b"".join(messages) + END_OF_RIB)
        fs = None

        def loaded() -> bool:
            nonlocal fs
            r = tb.rib.routers.get(ROUTER)
            fs = r.families.get("ipv4 unicast") if r else None
            return bool(fs and fs.converged)

        if mode == "no-update":
            last = cpu_seconds(exabgp)
            while True:  # done when ExaBGP stops spending (2 s under 0.05 CPU-s)
                time.sleep(2.0)
                now = cpu_seconds(exabgp)
                if now - last < 0.05:
                    break
                last = now
        else:
            wait_until(loaded, 900, interval=0.05)
        for spy in spies:
            spy.send_signal(signal.SIGINT)
            spy.wait(60)
        out = {
            "variant": name,
            "exabgp_cpu": round(cpu_seconds(exabgp) - cpu0["exabgp"], 2),
            "relay_cpu": round(sum(cpu_seconds(p) for p in relays) - cpu0["relay"], 2),
            "service_cpu": round(time.process_time() - cpu0["service"], 2),
            "wall": round(time.monotonic() - t0, 1),
            "prefixes": fs.prefixes if fs else 0,
            "bad_lines": tb.feed.stats()["bad_lines"],
        }
        threads = thread_cpu()
        out["service_threads"] = {
            k: round(v - threads0.get(k, 0.0), 2)
            for k, v in sorted(threads.items(), key=lambda kv: -kv[1])
            if v - threads0.get(k, 0.0) >= 0.01
        }
        out["ours_over_exabgp"] = round(
            (out["relay_cpu"] + out["service_cpu"]) / max(out["exabgp_cpu"], 1e-9), 3
        )
        sock.close()
        return out
    finally:
        tb.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument(
        "--profile", default="", help="directory for py-spy profiles of ExaBGP and the service"
    )
    p.add_argument("--limit", type=int, default=0, help="only the table's first N UPDATEs")
    p.add_argument("--every", type=int, default=1, help="only every Nth UPDATE (a sample)")
    args = p.parse_args(argv)
    if not MRT.exists():
        print(f"skipped: {MRT} is absent")
        return 0
    messages = updates()
    messages = messages[:: args.every]
    if args.limit:
        messages = messages[: args.limit]
    log(f"exabgp-api: {len(messages)} UPDATEs")
    for _ in range(args.repeat):
        for name in args.variants.split(","):
            log(f"exabgp-api: variant {name}")
            res = one_run(name, messages, args.profile)
            ok = res["prefixes"] == PREFIXES or VARIANTS[name][0] == "no-update" or args.limit
            print(res, "" if ok else "(RIB INCOMPLETE!)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
