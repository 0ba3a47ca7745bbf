"""LineSplitter: whole lines out of arbitrary chunks, no line held beyond its limit."""

from __future__ import annotations

import random

import pytest

from ribd.lines import HEAD_BYTES, LineSplitter, py_split_lines


def run(splitter: LineSplitter, chunks: list[bytes]) -> tuple[list[bytes], list[tuple[bytes, int]]]:
    lines, too_long = [], []
    for chunk in chunks:
        got, long_ = splitter.split(chunk)
        lines += got
        too_long += long_
    return lines, too_long


def test_lines_come_out_whole_however_the_stream_is_cut() -> None:
    stream = b"".join(b"line %d %s\n" % (i, b"x" * (i % 50)) for i in range(500)) + b"\n\n"
    want = [x for x in stream.split(b"\n") if x]
    rng = random.Random(1)
    for _ in range(50):
        cuts = sorted(rng.sample(range(1, len(stream)), rng.randint(1, 40)))
        chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
        splitter = LineSplitter(100)
        assert run(splitter, chunks) == (want, [])
        assert splitter.pending == 0


def test_a_line_over_the_limit_is_dropped_as_it_comes_and_reported_once() -> None:
    splitter = LineSplitter(1000)
    chunks = [b"a\nbbb", *[b"b" * 700] * 30, b"b\nc\n", b"d" * 1001 + b"\ne\n", b"f" * 1000 + b"\n"]
    lines, too_long = run(splitter, chunks)
    assert lines == [b"a", b"c", b"e", b"f" * 1000]  # exactly the limit is fine
    assert too_long == [(b"b" * HEAD_BYTES, 3 + 700 * 30 + 1), (b"d" * HEAD_BYTES, 1001)]
    assert splitter.max_held <= 1000 + 700


def test_an_endless_line_never_holds_more_than_the_limit() -> None:
    splitter = LineSplitter(64 * 1024)
    for _ in range(1000):  # 64 MiB, no newline
        assert splitter.split(b"z" * 65536) == ([], [])
    assert splitter.max_held <= 64 * 1024
    assert splitter.pending == 1000 * 65536
    assert splitter.split(b"\nnext\n") == ([b"next"], [(b"z" * HEAD_BYTES, 1000 * 65536)])
    assert splitter.pending == 0


def random_stream(rng: random.Random) -> tuple[int, bytes, list[bytes]]:
    """A line limit, a stream of short, empty, exactly-the-limit and over-long
    lines (its end a newline, two, none or a partial line), and the stream cut
    at random into reads."""
    limit = rng.choice((1, 5, 64, 1000))
    parts = []
    for _ in range(rng.randint(0, 60)):
        size = rng.choice((0, 1, limit - 1, limit, limit + 1, rng.randint(0, 3 * limit)))
        parts.append(bytes(rng.choice(b"ab\r\t {}") for _ in range(max(0, size))))
    stream = b"\n".join(parts) + rng.choice((b"", b"\n", b"\n\n", b"tail"))
    cuts = sorted(
        rng.sample(range(1, len(stream)), max(0, min(len(stream) - 1, rng.randint(0, 20))))
    )
    return (
        limit,
        stream,
        [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)],
    )


def test_the_compiled_split_and_count_are_the_python_ones() -> None:
    """``ribd._lines`` (memchr) against ``py_split_lines`` and ``bytes.count``:
    random streams of short, empty, exactly-the-limit and over-long lines, cut at
    random, through two splitters, one compiled and one not."""
    _lines = pytest.importorskip("ribd._lines", reason="ribd._lines is not built here")
    rng = random.Random(20261202)
    for _ in range(300):
        limit, stream, chunks = random_stream(rng)
        assert _lines.split_lines(stream, limit, HEAD_BYTES) == py_split_lines(
            stream, limit, HEAD_BYTES
        )
        assert _lines.count_lines(stream) == stream.count(b"\n")
        compiled, reference = LineSplitter(limit), LineSplitter(limit, compiled=False)
        # as the feed reads: every chunk into one buffer, overwritten by the next
        buffer = bytearray(max(map(len, chunks), default=0) + 8)
        view, kept = memoryview(buffer), []
        for chunk in chunks:
            buffer[: len(chunk)] = chunk
            got, want = compiled.split(view[: len(chunk)]), reference.split(chunk)
            assert got == want
            assert (compiled.pending, compiled.max_held) == (reference.pending, reference.max_held)
            kept.append((got, want))
            buffer[:] = b"\xff" * len(buffer)
        # nothing returned (nor held: the splits after) saw the buffer change
        assert all(got == want for got, want in kept)


def region_lines(buf: bytes | bytearray, start: int, end: int, limit: int) -> tuple[list, list]:
    """What ``ribd._feedloop.buffer_in`` takes from a region: its lines not empty
    and not over ``limit``, and (head, size) of the longer ones."""
    lines, too_long = [], []
    for line in bytes(buf[start:end]).split(b"\n")[:-1]:
        if len(line) > limit:
            too_long.append((line[:HEAD_BYTES], len(line)))
        elif line:
            lines.append(line)
    return lines, too_long


def test_a_read_split_in_place_gives_what_the_copying_split_gives() -> None:
    """``split_region`` (the read's whole lines left where they lie, for the
    compiled feed loop) against ``split``: random streams of short, empty,
    exactly-the-limit and over-long lines, cut at random, each cut read into one
    buffer that the next read overwrites. The same lines and over-long reports,
    in the same order, the same bytes held; the region always ends at a newline
    and starts after any line begun in an earlier read."""
    rng = random.Random(20261205)
    for _ in range(400):
        limit, _stream, chunks = random_stream(rng)
        in_place, copying = LineSplitter(limit), LineSplitter(limit)
        buffer = bytearray(max(map(len, chunks), default=0) + 8)
        got_all, want_all = [], []
        for chunk in chunks:
            buffer[: len(chunk)] = chunk
            lines, too_long, start, end = in_place.split_region(buffer, len(chunk))
            assert 0 <= start <= end <= len(chunk)
            assert end == start or buffer[end - 1] == ord("\n")
            more, longer = region_lines(buffer, start, end, limit)
            got_all.append((lines + more, too_long + longer))
            want_all.append(copying.split(chunk))
            assert (in_place.pending, in_place.max_held) == (copying.pending, copying.max_held)
            buffer[:] = b"\xff" * len(buffer)
        assert got_all == want_all


def test_a_line_over_the_limit_across_reads_is_reported_once_by_the_in_place_split() -> None:
    splitter = LineSplitter(1000)
    reads = [b"a\nbbb", *[b"b" * 700] * 30, b"b\nc\n", b"d" * 1001 + b"\ne\n", b"f" * 1000 + b"\n"]
    lines, too_long = [], []
    for data in reads:
        got, longer, start, end = splitter.split_region(data, len(data))
        more, longest = region_lines(data, start, end, 1000)
        lines += got + more
        too_long += longer + longest
    assert lines == [b"a", b"c", b"e", b"f" * 1000]
    assert too_long == [(b"b" * HEAD_BYTES, 3 + 700 * 30 + 1), (b"d" * HEAD_BYTES, 1001)]
    assert splitter.max_held <= 1000 + 700 and splitter.pending == 0
