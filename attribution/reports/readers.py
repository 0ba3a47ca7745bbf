"""Streaming readers: file lines -> flow-JSON-shaped dicts, one line at a time.

Supported: flow JSON lines (``attribution resolve`` input or output),
``nfdump -o csv``, pmacct print plugin CSV and JSON, goflow2 JSON and
``nfdump -o json`` (mappings shared with ``attribution enrich``, in
attribution.flowformats). Files may be gzip'ed.
A malformed line never stops a run: the parser raises :class:`RecordError`,
the caller records file + line number + reason in :class:`BadLines` and goes on.
Lines are read with a length cap so one hostile line cannot exhaust memory.
"""

from __future__ import annotations

import gzip
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any, TextIO

import orjson

from attribution.flowformats import (
    ObjectSplitter,
    goflow2_to_flow,
    is_marker,
    nfdump_to_flow,
    pmacct_to_flow,
)
from attribution.flowformats import to_int as _to_int
from attribution.reports.records import RecordError

FORMATS = ("flow-json", "nfdump-csv", "pmacct-csv", "pmacct-json", "goflow2-json", "nfdump-json")
MAX_LINE = 1 << 20  # 1 MiB: far above any real flow line

NFDUMP_COLUMNS = [
    "ts",
    "te",
    "td",
    "sa",
    "da",
    "sp",
    "dp",
    "pr",
    "flg",
    "fwd",
    "stos",
    "ipkt",
    "ibyt",
    "opkt",
    "obyt",
    "in",
    "out",
    "sas",
    "das",
    "smk",
    "dmk",
    "dtos",
    "dir",
    "nh",
    "nhb",
    "svln",
    "dvln",
    "ismc",
    "odmc",
    "idmc",
    "osmc",
    "mpls1",
    "mpls2",
    "mpls3",
    "mpls4",
    "mpls5",
    "mpls6",
    "mpls7",
    "mpls8",
    "mpls9",
    "mpls10",
    "cl",
    "sl",
    "al",
    "ra",
    "eng",
    "exid",
    "tr",
]


@dataclass
class BadLine:
    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


@dataclass
class BadLines:
    """Collects malformed lines: counts per file, keeps the first examples, echoes some."""

    echo: TextIO | None = None
    echo_per_file: int = 20
    keep: int = 1000
    counts: dict[str, int] = field(default_factory=dict)
    examples: list[BadLine] = field(default_factory=list)

    def add(self, file: str, line: int, reason: str) -> None:
        n = self.counts.get(file, 0) + 1
        self.counts[file] = n
        bad = BadLine(file, line, reason)
        if len(self.examples) < self.keep:
            self.examples.append(bad)
        if self.echo is not None:
            if n <= self.echo_per_file:
                print(f"bad line: {bad}", file=self.echo)
            elif n == self.echo_per_file + 1:
                print(f"bad line: {file}: more bad lines, not shown (counted)", file=self.echo)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def open_binary(path: str) -> IO[bytes]:
    """Open a file for streaming, transparently gunzipping (``-`` is stdin)."""
    if path == "-":
        return sys.stdin.buffer
    fh: IO[bytes] = open(path, "rb")  # noqa: SIM115 - caller closes
    if fh.peek(2)[:2] == b"\x1f\x8b":  # type: ignore[attr-defined]
        return gzip.GzipFile(fileobj=fh)  # type: ignore[return-value]
    return fh


def iter_lines(fh: IO[bytes], max_len: int = MAX_LINE) -> Iterator[tuple[int, bytes | None]]:
    """Yield (1-based line number, line); ``None`` for a line longer than ``max_len``."""
    readline = fh.readline
    n = 0
    while True:
        line = readline(max_len)
        if not line:
            return
        n += 1
        if len(line) >= max_len and not line.endswith(b"\n"):
            while True:
                rest = readline(max_len)
                if not rest or rest.endswith(b"\n"):
                    break
            yield n, None
            continue
        yield n, line


def detect_format(first_line: bytes) -> str | None:
    """Guess the format from the first non-empty line; None when it is not recognised."""
    text = first_line.lstrip(b"\xef\xbb\xbf").strip()
    if text in (b"[", b"{") or text.startswith(b"[{"):
        return "nfdump-json"  # nfdump -o json: a pretty-printed array
    if text.startswith(b"{"):
        try:
            obj = orjson.loads(text)
        except orjson.JSONDecodeError:
            if b'"export_sysid"' in text:
                return "nfdump-json"  # -o json-log: objects end with a trailing comma
            return "flow-json"
        if isinstance(obj, dict) and "sampler_address" in obj:
            return "goflow2-json"
        if isinstance(obj, dict) and ("export_sysid" in obj or "ip4_router" in obj):
            return "nfdump-json"
        if isinstance(obj, dict) and ("exporter" in obj or "src_addr" in obj):
            return "flow-json"
        if isinstance(obj, dict) and (
            "event_type" in obj or "peer_ip_src" in obj or "ip_src" in obj or "writer_id" in obj
        ):
            return "pmacct-json"
        return "flow-json"
    if text.startswith(b"ts,te,"):
        return "nfdump-csv"
    upper = text.upper()
    if any(name in upper for name in (b"SRC_IP", b"PEER_SRC_IP", b"SRC_AS", b"IN_IFACE")) and (
        b"BYTES" in upper or b"PACKETS" in upper
    ):
        return "pmacct-csv"
    return None


