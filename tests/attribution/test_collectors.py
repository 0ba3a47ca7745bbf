"""Real collectors into `attribution enrich`, against a service fed over a real BGP session.

The pipelines README "Feeding it flows" documents, run as written there:

- softflowd (Debian) reads a pcap this test writes (Ethernet/IPv4/IPv6, TCP
  and UDP frames built with struct) and exports NetFlow v9 or IPFIX over
  loopback UDP to
- nfcapd (nfdump), whose closed file ``nfdump -r FILE -o json`` pipes into
  ``attribution enrich --config``; and to
- nfacctd (pmacct) with the print plugin appending JSON to a file that
  ``attribution enrich --follow`` reads as it grows;
- goflow2's JSON, from records in its documented shape (README, and the
  default field list of producer/proto: every FlowMessage field in order).

The service (`attribution serve`, supervised ExaBGP) learns :data:`ROUTES`
from a speaker ExaBGP over a real session. The expected answers are worked
out here from :data:`ROUTES` with ``ipaddress`` (longest match; origin =
last AS, the AS before a trailing AS_SET; peer = first AS; empty path =
our AS), not by the code under test.
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from ribd.speaker import Route, Speaker, wait_until
from tests.attribution.helpers import wait_for_lines
from tests.attribution.observed import SERVING, ServedProcess, router_block, stop_process

pytestmark = pytest.mark.bgp

LOCAL_AS = 64500
EXPORTER = "127.0.0.1"  # softflowd's datagrams come from it; the collectors record it
ROUTES = [
    Route("10.1.0.0/16", "127.0.0.2", (65001, 65003)),
    Route("10.1.2.0/24", "127.0.0.2", (65004, 65004, 65005)),
    Route("10.9.0.0/16", "127.0.0.2", (65001, 65006, (65007, 65008))),
    Route("172.16.0.0/12", "127.0.0.2", (65010, 65011)),
    Route("192.168.0.0/16", "127.0.0.2", ()),
    Route("2001:db8::/32", "::1", (65001, 4200000001)),
    Route("2001:db8:1::/48", "::1", (65012, 65013)),
]
IX_MAC = "02:00:00:00:00:0a"
OVERRIDE = (
    '[[overrides]]\nname = "ix-a"\nexporter = "127.0.0.1"\nin_if = 0\n'
    f'src_mac = "{IX_MAC}"\npeer_as = 65020\n'
)
OVERRIDE_PEER = 65020

# (src MAC, src, dst, protocol, src port, dst port, packets): each a flow in the pcap
FLOWS = [
    (IX_MAC, "172.16.5.5", "10.1.2.3", 6, 443, 50001, 1),
    ("02:00:00:00:00:0b", "10.9.1.1", "192.168.3.4", 17, 53, 40000, 2),
    (IX_MAC, "2001:db8:1::7", "2001:db8::1", 17, 53, 40001, 3),
    ("02:00:00:00:00:0b", "10.1.9.9", "198.51.100.1", 6, 22, 50002, 4),
    ("02:00:00:00:00:0b", "2001:db8:1::8", "2001:db8:2::9", 6, 80, 50003, 1),
]
PAYLOAD = 100


# --------------------------------------------------------------------------- expectations


def lookup(address: str) -> Route | None:
    ip = ipaddress.ip_address(address)
    best = None
    for r in ROUTES:
        net = ipaddress.ip_network(r.prefix)
        longer = best is None or net.prefixlen > ipaddress.ip_network(best.prefix).prefixlen
        if ip.version == net.version and ip in net and longer:
            best = r
    return best


def origin_peer(route: Route | None) -> tuple[int, int]:
    if route is None:
        return 0, 0
    if not route.as_path:
        return LOCAL_AS, 0
    path = list(route.as_path)
    last = path[-1]
    origin = path[-2] if isinstance(last, tuple) else last
    return origin, path[0]


def expected(src_mac: str, src: str, dst: str) -> dict:
    s_origin, s_peer = origin_peer(lookup(src))
    d_origin, d_peer = origin_peer(lookup(dst))
    if src_mac == IX_MAC:  # the override: exporter 127.0.0.1, in_if 0, this MAC
        s_peer = OVERRIDE_PEER
    return {
        "src_origin_as": s_origin,
        "src_peer_as": s_peer,
        "dst_origin_as": d_origin,
        "dst_peer_as": d_peer,
        "dst_prefix": lookup(dst).prefix if lookup(dst) else None,
        "override": "ix-a" if src_mac == IX_MAC else None,
    }


def ip_bytes(src: str, packets: int, proto: int) -> int:
    """What the exporter counts: IP packet lengths."""
    l4 = (20 if proto == 6 else 8) + PAYLOAD
    return packets * ((40 if ":" in src else 20) + l4)


# --------------------------------------------------------------------------- the pcap


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def frame(src_mac: str, src: str, dst: str, proto: int, sport: int, dport: int) -> bytes:
    payload = b"x" * PAYLOAD
    if proto == 6:
        l4 = struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, 0x18, 65535, 0, 0) + payload
    else:
        l4 = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    if ":" in src:
        ip = struct.pack("!IHBB", 6 << 28, len(l4), proto, 64)
        ip += socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst)
        ethertype = 0x86DD
    else:
        head = struct.pack(
            "!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 1, 0, 64, proto, 0,
            socket.inet_aton(src), socket.inet_aton(dst),
        )  # fmt: skip
        ip = head[:10] + struct.pack("!H", _checksum(head)) + head[12:]
        ethertype = 0x0800
    dst_mac = bytes.fromhex("020000000001")
    return (
        dst_mac + bytes.fromhex(src_mac.replace(":", "")) + struct.pack("!H", ethertype) + ip + l4
    )


def write_pcap(path: Path) -> None:
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]  # Ethernet
    when = int(time.time()) - 60
    for n, (mac, src, dst, proto, sport, dport, packets) in enumerate(FLOWS):
        for k in range(packets):
            data = frame(mac, src, dst, proto, sport, dport)
            out.append(struct.pack("<IIII", when + n, k * 1000, len(data), len(data)) + data)
    path.write_bytes(b"".join(out))


# --------------------------------------------------------------------------- processes


def need(*binaries: str) -> None:
    missing = [b for b in binaries if shutil.which(b) is None]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)} (Debian: pmacct, nfdump, softflowd)")


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _udp_sockets(port: int) -> list[list[str]]:
    want = f"0100007F:{port:04X}"
    with open("/proc/net/udp") as f:
        return [fields for line in f.readlines()[1:] if (fields := line.split())[1] == want]


def udp_bound(port: int) -> bool:
    """Someone listens on 127.0.0.1:port (UDP), from /proc/net/udp."""
    return bool(_udp_sockets(port))


def udp_drained(port: int) -> bool:
    """The listener on 127.0.0.1:port has read every datagram sent to it (rx_queue 0)."""
    return all(int(s[4].split(":")[1], 16) == 0 for s in _udp_sockets(port))


def export(pcap: Path, port: int, version: int, work: Path) -> None:
    """softflowd reads the pcap, exports every flow at its end, and exits."""
    cmd = ["softflowd", "-r", str(pcap), "-n", f"127.0.0.1:{port}", "-v", str(version)]
    cmd += ["-T", "ether", "-d", "-p", str(work / "softflowd.pid")]  # -T ether: MACs too
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.fixture(scope="module")
def service():
    """`attribution serve` with one router (exporter 127.0.0.1), its routes from a
    speaker ExaBGP over a real session."""
    svc = ServedProcess(
        router_block("edge1", "127.0.0.2", EXPORTER) + OVERRIDE, bgp="converge_quiet_time = 0\n"
    )
    speaker = None
    try:
        wait_until(lambda: svc.health() is not None, 60, 0.1, "gRPC up")
        speaker = Speaker(
            peer_port=svc.bgp_port, peer_as=LOCAL_AS, local_as=LOCAL_AS, routes=ROUTES
        )
        speaker.start()
        speaker.wait_established(60)
        svc.wait_health(SERVING, 120)  # End-of-RIB: every route is in
        yield svc
    finally:
        if speaker is not None:
            speaker.stop()
        svc.stop()


@pytest.fixture
def work():
    path = Path(tempfile.mkdtemp(prefix="attribution-collectors-", dir="/tmp"))
    write_pcap(path / "flows.pcap")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def enrich_cmd(service: ServedProcess, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "attribution.cli",
        "enrich",
        "--config",
        service.config_path,
        *args,
    ]


def check(rows: list[dict], fmt: str) -> None:
    """Every pcap flow once, with the answers its routes give, and its counters."""
    by_pair = {(r["src"], r["dst"]): r for r in rows}
    assert len(by_pair) == len(rows) == len(FLOWS), rows
    for mac, src, dst, proto, _, _, packets in FLOWS:
        got = by_pair[(src, dst)]
        want = expected(mac, src, dst)
        assert {k: got[k] for k in want} == want, (src, dst, got)
        assert got["router"] == "edge1" and got["error"] is None
        assert (got["bytes"], got["packets"]) == (ip_bytes(src, packets, proto), packets), fmt


# --------------------------------------------------------------------------- nfdump


def _closed(store: Path) -> list[Path]:
    """The files nfcapd closed (renamed from nfcapd.current.PID: nfcapd.YYYYMMDDhhmm...)."""
    return [p for p in store.iterdir() if p.name.startswith("nfcapd.2")]


# rotate: nfcapd closes a file every -t seconds, on the clock: with 300 a run
# that crosses a 5-minute boundary splits its flows over two files (a flaky
# failure once, "two files where one was expected"); 2 makes it every run
@pytest.mark.parametrize(("version", "rotate"), [(9, 300), (10, 300), (10, 2)])
def test_softflowd_to_nfcapd_then_nfdump_json_into_enrich(service, work, version, rotate):
    need("softflowd", "nfcapd", "nfdump")
    port = free_udp_port()
    store = work / "nfcapd"
    store.mkdir()
    with open(work / "nfcapd.log", "wb") as log:
        nfcapd = subprocess.Popen(
            ["nfcapd", "-w", str(store), "-p", str(port), "-b", "127.0.0.1", "-t", str(rotate)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: udp_bound(port), 30, 0.1, "nfcapd listening")
        export(work / "flows.pcap", port, version, work)
        # stopped with datagrams unread, nfcapd closes its file without their flows
        wait_until(lambda: udp_drained(port), 30, 0.1, "nfcapd read the export")
        if rotate < 60:  # at least one rotation after the export: more than one file
            # Waited for, not slept: on a loaded machine nfcapd rotated late, and
            # a fixed 1.5 rotations left one file (CI, stop 45).
            wait_until(lambda: _closed(store), 30, 0.1, "nfcapd rotated a file")
    finally:
        stop_process(nfcapd)  # nfcapd closes its file: nfcapd.YYYYMMDDhhmm
    closed = _closed(store)
    assert closed and (len(closed) > 1) is (rotate < 60), closed
    # README: nfdump -R DIR (every file nfcapd closed) -o json | attribution enrich ...
    pipeline = f"nfdump -R {store} -o json | " + " ".join(
        enrich_cmd(service, "--stats", str(work / "stats.json"))
    )
    out = subprocess.run(
        ["bash", "-o", "pipefail", "-c", pipeline], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    for r in rows:
        r["src"] = r.get("src4_addr") or r["src6_addr"]
        r["dst"] = r.get("dst4_addr") or r["dst6_addr"]
        r["bytes"], r["packets"] = r["in_bytes"], r["in_packets"]
        assert r["ip4_router"] == EXPORTER
    check(rows, f"nfdump v{version}")
    stats = json.loads((work / "stats.json").read_text())
    assert stats["formats"] == {"nfdump": len(FLOWS)} and stats["bad_total"] == 0


# --------------------------------------------------------------------------- pmacct


NFACCTD_CONF = """daemonize: false
nfacctd_ip: 127.0.0.1
nfacctd_port: {port}
plugins: print
print_output: json
print_output_file: {file}
print_output_file_append: true
print_refresh_time: 1
aggregate: peer_src_ip, in_iface, out_iface, src_mac, src_host, dst_host, timestamp_end
"""


def ready(log: Path) -> bool:
    return b"JSON: setting object handlers" in log.read_bytes()


# IPFIX: nfacctd 1.7.7 takes softflowd's NetFlow v9 templates but prints none of its records
@pytest.mark.parametrize("version", [10])
def test_softflowd_to_nfacctd_print_json_followed_by_enrich(service, work, version):
    need("softflowd", "nfacctd")
    port = free_udp_port()
    flows, out = work / "flows.json", work / "attributed.jsonl"
    (work / "nfacctd.conf").write_text(NFACCTD_CONF.format(port=port, file=flows))
    with open(work / "nfacctd.log", "wb") as log:
        nfacctd = subprocess.Popen(
            ["nfacctd", "-f", str(work / "nfacctd.conf")], stdout=log, stderr=subprocess.STDOUT
        )
    # README: attribution enrich --config ... --follow flows.json >> attributed.jsonl
    with open(out, "wb") as sink:
        enrich = subprocess.Popen(
            enrich_cmd(service, "--follow", str(flows), "--stats", str(work / "stats.json")),
            stdout=sink,
            stderr=subprocess.PIPE,
        )
    try:
        # records that come before the print plugin is ready are lost: wait for it too
        wait_until(lambda: udp_bound(port) and ready(work / "nfacctd.log"), 30, 0.1, "nfacctd")
        export(work / "flows.pcap", port, version, work)
        rows = wait_for_lines(out, len(FLOWS))
    except AssertionError as exc:
        seen = flows.read_text() if flows.exists() else "(no file)"
        log = (work / "nfacctd.log").read_text(errors="replace")[-2000:]
        raise AssertionError(f"{exc}\nnfacctd wrote: {seen}\nits log: {log}") from None
    finally:
        stop_process(nfacctd)
        enrich.send_signal(signal.SIGTERM)  # as a supervisor stops it
        _, err = enrich.communicate(timeout=180)
    for r in rows:
        r["src"], r["dst"] = r["ip_src"], r["ip_dst"]
        assert r["peer_ip_src"] == EXPORTER and r["event_type"] == "purge"
    check(rows, f"pmacct v{version}")
    stats = json.loads((work / "stats.json").read_text())
    assert stats["formats"] == {"pmacct": len(FLOWS)} and stats["bad_total"] == 0, err


# --------------------------------------------------------------------------- goflow2


def goflow2_record(n: int, flow: tuple) -> dict:
    """A record as goflow2's JSON formatter writes it: every FlowMessage field, in
    order, IPs and MACs rendered as text (shape of a recorded goflow2 v2 line)."""
    mac, src, dst, proto, sport, dport, packets = flow
    v6 = ":" in src
    return {
        "type": "IPFIX",
        "time_received_ns": 1709065965800218079 + n,
        "sequence_num": 47163 + n,
        "sampling_rate": 1024,
        "sampler_address": EXPORTER if n % 2 else "::ffff:127.0.0.1",  # 4 or 16 bytes
        "time_flow_start_ns": 1709065965800218079,
        "time_flow_end_ns": 1709065965800218079 + n,
        "bytes": ip_bytes(src, packets, proto),
        "packets": packets,
        "src_addr": src,
        "dst_addr": dst,
        "etype": "IPv6" if v6 else "IPv4",
        "proto": "TCP" if proto == 6 else "UDP",
        "src_port": sport,
        "dst_port": dport,
        "in_if": 0,
        "out_if": 5031,
        "src_mac": mac,
        "dst_mac": "00:16:3e:c9:e3:eb",
        "src_vlan": 0,
        "dst_vlan": 0,
        "vlan_id": 0,
        "ip_tos": 0,
        "forwarding_status": 0,
        "ip_ttl": 64,
        "ip_flags": 2,
        "tcp_flags": 16,
        "icmp_type": 0,
        "icmp_code": 0,
        "ipv6_flow_label": 0,
        "fragment_id": 29356,
        "fragment_offset": 0,
        "src_as": 0,
        "dst_as": 0,
        "next_hop": "",
        "next_hop_as": 0,
        "src_net": "::/0" if v6 else "0.0.0.0/0",
        "dst_net": "::/0" if v6 else "0.0.0.0/0",
        "bgp_next_hop": "",
        "bgp_communities": [],
        "as_path": [],
        "mpls_ttl": [],
        "mpls_label": [],
        "mpls_ip": [],
        "observation_domain_id": 0,
        "observation_point_id": 0,
    }


def test_goflow2_json_lines_piped_into_enrich(service, work):
    lines = "".join(
        json.dumps(goflow2_record(n, f), separators=(",", ":")) + "\n" for n, f in enumerate(FLOWS)
    )
    # README: goflow2 -listen ... -format json | attribution enrich --config ...
    out = subprocess.run(
        enrich_cmd(service), input=lines, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    for r in rows:
        r["src"], r["dst"] = r["src_addr"], r["dst_addr"]
        assert r["sampling_rate"] == 1024 and r["etype"] in ("IPv4", "IPv6")
    check(rows, "goflow2")
