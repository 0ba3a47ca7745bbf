"""The compiled reader (attribution._enrich_scan) changes nothing but the speed.

Every input is read twice, once with the compiled reader in front of the
Python one and once with the Python reader alone, and everything that comes
out must be equal: the records (format, file, line, text, row), the packed
request of each batch (each good record's exporter, addresses, ifIndex, MAC,
next hop), the bad records with their reasons and FILE:LINE messages, the
counters; and end to end against a real server, the output bytes (JSON
lines and CSV). Inputs: every fixture, the column tests' variants of each
format, and seeded random hostile lines (cut, escaped, huge numbers, nested,
duplicate keys, NUL bytes, wrong types, CRLF, formats mixed in one chunk).
"""

from __future__ import annotations

import io
import itertools
import json
import os
import random
import shutil
import sysconfig
from pathlib import Path

import orjson
import pytest

import attribution.enrich_records as er
import attribution.enrich_wire as ew
from attribution.client import channel
from attribution.enrich import Options, run
from attribution.enrich_pack import pack_request
from attribution.enrich_records import Counters, read_batches
from attribution.enrich_sources import Chunk, _Splitter
from attribution.enrich_wire import AnswerBatch, RouteDictionary
from attribution.v1 import attribution_pb2_grpc as pb_grpc
from tests.attribution.served import Server
from tests.attribution.test_enrich_columns import (
    GOFLOW2,
    NATIVE,
    NFDUMP,
    PMACCT,
    mutations,
    variants,
)

DATA = Path(__file__).parent / "data" / "enrich"
FORMATS = [None, "goflow2", "pmacct", "nfdump", "native"]


def test_the_compiled_reader_is_built_where_there_is_a_c_compiler():
    """In CI (a fresh ``pip install -e .``, gcc present) the cross-checks below must
    really run the compiled reader and JSON assembler, not skip them (setup.py builds
    them optionally, so a broken build would pass silently). A checkout installed
    before the .pyx existed skips, saying how to build them."""
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(cc) is None:
        pytest.skip(f"no C compiler ({cc}): the Python reader runs, as designed")
    built = er._enrich_scan is not None and ew.JSON_COMPILED is not None
    if not built and not os.environ.get("CI"):
        pytest.skip("attribution._enrich_scan/_enrich_json not built here: `pip install -e .`")
    assert er._enrich_scan is not None, f"{cc} is here but attribution._enrich_scan was not built"
    assert ew.JSON_COMPILED is not None, f"{cc} is here but attribution._enrich_json was not built"
    assert er.reader_name() == "compiled" or er.SCANNER is None


needs_scanner = pytest.mark.skipif(er._enrich_scan is None, reason="compiled reader not built")