def sniff_format(path: str) -> str | None:
    """Format of a file from its first non-empty line; "" for a file with none."""
    if path == "-":
        return None
    with open_binary(path) as fh:
        for _, line in iter_lines(fh, 65536):
            if line is not None and line.strip():
                return detect_format(line)
    return ""


# --------------------------------------------------------------------------- parsers
# A parser is called with each raw line and returns a flow dict, or None for a
# line that carries no flow (blank, header, nfdump summary, pmacct marker).


def _json_object(line: bytes) -> dict[str, Any] | None:
    """One JSON object per line; None for a blank line, RecordError for anything else."""
    if not line.strip():
        return None
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise RecordError(f"not valid JSON: {exc}") from None
    if type(obj) is not dict:
        raise RecordError(f"expected a JSON object, got {type(obj).__name__}")
    return obj


class FlowJsonParser:
    """Flow JSON lines as documented in docs/flow-json.md (attributed or not)."""

    def __call__(self, line: bytes) -> dict[str, Any] | None:
        return _json_object(line)


class NfdumpCsvParser:
    """``nfdump -o csv``: header line, data lines, then a ``Summary`` block to skip.

    nfdump prints ``ts``/``te`` as local time without a zone (read in
    ``input_timezone``); ``ra`` is the exporter; ``ibyt``/``ipkt`` are the
    counters (``obyt``/``opkt`` belong to the reverse direction of bidirectional
    NSEL flows and are ignored); ``sas``/``das`` are the exporter's own ASes.
    nfcapd normally renormalises sampled counters already, hence ``scaled``.
    """

    def __init__(self, scaled: bool = True) -> None:
        self.columns = NFDUMP_COLUMNS
        self.index = {name: i for i, name in enumerate(self.columns)}
        self.in_summary = False
        self.rate = 1 if scaled else 0

    def __call__(self, line: bytes) -> dict[str, Any] | None:
        text = line.decode("utf-8", "replace").strip()
        if not text:
            return None
        if text.startswith("ts,te,"):
            self.columns = text.split(",")
            self.index = {name: i for i, name in enumerate(self.columns)}
            missing = [c for c in ("te", "sa", "da", "ibyt", "ra") if c not in self.index]
            if missing:
                raise RecordError(f"nfdump csv header lacks {', '.join(missing)}")
            self.in_summary = False
            return None
        if text == "Summary" or text.startswith("Summary,"):
            self.in_summary = True
            return None
        if self.in_summary:
            return None
        fields = text.split(",")
        if len(fields) != len(self.columns):
            raise RecordError(
                f"expected {len(self.columns)} comma-separated fields, got {len(fields)}"
            )
        ix = self.index

        def get(name: str, default: str = "") -> str:
            i = ix.get(name)
            return fields[i].strip() if i is not None else default

        flow: dict[str, Any] = {
            "exporter": get("ra") or None,
            "src_addr": get("sa"),
            "dst_addr": get("da"),
            "in_if": _to_int(get("in", "0"), "in"),
            "out_if": _to_int(get("out", "0"), "out"),
            "bytes": _to_int(get("ibyt"), "ibyt"),
            "packets": _to_int(get("ipkt", "0"), "ipkt"),
            "sampling_rate": self.rate,
            "time": get("te") or get("ts") or None,
            # the exporter's own view, used when no attribution service is given
            "src_origin_as": _to_int(get("sas", "0"), "sas"),
            "dst_origin_as": _to_int(get("das", "0"), "das"),
            "src_origin_provenance": "nfdump",
            "dst_origin_provenance": "nfdump",
        }
        mac = get("ismc")
        if mac and mac != "00:00:00:00:00:00":
            flow["src_mac"] = mac
        nh = get("nh")
        if nh and nh not in ("0.0.0.0", "::"):
            flow["next_hop"] = nh
        return flow


