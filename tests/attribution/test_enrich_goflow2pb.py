"""`attribution enrich --input-format goflow2-pb`: goflow2's binary output (-format=bin).

The samples are built here from the message schema (proto/attribution/goflow2/
flow.proto, goflow2's pb/flow.proto field numbers and types) and framed as
goflow2 frames them: each message after its length as a varint. Expected
answers are those of test_enrich.py's hand-written world
(tests/attribution/helpers.py), not computed by the code under test.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
import threading

import pytest

from attribution.goflow2 import flow_pb2
from tests.attribution.served import Server

ASES = ("src_origin_as", "src_peer_as", "dst_origin_as", "dst_peer_as")


@pytest.fixture(scope="module")
def server():
    s = Server()
    yield s
    s.stop()


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def framed(message: bytes) -> bytes:
    return varint(len(message)) + message


def flow(seq: int, src: str, dst: str, **kw) -> bytes:
    m = flow_pb2.FlowMessage(
        type=flow_pb2.FlowMessage.IPFIX,
        sequence_num=seq,
        sampler_address=ipaddress.ip_address("127.0.1.1").packed,
        src_addr=ipaddress.ip_address(src).packed,
        dst_addr=ipaddress.ip_address(dst).packed,
        time_flow_end_ns=1_700_000_000_000_000_000 + seq,
        bytes=1500,
        packets=1,
        sampling_rate=1000,
        **kw,
    )
    return m.SerializeToString()


def enrich(server, *args, stdin=None):
    cmd = [sys.executable, "-m", "attribution.cli", "enrich", "--target", server.target]
    cmd += ["--input-format", "goflow2-pb", *args]
    return subprocess.run(cmd, input=stdin, capture_output=True, timeout=120)


GOOD = [
    flow(1, "172.16.0.1", "10.1.2.3", in_if=10),
    # in_if 20 and the IX MAC (goflow2 carries MACs as 48-bit integers): ix-peer-a
    flow(2, "2001:db8:1::1", "2001:db8::5", in_if=20, src_mac=0x02000000000A),
    flow(3, "10.9.1.1", "192.168.1.1", in_if=30),  # pni-b
]
EXPECTED = [
    (65011, 65010, 65005, 65004),
    (65013, 65010, 4200000001, 65001),
    (65006, 65020, 64500, 0),
]


def test_goflow2_binary_records_are_answered_and_bad_messages_counted(server, tmp_path):
    data = (
        framed(GOOD[0])
        + framed(b"\x08\xff")  # field 1, a varint cut short: not a FlowMessage
        + framed(GOOD[1])
        + framed(GOOD[2])
        + varint(60)
        + GOOD[0][:20]  # the last message cut off
    )
    path = tmp_path / "flows.bin"
    path.write_bytes(data)
    stats = tmp_path / "stats.json"
    out = enrich(server, "--stats", str(stats), str(path))
    assert out.returncode == 0, out.stderr
    got = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["sequence_num"] for r in got] == [1, 2, 3]
    assert [tuple(r[k] for k in ASES) for r in got] == EXPECTED
    assert got[1]["override"] == "ix-peer-a" and got[2]["override"] == "pni-b"
    # written back as goflow2's JSON shows them
    assert (got[0]["type"], got[0]["sampler_address"], got[0]["dst_addr"]) == (
        "IPFIX",
        "127.0.1.1",
        "10.1.2.3",
    )
    assert got[1]["src_mac"] == "02:00:00:00:00:0a"
    counts = json.loads(stats.read_text())
    assert counts["bad"] == {"bad_record": 2}
    assert counts["read"] == 5 and counts["written"] == 3
    err = out.stderr.decode()
    assert f"{path}:2: bad_record: goflow2-pb: not a FlowMessage" in err
    assert f"{path}:5: bad_record: goflow2-pb: message cut off at the end" in err


def test_a_length_that_no_message_can_have_skips_the_rest_not_the_run(server, tmp_path):
    path = tmp_path / "flows.bin"
    path.write_bytes(framed(GOOD[0]) + varint(5 << 20) + b"\x00" * 100 + framed(GOOD[1]))
    out = enrich(server, str(path))
    assert out.returncode == 0, out.stderr
    got = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["sequence_num"] for r in got] == [1]  # framing lost: nothing after it is trusted
    assert "message of 5242880 bytes over 1048576; the rest of this input skipped" in (
        out.stderr.decode()
    )


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_message_split_across_reads_on_stdin_is_answered(server, jobs):
    """goflow2 -format=bin | attribution enrich: a message arriving in two pieces."""
    cmd = [sys.executable, "-m", "attribution.cli", "enrich", "--target", server.target]
    cmd += ["--input-format", "goflow2-pb", "--jobs", str(jobs)]
    proc = subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        whole = framed(GOOD[1])
        proc.stdin.write(whole[:7])
        proc.stdin.flush()
        threading.Event().wait(0.7)  # longer than the idle flush: the piece waits alone
        proc.stdin.write(whole[7:])
        proc.stdin.flush()
        got: list[bytes] = []
        reader = threading.Thread(target=lambda: got.append(proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(90)
        assert got and got[0], "no output line"
        row = json.loads(got[0])
        assert tuple(row[k] for k in ASES) == EXPECTED[1]
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)
        proc.stdout.close()
        proc.stderr.close()


def test_random_bytes_never_crash_the_splitter_and_every_good_message_survives():
    """Hostile input in random pieces: every outcome is a JSON line, a skipped (counted)
    message, or the framing given up (counted once); with the junk inside frames,
    every good message is there."""
    import random

    from attribution.enrich_goflow2pb import DelimitedSplitter

    rng = random.Random(13)
    for _ in range(300):
        parts = []
        good = 0
        unframed = False  # bytes outside any frame: the framing after them is lost
        for _ in range(rng.randint(1, 8)):
            if rng.random() < 0.5:
                parts.append(framed(rng.choice(GOOD)))
                good += 1
            else:
                junk = rng.randbytes(rng.randint(0, 40))
                if rng.random() < 0.7:
                    parts.append(framed(junk))
                else:
                    parts.append(junk)
                    unframed = unframed or bool(junk)
        data = b"".join(parts)
        bad: list[tuple[str, str]] = []
        split = DelimitedSplitter("f", lambda where, why, bad=bad: bad.append((where, why)))
        lines = []
        pos = 0
        while pos < len(data):
            step = rng.randint(1, 64)
            chunk = split.feed(data[pos : pos + step])
            pos += step
            if chunk is not None:
                assert chunk.first == len(lines) + 1  # numbering has no gaps
                lines.extend(chunk.lines)
        split.rest()
        for line in lines:
            assert line == b"" or "sampler_address" in json.loads(line)
        if not unframed:  # junk in frames is skipped alone (or parses as a message)
            assert not split.lost
            assert sum(1 for line in lines if line) >= good
        assert len(bad) <= len(parts) + 1