def hostile(seed: int, n: int) -> list[bytes]:
    """Lines a collector, a broken pipe or an attacker might send, built from
    good records of every format."""
    rng = random.Random(seed)
    base = [GOFLOW2, PMACCT, NFDUMP, NATIVE]
    odd = [
        None,
        True,
        "",
        "x",
        "1.2.3.4",
        "::",
        "0.0.0.0",
        "::ffff:0.0.0.0",
        "::ff:0",
        -1,
        0,
        1 << 31,
        1 << 32,
        (1 << 63) - 1,
        1 << 63,
        1 << 64,
        10**30,
        -(1 << 63),
        1.5,
        "12",
        "AS65001",
        [1, [2]],
        {"a": {"b": None}},
        "02:00:00:00:00:0A",
        "02-00-00-00-00-0a",
        "0200.0000.000a",
        " 02:00:00:00:00:0a",
        "02:00:00:00:00:0g",
        "00:00:00:00:00:00",
        "purge_init",
        "purge_close",
        "FLOW",
        "EVENT",
        "127.0.1.1\x00",
        "2001:db8::1%eth0",
        "1.2.3.04",
        # dotted quads the compiled reader parses itself (no inet_pton): its
        # verdict must be inet_pton's on each
        "01.2.3.4",
        "0.0.0.00",
        "1.2.3",
        "1.2.3.4.",
        "1..3.4",
        ".1.2.3.4",
        "256.1.1.1",
        "1.2.3.255",
        "255.255.255.255",
        "1.2.3.1000",
        "1.2.3.4 ",
        "+1.2.3.4",
        "1.2.3.-4",
        "1.2.3.0x4",
        "1.2.3.4/24",
        "1.2.3.4.5",
        "10.0.0.1",
        "é",
    ]
    keys = sorted({k for rec in base for k in rec} | {"time_received_ns", "ip4_router", "type"})
    out: list[bytes] = []
    for _ in range(n):
        rec = dict(rng.choice(base))
        for _ in range(rng.randint(0, 3)):
            op = rng.randrange(4)
            if op == 0:
                rec[rng.choice(keys)] = rng.choice(odd)
            elif op == 1 and rec:
                rec.pop(rng.choice(list(rec)))
            elif op == 2:
                rec[rng.choice(["note", "router", "src_prefix", "fallback", "k"])] = rng.choice(odd)
            else:
                other = rng.choice(base)
                rec.update(dict(rng.sample(sorted(other.items()), 2)))
        text = json.dumps(rec, ensure_ascii=rng.random() < 0.8).encode()
        shape = rng.randrange(12)
        if shape == 0:
            text = text[: rng.randrange(len(text) + 1)]  # cut off
        elif shape == 1:
            k = rng.choice(list(rec) or ["x"])  # a duplicate key, last or first
            v = json.dumps(rng.choice(odd)).encode()
            dup = b'"' + k.encode() + b'":' + v
            text = (
                b"{" + dup + b"," + text[1:]
                if rng.random() < 0.5
                else text[:-1] + b"," + dup + b"}"
            )
        elif shape == 2:
            text = (
                text.replace(b'"', b'"\\u0073rc_', 1)
                if rng.random() < 0.5
                else text.replace(b"_", b"\\u005f", 1)
            )
        elif shape == 3:
            text += b"\r"  # CRLF
        elif shape == 4:
            i = rng.randrange(len(text) + 1)
            text = (
                text[:i] + rng.choice([b"\x00", b"\t", b" ", b"\x0c", b"\x7f", b"\xff"]) + text[i:]
            )
        elif shape == 5:
            text = text.replace(b": ", b":", 1).replace(b", ", b" ,\t", 2)
        elif shape == 6:
            text = (
                text[:-1]
                + b',"n":'
                + rng.choice(
                    [
                        b"1e3",
                        b"-0",
                        b"01",
                        b"1.",
                        b"-",
                        b"1.0e+2",
                        b"12345678901234567890",
                        b"-9223372036854775808",
                        b"9223372036854775807",
                        b"0.000000000000000000000000000001",
                    ]
                )
                + b"}"
            )
        elif shape == 7:
            text = (
                text[:-1]
                + b',"deep":'
                + b"[" * rng.randint(20, 40)
                + b"]" * rng.randint(20, 40)
                + b"}"
            )
        elif shape == 8:
            text = text[:-1] + b",}"  # nfdump's json-log separator
        elif shape == 9:
            text = text[:-1] + rng.choice(
                [
                    b',"a":tru}',
                    b',"a":nul}',
                    b',"a":"\x01"}',
                    b',"a"}',
                    b",}",
                    b"}}",
                    b',"":1}',
                    b',"a":"' + b"{[" * 20 + b'"}',  # brackets in a string count too
                    b',"' + b"[" * 40 + b'":1}',
                ]
            )
        out.append(text.replace(b"\n", b" "))
    return out


def noise(seed: int, n: int) -> list[bytes]:
    """Random lines from a JSON-ish alphabet: brackets, quotes, digits, keys."""
    rng = random.Random(seed)
    parts = [b"{", b"}", b"[", b"]", b'"', b":", b",", b" ", b"-", b"0", b"7", b".", b"e"]
    parts += [b"null", b"true", b"\\", b"\x00", b"\xc3\xa9", b'"src_addr"', b'"exporter"']
    parts += [b'"sampler_address"', b'"10.0.0.1"', b'"::1"', b'"peer_ip_src"', b'"bytes"']
    out = []
    for _ in range(n):
        line = b"".join(rng.choice(parts) for _ in range(rng.randint(0, 40)))
        out.append(b"{" + line + b"}" if rng.random() < 0.7 else line)
    return out


def _inputs() -> list[bytes]:
    lines = variants()
    lines += mutations(11, 600)
    lines += hostile(12, 3000)
    lines += noise(13, 1000)
    for path in sorted(DATA.glob("*")):
        lines += path.read_bytes().splitlines()
    return lines


def _read(
    lines: list[bytes], fmt: str | None, compiled: bool, size: int = 64, whole: bool | None = None
):
    """Everything the reader and the packing give, with the compiled reader or without
    (``whole``: chunks as one bytes object, as `enrich` reads them for the compiled reader)."""
    return _read_bytes(b"\n".join(lines) + b"\n", fmt, compiled, size, whole)