# pmacct print plugin: CSV headers are upper case and named differently from the
# JSON keys; both are mapped onto the JSON names.
PMACCT_CSV_ALIASES = {
    "PEER_SRC_IP": "peer_ip_src",
    "PEER_DST_IP": "peer_ip_dst",
    "IN_IFACE": "iface_in",
    "OUT_IFACE": "iface_out",
    "SRC_IP": "ip_src",
    "DST_IP": "ip_dst",
    "SRC_HOST": "ip_src",
    "DST_HOST": "ip_dst",
    "SRC_AS": "as_src",
    "DST_AS": "as_dst",
    "PEER_SRC_AS": "peer_as_src",
    "PEER_DST_AS": "peer_as_dst",
    "SRC_MAC": "mac_src",
    "AS_PATH": "as_path",
    "SRC_AS_PATH": "src_as_path",
    "SAMPLING_RATE": "sampling_rate",
    "TIMESTAMP_START": "timestamp_start",
    "TIMESTAMP_END": "timestamp_end",
    "STAMP_INSERTED": "stamp_inserted",
    "STAMP_UPDATED": "stamp_updated",
    "PACKETS": "packets",
    "BYTES": "bytes",
    "FLOWS": "flows",
}


class PmacctJsonParser:
    """pmacct print plugin ``print_output: json`` (one object per line)."""

    def __call__(self, line: bytes) -> dict[str, Any] | None:
        obj = _json_object(line)
        if obj is None:
            return None
        if obj.get("event_type") in ("purge_init", "purge_close"):
            return None  # print_markers
        return pmacct_to_flow(obj)


class PmacctCsvParser:
    """pmacct print plugin ``print_output: csv``; the first line is the header."""

    def __init__(self) -> None:
        self.keys: list[str] | None = None
        self.sep = ","

    def __call__(self, line: bytes) -> dict[str, Any] | None:
        text = line.decode("utf-8", "replace").rstrip("\r\n")
        if not text.strip():
            return None
        if self.keys is None or "BYTES" in {f.strip().upper() for f in text.split(self.sep)}:
            self._header(text)  # the first line, or a repeated header of appended output
            return None
        fields = text.split(self.sep)
        if len(fields) != len(self.keys):
            raise RecordError(f"expected {len(self.keys)} fields, got {len(fields)}")
        return pmacct_to_flow(dict(zip(self.keys, (f.strip() for f in fields), strict=True)))

    def _header(self, text: str) -> None:
        for sep in (",", "\t", ";", "|"):
            if sep in text:
                self.sep = sep
                break
        names = [n.strip().upper() for n in text.split(self.sep)]
        self.keys = [PMACCT_CSV_ALIASES.get(n, n.lower()) for n in names]
        if "bytes" not in self.keys:
            raise RecordError("pmacct csv header has no BYTES column")


class Goflow2JsonParser:
    """goflow2's JSON lines (attribution.flowformats.goflow2_to_flow)."""

    def __call__(self, line: bytes) -> dict[str, Any] | None:
        obj = _json_object(line)
        return None if obj is None else goflow2_to_flow(obj)


class NfdumpJsonParser:
    """``nfdump -o json`` (pretty-printed array) or ``-o json-log`` (one per line).

    A multi-line object is parsed at its closing line, and reported there. A
    line that opens an object while one is still open (a stray ``{``, a
    cut-off object) ends the open one there (ObjectSplitter.feed_many): it is
    reported at its first line through :meth:`cut_off`, and the line is read
    on its own instead of being swallowed with every line after it.
    """

    def __init__(self) -> None:
        self.split = ObjectSplitter()
        self.n = 0
        self._cut: list[tuple[int, str]] = []

    def __call__(self, line: bytes) -> dict[str, Any] | None:
        self.n += 1
        done = self.split.feed_many(self.n, line)
        if not done:
            return None
        for start, text in done[:-1]:  # never JSON: no closing brace
            try:
                _json_object(text)
                reason = "object not closed before the next one"
            except RecordError as exc:
                reason = str(exc)
            self._cut.append((start, reason))
        obj = _json_object(done[-1][1])
        if obj is None or is_marker("nfdump", obj):
            return None
        return nfdump_to_flow(obj)

    def cut_off(self) -> list[tuple[int, str]]:
        """(line, reason) of the objects cut off since the last call."""
        out, self._cut = self._cut, []
        return out


def make_parser(fmt: str, nfdump_scaled: bool = True) -> Callable[[bytes], dict[str, Any] | None]:
    if fmt == "flow-json":
        return FlowJsonParser()
    if fmt == "nfdump-csv":
        return NfdumpCsvParser(scaled=nfdump_scaled)
    if fmt == "pmacct-json":
        return PmacctJsonParser()
    if fmt == "pmacct-csv":
        return PmacctCsvParser()
    if fmt == "goflow2-json":
        return Goflow2JsonParser()
    if fmt == "nfdump-json":
        return NfdumpJsonParser()
    raise ValueError(f"unknown input format {fmt!r} (known: {', '.join(FORMATS)})")
