"""The routers' lines ``bench.late_router`` feeds: the real table with each
router's own next hops, or the varied real table (``bgpsend.realistic_tables``),
all held (``raw_tables``, cached as one pickle) or made one router at a time
(``RouterByRouter``)."""

from __future__ import annotations

import os
from pathlib import Path


def _split_raw(lines: list[bytes], peers: list[str]) -> list[list[bytes]]:
    """Each router's lines of ``raw_lines``: its session lines, UPDATEs, End-of-RIB."""
    per: list[list[bytes]] = [[] for _ in peers]
    tags = [f'"peer":"{p}"'.encode() for p in peers]
    for line in lines:
        for k, tag in enumerate(tags):
            if tag in line:
                per[k].append(line)
                break
        else:
            raise SystemExit(f"a line of no router: {line[:120]!r}")
    return per


def router_lines(k: int, msgs: list[bytes]) -> list[bytes]:
    """Router ``k``'s lines for its UPDATEs ``msgs`` (BGP messages, header
    included): its session lines, each UPDATE as a ``packets`` line, End-of-RIB."""
    from bench.bgpsend import router_address
    from bench.fuzz_raw import packets_line, session_lines

    peer = router_address(k)
    lines = session_lines(peer)
    lines += [packets_line(msg[19:], peer=peer, time_=1.0) for msg in msgs]
    lines.append(packets_line(b"\0\0\0\0", peer=peer))  # End-of-RIB
    return lines


def varied_lines(routers: int) -> list[list[bytes]]:
    """Each router's lines of the varied real table (``bgpsend.realistic_tables``,
    the UPDATEs ``bench.vs_pmacct --source real-varied`` sends): its session
    lines, its UPDATEs as ``packets`` lines, End-of-RIB."""
    import tempfile

    from bench import realistic
    from bench.bgpsend import realistic_tables

    model = realistic.cached_model("real", Path(tempfile.gettempdir()))
    tables = realistic_tables(model, routers)
    return [router_lines(k, msgs) for k, msgs in enumerate(tables.per_router, start=1)]


class RouterByRouter:
    """Each router's lines of the varied real table, made when asked for and
    not held (``--per-router``): ``varied_lines`` holds every router's lines at
    once, and 64 routers of them took 24 GB until the OOM killer ended the run
    (stop 43). Each router's UPDATEs (bytes, as ``bgpsend.realistic_tables``
    derives them) are pickled in ``cache`` (a directory) the first time."""

    def __init__(self, routers: int, cache: str | None) -> None:
        import tempfile

        self.routers = routers
        self.cache = Path(cache or tempfile.mkdtemp(prefix="late-router-"))
        self.cache.mkdir(parents=True, exist_ok=True)
        self._model = None

    def __len__(self) -> int:
        return self.routers

    def _updates(self, k: int) -> list[bytes]:
        import pickle

        path = self.cache / f"router-{k}.pickle"
        if path.exists():
            return pickle.loads(path.read_bytes())
        import tempfile

        from bench import realistic
        from bench.bgpsend import json_updates

        if self._model is None:
            self._model = realistic.cached_model("real", Path(tempfile.gettempdir()))
        msgs, _ = json_updates(realistic.router_lines(self._model, k)[0])
        path.write_bytes(pickle.dumps(msgs, protocol=pickle.HIGHEST_PROTOCOL))
        return msgs

    def __getitem__(self, index: int) -> list[bytes]:
        """Router ``index + 1``'s lines (``router_lines``)."""
        if not 0 <= index < self.routers:
            raise IndexError(index)
        return router_lines(index + 1, self._updates(index + 1))


def raw_tables(routers: int, cache: str | None, source: str = "plain") -> list[list[bytes]]:
    """Each router's lines (``cache``: a pickle of them, written at the first run;
    it holds one source's tables, the caller names the file)."""
    import pickle

    if cache and os.path.exists(cache):
        per = pickle.loads(Path(cache).read_bytes())
        if len(per) >= routers:
            return per[:routers]
    if source == "varied":
        per = varied_lines(routers)
    else:
        from bench.ingest import raw_lines

        lines, peers = raw_lines(routers)
        per = _split_raw(lines, peers)
    if cache:
        Path(cache).write_bytes(pickle.dumps(per))
    return per