def _read_bytes(
    data: bytes,
    fmt: str | None,
    compiled: bool,
    size: int = 64,
    whole: bool | None = None,
    steps: tuple[int, ...] = (7000,),
):
    """:func:`_read` of bytes fed to the splitter in pieces of ``steps`` bytes (cycled);
    a whole-lines splitter's chunks get an empty chunk before them."""
    saved = er.SCANNER
    er.SCANNER = er._enrich_scan if compiled else None
    whole = compiled if whole is None else whole
    try:
        counters = Counters(keep=10**6)
        split = _Splitter("in.jsonl", whole=whole)
        chunks = [Chunk("in.jsonl", 1, None, b"")] if whole else []
        at = 0
        for step in itertools.cycle(steps):
            if at >= len(data):
                break
            chunks.append(split.feed(data[at : at + step]))
            at += step
        chunks.append(split.rest())
        records, packed = [], []
        for b in read_batches(iter([c for c in chunks if c]), fmt, counters, size):
            request, bad, good = pack_request(b, 0)
            cols = request.columns
            for k, i in enumerate(good):
                packed.append(
                    (
                        b.where(i),
                        cols.exporters[cols.exporter[k]],
                        cols.src_addr[16 * k : 16 * k + 16],
                        cols.dst_addr[16 * k : 16 * k + 16],
                        cols.in_if[k],
                        cols.src_mac[6 * k : 6 * k + 6] or b"\0" * 6,
                        cols.next_hop[16 * k : 16 * k + 16] or b"\0" * 16,
                    )
                )
            packed.extend((b.where(i), *bad[i]) for i in sorted(bad))
            records.extend(
                (b.formats[i], b.where(i), b.raw[i], b.rows[i], b.flow(i)) for i in range(len(b))
            )
        summary = counters.as_json()
        compiled_records = summary.pop("compiled_records")
        summary.pop("reader")
        return records, packed, summary, compiled_records
    finally:
        er.SCANNER = saved


@needs_scanner
@pytest.mark.parametrize("whole", [True, False])
@pytest.mark.parametrize("fmt", FORMATS)
def test_the_compiled_reader_gives_the_records_requests_and_errors_of_the_python_reader(fmt, whole):
    lines = _inputs()
    random.Random(3).shuffle(lines)  # formats, good and bad mixed in every chunk
    records, packed, summary, taken = _read(lines, fmt, compiled=True, whole=whole)
    expected_records, expected_packed, expected_summary, none = _read(lines, fmt, compiled=False)
    assert none == 0
    assert taken > 100  # it really ran, on many of them
    assert summary == expected_summary
    assert packed == expected_packed
    assert records == expected_records


@needs_scanner
@pytest.mark.parametrize("seed", [21, 22, 23, 24])
def test_hostile_lines_alone_and_in_full_batches_read_as_the_python_reader_reads_them(seed):
    lines = hostile(seed, 4000) + noise(seed, 2000)
    random.Random(seed).shuffle(lines)
    for size in (1, 7, 4096):
        expected = _read(lines, None, compiled=False, size=size)
        for whole in (True, False):
            got = _read(lines, None, compiled=True, size=size, whole=whole)
            assert got[:3] == expected[:3]


# the address fields of each format the compiled reader packs (or canonicalises)
ADDRESS_FIELDS = [
    (GOFLOW2, ("sampler_address", "src_addr", "dst_addr", "bgp_next_hop")),
    (PMACCT, ("peer_ip_src", "ip_src", "ip_dst", "peer_ip_dst")),
    (NFDUMP, ("ip4_router", "src4_addr", "dst4_addr", "bgp4_next_hop")),
    (NATIVE, ("exporter", "src_addr", "dst_addr", "next_hop")),
]
ODD_QUADS = [
    "1.2.3.4", "0.0.0.0", "255.255.255.255", "10.0.0.1", "9.99.199.249",
    "01.2.3.4", "1.02.3.4", "1.2.003.4", "0.0.0.00", "00.0.0.0", "1.2.3", "1.2.3.4.",
    "1..3.4", ".1.2.3.4", "256.1.1.1", "1.2.3.256", "1.2.3.1000", "1.2.3.4 ", " 1.2.3.4",
    "+1.2.3.4", "1.2.3.-4", "1.2.3.0x4", "1.2.3.4/24", "1.2.3.4.5", "1.2.3.4a", "1234",
    "1.2.3.4\u0000", "0x1.2.3.4", "1,2,3,4", "::ffff:1.2.3.4", "::1.2.3.4", "1.2.3.4::",
]  # fmt: skip


