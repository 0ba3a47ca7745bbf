"""Text formatting for the client commands' human output (tables, times, states).

Pure functions of the data, so the wording of ``attribution routers`` (and
the demo's table) can be read and tested without a service.
"""

from __future__ import annotations

from attribution.v1 import attribution_pb2 as pb


def convergence(r: pb.RouterState) -> str:
    """Why a router counts as converged or not, in words.

    A family converges at End-of-RIB, or (inferred) when a peer that never
    sends one has been quiet for ``[bgp] converge_quiet_time``.
    """
    if r.session != "up":
        state = f"session {r.session or 'idle'}"
        if r.last_reason:
            state += f" ({r.last_reason})"
        return f"{state}; routes served stale" if r.stale else state
    if r.families and all(f.converged for f in r.families):
        inferred = any(f.inferred for f in r.families)
        return "converged (inferred: no End-of-RIB, quiet peer)" if inferred else "converged"
    waiting = [f.family for f in r.families if not f.converged]
    return f"waiting for End-of-RIB ({', '.join(waiting)})" if waiting else "waiting for End-of-RIB"


def since(t: float, now: float) -> str:
    if not t:
        return "never"
    ago = max(0.0, now - t)
    if ago < 120:
        return f"{ago:.0f} s ago"
    if ago < 7200:
        return f"{ago / 60:.0f} min ago"
    return f"{ago / 3600:.1f} h ago"


def format_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=False)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
    return "\n".join(line.rstrip() for line in lines)
