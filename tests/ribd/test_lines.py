"""LineSplitter: whole lines out of arbitrary chunks, no line held beyond its limit."""

from __future__ import annotations

import random

from ribd.lines import HEAD_BYTES, LineSplitter


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