@needs_scanner
def test_dotted_quads_in_every_address_field_pack_as_inet_pton_packs_them():
    """The compiled reader parses IPv4 text itself (not inet_pton): for each
    address field of each format, each odd dotted quad gives the record, the
    packed request and the error of the Python reader (which uses inet_pton)."""
    lines = []
    for base, keys in ADDRESS_FIELDS:
        for key in keys:
            for quad in ODD_QUADS:
                lines.append(json.dumps({**base, key: quad}).encode())
    got = _read(lines, None, compiled=True)
    expected = _read(lines, None, compiled=False)
    assert got[:3] == expected[:3]
    assert got[3] > len(ADDRESS_FIELDS) * 8  # the good ones were the compiled reader's


def _varied_lines(n: int) -> list[bytes]:
    """Good records of every format whose packed fields vary: exporters (IPv6
    too), ifIndexes up to 2**32 - 1 (five-byte varints), MACs and next hops
    present or not."""
    rng = random.Random(5)
    out = []
    for k in range(n):
        rec = dict(rng.choice([GOFLOW2, PMACCT, NFDUMP, NATIVE]))
        for key in ("in_if", "iface_in", "input_snmp"):
            if key in rec:
                rec[key] = rng.choice([0, 1, 127, 128, 16383, 16384, 2**31, 2**32 - 1, k])
        for key in ("sampler_address", "peer_ip_src", "ip4_router", "exporter"):
            if key in rec and rng.random() < 0.3:
                rec[key] = rng.choice(["127.0.1.2", "127.0.1.3", "::1"])
        for key in ("src_mac", "mac_src", "in_src_mac"):
            if key in rec and rng.random() < 0.5:
                rec[key] = rng.choice(["", "00:00:00:00:00:00", "02:00:00:00:00:0b"])
        for key in ("bgp_next_hop", "peer_ip_dst", "bgp4_next_hop", "next_hop"):
            if rng.random() < 0.5:
                rec.pop(key, None)
        out.append(json.dumps(rec).encode())
    return out


@needs_scanner
@pytest.mark.parametrize("size", [1, 97, 4096])
def test_the_request_written_in_c_is_the_message_numpy_makes(size):
    """``Packed.request`` (a batch of the scanner's records straight to protobuf
    wire bytes) gives the message of the numpy path (_pack_mixed), for batches
    whose MACs or next hops are all zero or not, any exporter and ifIndex; None
    for a batch with a record the Python reader took."""
    from attribution import enrich_pack
    from attribution.v1 import attribution_pb2 as pb

    lines = _varied_lines(3000) + [_good_lines(1)[0]] * 200
    mixed = _inputs()
    random.Random(9).shuffle(mixed)
    whole, partial = 0, 0
    for data in (lines, mixed[:3000]):
        split = _Splitter("t", whole=True)
        chunk = split.feed(b"\n".join(data) + b"\n")
        saved = er.SCANNER
        er.SCANNER = er._enrich_scan
        try:
            batches = list(read_batches(iter([chunk]), None, Counters(), size))
        finally:
            er.SCANNER = saved
        for i, batch in enumerate(batches):
            batch_id = [0, 1, 2**40 + i][i % 3]
            got = batch.packed.request(len(batch), batch_id)
            if batch.packed.taken < len(batch):
                assert got is None
                partial += 1
                continue
            whole += 1
            expected, bad, good = enrich_pack._pack_mixed(batch, batch_id)
            assert not bad and good == list(range(len(batch)))
            assert pb.FlowBatch.FromString(got) == expected
            assert got == expected.SerializeToString(deterministic=True)
    assert whole and partial
    empty = er._enrich_scan.Packed(str, 16).request(0, 7)  # no records: the empty request
    assert pb.FlowBatch.FromString(empty) == enrich_pack._request(7, [], [], b"", b"", [], b"", b"")


def _number_lines() -> list[bytes]:
    """Number texts of 1 to 22 digits (the scanner reads eight at a time), each
    also with one byte replaced by one next to the digits in ASCII or JSON's
    number syntax or by a byte of 0x80 or more, and the bounds of int64 and
    uint64, as the value of a field the mapping reads and of one it
    does not, and at the end of the object."""
    digits = "9876543210123456789012"
    texts = []
    for m in range(1, 23):
        number = digits[:m]
        texts += [number, "-" + number, "0" + number, number + ".5", number + "e1"]
        for at in range(m):
            for c in "/:;?.-+ eE\x00\x7f\x8a\xff":  # the last two: UTF-8, 0xC2 0x8A and 0xC3 0xBF
                texts.append(number[:at] + c + number[at + 1 :])
    # int64's and uint64's bounds, 19 and 20 digits, leading zeros, runs of nines
    texts += ["9223372036854775807", "9223372036854775808", "-9223372036854775807"]
    texts += ["-9223372036854775808", "18446744073709551615", "18446744073709551616"]
    texts += ["9999999999999999999", "99999999999999999999", "1000000000000000000"]
    texts += ["10000000000000000000", "00", "-0", "-01", "0.0", "1.", "99999999", "100000000"]
    out = []
    for key in ("bytes", "time_flow_end_ns", "sequence_num"):
        for text in texts:
            head = json.dumps({k: v for k, v in GOFLOW2.items() if k != key})[:-1]
            out.append(f'{head}, "{key}": {text}}}'.encode())
            out.append(f'{{"{key}": {text}, {head[1:]}}}'.encode())
    return out


@needs_scanner
def test_numbers_of_every_length_read_as_the_python_reader_reads_them():
    """The scanner's eight-digits-at-a-time integer parse takes exactly the
    numbers the Python reader takes, with the same values (rows, counters,
    errors), whatever their length and whatever byte breaks them."""
    lines = _number_lines()
    got = _read(lines, None, compiled=True)
    expected = _read(lines, None, compiled=False)
    assert got[:3] == expected[:3]
    assert got[3] > 100


def _good_lines(n: int) -> list[bytes]:
    return [json.dumps({**GOFLOW2, "bytes": k}).encode() for k in range(n)]


def _bad_lines(n: int) -> list[bytes]:
    return [b'{"sampler_address": "127.0.1.1", "src_addr": "no address"}'] * n


# the chunk boundaries the whole-chunk reader makes: (input bytes, read sizes)
BOUNDARIES = {
    # records cut anywhere between reads, a read inside one record
    "split_across_reads": (b"\n".join(_good_lines(300)) + b"\n", (1, 5, 300, 471, 4096)),
    "crlf": (b"\r\n".join(_good_lines(100) + _bad_lines(3)) + b"\r\n", (7000,)),
    "crlf_mixed": (
        b"".join(x + (b"\r\n" if k % 3 else b"\n") for k, x in enumerate(_good_lines(100))),
        (333,),
    ),
    "no_final_newline": (b"\n".join(_good_lines(100)), (7000,)),
    "no_final_newline_nfdump": (
        b"\n".join([*_good_lines(20), json.dumps(NFDUMP).encode()[:-1] + b",}"]),
        (64,),
    ),
    # a read of bad lines only, between good ones
    "only_bad_lines": (
        b"\n".join(_good_lines(50) + _bad_lines(40) + _good_lines(50)) + b"\n",
        (len(b"\n".join(_good_lines(50))) + 1, len(b"\n".join(_bad_lines(40))) + 1, 7000),
    ),
    "empty_and_blank_lines": (b"\n\n" + b"\n\n".join(_good_lines(30)) + b"\n\n  \n", (50,)),
    "empty": (b"", (7000,)),
}


@needs_scanner
@pytest.mark.parametrize("case", sorted(BOUNDARIES))
def test_chunk_boundaries_read_the_same_records_with_either_reader(case):
    data, steps = BOUNDARIES[case]
    expected = _read_bytes(data, None, compiled=False, steps=steps)
    for size in (1, 64, 4096):
        for whole in (True, False):
            got = _read_bytes(data, None, compiled=True, size=size, whole=whole, steps=steps)
            assert got[:3] == _read_bytes(data, None, compiled=False, size=size, steps=steps)[:3]
    assert expected[2]["read"] == len(expected[0]) + sum(expected[2]["bad"].values())
    if case not in ("empty", "crlf"):
        assert _read_bytes(data, None, compiled=True, steps=steps)[3] > 0  # it took records


@needs_scanner
def test_a_long_good_run_is_taken_by_the_compiled_reader_and_counted_in_the_stats():
    lines = [
        json.dumps({**rec, "i": k}).encode()
        for k in range(300)
        for rec in (GOFLOW2, PMACCT, NFDUMP, NATIVE)
    ]
    records, _, summary, taken = _read(lines, None, compiled=True, size=100)
    assert taken == len(lines) == summary["read"] and not summary["bad"]
    assert summary["formats"] == {"goflow2": 300, "pmacct": 300, "nfdump": 300, "native": 300}
    assert [r[1] for r in records] == [f"in.jsonl:{k + 1}" for k in range(len(lines))]


@pytest.fixture(scope="module")
def server():
    s = Server()
    yield s
    s.stop()


def _enrich(server, path: Path, fmt: str | None, output: str, compiled: bool):
    """A run with the compiled reader and JSON assembler, or with neither."""
    saved = er.SCANNER, ew.JSON_COMPILED
    er.SCANNER = er._enrich_scan if compiled else None
    ew.JSON_COMPILED = saved[1] if compiled else None
    try:
        out = io.BytesIO()
        messages: list[str] = []
        counters = Counters(echo=messages.append, keep=10**6, echo_per_reason=10**6)
        opts = Options(
            inputs=[str(path)], input_format=fmt, output_format=output, batch_size=50, progress=0
        )
        run(server.target, opts, out, messages.append, counters)
        stats = counters.as_json()
        # the reader's thread and the writer's count bad records: their order interleaves
        stats["examples"].sort()
        messages.sort()
        return out.getvalue(), stats.pop("compiled_records"), stats.pop("reader"), stats, messages
    finally:
        er.SCANNER, ew.JSON_COMPILED = saved


@needs_scanner
@pytest.mark.parametrize("output", ["json", "csv"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_enrich_writes_the_same_bytes_counters_and_messages_with_either_reader(
    server, tmp_path, fmt, output
):
    lines = _inputs()
    random.Random(4).shuffle(lines)
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    out, taken, reader, stats, messages = _enrich(server, path, fmt, output, compiled=True)
    expected, none, python, expected_stats, expected_messages = _enrich(
        server, path, fmt, output, compiled=False
    )
    assert (reader, python) == ("compiled", "python") and taken > 100 and none == 0
    assert stats == expected_stats
    assert messages == expected_messages
    assert out == expected
    if output == "json":  # and it is the records with their answers
        assert len(out.splitlines()) == stats["written"] > 100
        for line in out.splitlines()[:50]:
            assert "dst_origin_as" in orjson.loads(line)


@pytest.mark.skipif(ew.JSON_COMPILED is None, reason="compiled JSON assembler not built")
def test_the_compiled_json_assembler_writes_the_bytes_of_the_numpy_one(server):
    """Answers of a real server (routes, no route, errors from the packing and
    from the service, routers, overrides, flags), batch by batch on one stream."""
    lines = [x for x in _inputs() if b"\\" not in x][:3000]
    split = _Splitter("t", whole=True)  # records as spans of the chunk, as enrich reads them
    batches = list(
        read_batches(iter([split.feed(b"\n".join(lines) + b"\n")]), None, Counters(), 97)
    )
    with channel(server.target) as ch:
        stub = pb_grpc.AttributionStub(ch)
        packed = [pack_request(b, i) for i, b in enumerate(batches)]
        replies = list(stub.ResolveStream(iter([p[0] for p in packed]), timeout=60))
    routes = RouteDictionary()
    errors = 0
    for batch, (_, bad, good), reply in zip(batches, packed, replies, strict=True):
        routes = routes.update(reply.columns)
        answers = AnswerBatch.from_reply(len(batch), bad, good, reply, routes)
        errors += len(answers.errors)
        compiled = answers.json_lines(*batch.texts())
        assert compiled == answers.json_lines(batch.raw)  # the texts made of the spans
        saved = ew.JSON_COMPILED
        ew.JSON_COMPILED = None
        try:
            assert compiled == answers.json_lines(batch.raw)
        finally:
            ew.JSON_COMPILED = saved
    assert errors and len(batches) > 10


@needs_scanner
def test_rows_of_lines_the_scanner_did_not_take_come_from_the_fallback():
    """fill_rows never reads a field a line does not have: handed any line, it makes
    the row itself or asks the fallback."""
    lines = hostile(31, 500) + noise(31, 500)
    asked = []

    def fallback(kind, text):
        asked.append(text)
        return ("fallback",)

    for kind in ("goflow2", "pmacct", "nfdump", "native", "other"):
        rows: list = [None] * len(lines)
        er._enrich_scan.fill_rows(rows, [kind] * len(lines), lines, fallback)
        assert all(type(r) is tuple for r in rows)
    assert asked


@pytest.mark.parametrize("compiled", [True, False])
def test_an_empty_object_record_is_written_as_valid_json(server, tmp_path, compiled):
    """``{}`` read as our flow JSON is a record (bad_record: no exporter): its line
    is its answer alone, not ``{,"router":...``; so is a record left empty once
    its answer-named fields are dropped."""
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{}\n{ }\n{"router":"x"}\n' + json.dumps(NATIVE).encode() + b"\n")
    if compiled and ew.JSON_COMPILED is None:
        pytest.skip("compiled JSON assembler not built")
    out, *_ = _enrich(server, path, "native", "json", compiled=compiled)
    got = [orjson.loads(line) for line in out.splitlines()]
    assert [g["error_code"] for g in got] == ["bad_record"] * 3 + [None]


@needs_scanner
@pytest.mark.parametrize("case", sorted(BOUNDARIES))
def test_chunk_boundaries_write_the_same_json_lines_with_either_reader(server, tmp_path, case):
    """End to end through `enrich`'s own 64 KiB reads: each case after 1,000 good
    records (records cut between reads) and before a last one without its newline."""
    data, _ = BOUNDARIES[case]
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"\n".join(_good_lines(1000)) + b"\n" + data + b"\n" + _good_lines(1)[0])
    out, taken, _, stats, messages = _enrich(server, path, None, "json", compiled=True)
    expected, _, _, expected_stats, expected_messages = _enrich(
        server, path, None, "json", compiled=False
    )
    assert taken >= 1000
    assert (out, stats, messages) == (expected, expected_stats, expected_messages)
    assert len(out.splitlines()) == stats["written"] >= 1001


@needs_scanner
def test_the_scanner_reads_a_chunk_only_up_to_its_end():
    """scan_data's ``end`` (a read's complete lines, scanned where they lie):
    a line is cut at ``end`` as at the end of the data, nothing past it is
    taken, and an end or offset outside the data is an error, not a read."""
    line = _good_lines(1)[0]
    data = line + b"\n" + line + b"\n"

    def scan(pos: int, end: int) -> tuple[int, int, int]:
        packed = er._enrich_scan.Packed(er.canonical_exporter, 16)
        rows: list = []
        raw: list = []
        k, at = packed.scan_data(data, pos, 0, 1, "t", -1, 16, rows, raw, [], [], [], {}, end)
        return k, at, len(raw)

    n = len(line) + 1
    assert scan(0, -1) == (2, 2 * n, 2)
    assert scan(0, n) == (1, n, 1)
    assert scan(0, 2 * n - 2) == (1, n, 1)  # the second line without its closing brace
    assert scan(n, 2 * n) == (1, 2 * n, 1)
    assert scan(n, n) == (0, n, 0)
    for pos, end in ((0, 2 * n + 1), (n + 1, n), (-1, n)):
        with pytest.raises(ValueError):
            scan(pos, end)


def _json_log(record: dict, end: bytes = b",}") -> bytes:
    """``record`` as nfdump ``-o json-log`` writes a flow: ``"key" : value``, a
    comma after the last member, the closing brace after it."""
    body = ",".join(f"{json.dumps(k)} : {json.dumps(v)}" for k, v in record.items())
    return ("{" + body).encode() + end


def _json_log_lines() -> list[bytes]:
    """json-log lines of every format, and their endings varied: whitespace
    before the comma, a second comma, a value at the end that is cut, nested,
    unterminated or followed by a brace, whole lines of nothing but the ending."""
    ends = [b",}", b" ,}", b"\t,}", b",,}", b", ,}", b"},}", b",} ", b", }", b",}}"]
    tails = [
        b',"x" : {"a" : 1},}',
        b',"x" : [1, 2],}',
        b',"x" : [1,},}',
        b',"x" : {,}',
        b',"x" : tru,}',
        b',"x" : true,}',
        b',"x" : "abc,}',
        b',"x" : 1.,}',
        b',"x" : 1e5,}',
        b',"x" : 12345678901234567890,}',
        b',"x" : -,}',
        b',"x" : null ,}',
        b',"router" : 1,}',  # an answer name: the Python reader's
        b',"x" : "' + b"[" * 40 + b'",}',  # brackets in a string count towards the depth
        b',"x" : ' + b"[" * 31 + b"]" * 31 + b",}",
        b',"x" : ' + b"[" * 33 + b"]" * 33 + b",}",
    ]
    out = [b"{,}", b"{ ,}", b"{},}", b",}", b"{ , }", b'{"a" : 1,}']
    for rec in (GOFLOW2, PMACCT, NFDUMP, NATIVE):
        out += [_json_log(rec, end) for end in ends]
        out += [_json_log(rec, b"") + tail for tail in tails]
        dup = next(iter(rec))  # a key twice, the second at the end
        out.append(_json_log(rec, b"") + f',"{dup}" : 1,}}'.encode())
    return out


@needs_scanner
def test_json_log_lines_read_as_the_python_reader_reads_them():
    """A line ending in ``,}`` is read where it lies (no copy of it made), as
    the Python reader reads its text[:-2] + b"}": the same records, requests,
    rows, counters and errors, whatever precedes the ending."""
    lines = _json_log_lines()
    lines = lines + [json.dumps(GOFLOW2).encode()] * 3 + lines  # the key memo warm too
    for fmt in FORMATS:
        expected = _read(lines, fmt, compiled=False)
        for size in (1, 4096):
            for whole in (True, False):
                got = _read(lines, fmt, compiled=True, size=size, whole=whole)
                assert got[:3] == _read(lines, fmt, compiled=False, size=size)[:3]
        if fmt in (None, "nfdump"):
            assert got[3] > 10  # the compiled reader took json-log lines
    assert expected[2]["bad"]  # and some are bad


@needs_scanner
@pytest.mark.parametrize("output", ["json", "csv"])
def test_json_log_lines_write_the_same_bytes_with_either_reader(server, tmp_path, output):
    lines = _json_log_lines() + [_json_log(NFDUMP)] * 200 + _json_log_lines()
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    got = _enrich(server, path, None, output, compiled=True)
    expected = _enrich(server, path, None, output, compiled=False)
    assert got[1] > 200  # the compiled reader took them
    assert (got[0], got[3], got[4]) == (expected[0], expected[3], expected[4])
    if output == "json":
        assert b'"ip6_router" : "::1","router":' in got[0]  # the comma and brace gone


def _runs_of_near_copies(seed: int, n: int) -> list[bytes]:
    """Lines that repeat the line before's members byte for byte, but one or two
    (the scanner reads a member equal to the one at its position in the line
    before as that one was read): values changed within the same length, keys
    renamed at one byte, a member repeated as a duplicate after itself or its
    key taking the place before it (the repeat then a duplicate), spaces
    before a comma, an answer-named key, brackets near the depth bound in a
    repeated member, cut lines, json-log endings, formats switched mid-run."""
    rng = random.Random(seed)
    base = [GOFLOW2, PMACCT, NFDUMP, NATIVE]
    rec = dict(rng.choice(base))
    out: list[bytes] = []
    for _ in range(n):
        if rng.random() < 0.02:
            rec = dict(rng.choice(base))  # another format, the positions' memos stale
        line = dict(rec)
        op = rng.randrange(12)
        key = rng.choice(sorted(line))
        if op == 1:
            line[key] = rng.choice([None, True, 0, -1, 1 << 63, "", "x", [1, [2]], {"a": 1}])
        elif op == 2:
            line = {(k[:-1] + "X" if k == key else k): v for k, v in line.items()}
        elif op == 3:
            line["src_prefix"] = "10.0.0.0/8"  # an answer name: the Python reader's
        elif op == 4:
            line["deep"] = [[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]
        rec = line if rng.random() < 0.3 else rec  # sometimes the change stays
        text = json.dumps(line, separators=(",", ":")).encode()
        if op == 0:  # one digit changed: a value (or a key) of the same length
            digits = [i for i, c in enumerate(text) if 48 <= c <= 57]
            if digits:
                i = rng.choice(digits)
                text = text[:i] + str((text[i] - 47) % 10).encode() + text[i + 1 :]
        elif op == 5:  # the member at a position repeated right after itself
            first = text.index(b",") + 1
            end = text.index(b",", first) + 1
            text = text[:end] + text[first:end] + text[end:]
        elif op == 10 and text.count(b",") >= 2:  # the next member's key first: a duplicate
            end = text.index(b",") + 1
            key2 = text[end : text.index(b":", end)]
            text = b"{" + key2 + b":0," + text[end:]
        elif op == 6:
            text = text.replace(b",", b" ,", 1)
        elif op == 7:
            text = text[: rng.randrange(len(text))]
        elif op == 8:
            text = text[:-1] + b",}"
        elif op == 9:
            text = text[:-1] + b',"b":' + b"[" * 17 + b"]" * 17 + b"}"  # over the bound with "deep"
        out.append(text)
    return out


@needs_scanner
@pytest.mark.parametrize("seed", [31, 32, 33])
def test_near_copies_of_the_line_before_read_as_the_python_reader_reads_them(seed):
    """The member memo (a member equal to the line before's at its position is
    not read again) changes no record, row, packed field, error or counter."""
    lines = _runs_of_near_copies(seed, 3000)
    for size in (1, 7, 4096):
        expected = _read(lines, None, compiled=False, size=size)
        for whole in (True, False):
            got = _read(lines, None, compiled=True, size=size, whole=whole)
            assert got[:3] == expected[:3]
            assert got[3] > 300  # the scanner took many of them
