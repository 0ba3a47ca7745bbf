"""What the feed counts and logs about the lines it reads.

Bad lines are counted by a short, stable category (the metrics' label) and
logged truncated, the first ``BAD_LINES_LOGGED_IN_FULL`` in full and then one
in every 1000, so a hostile or broken feed cannot flood the log. Kept apart
from the connection code (``ribd.feed``) so the categories and the rate limit
are one small, testable place.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from ribd.events import RoutesWithdrawn

log = logging.getLogger("ribd.feed")

LOGGED_LINE_CHARS = 200
BAD_LINES_LOGGED_IN_FULL = 100  # then one in every 1000


def bad_line_category(reason: str) -> str:
    """A short, stable name for a FeedError reason, for counters."""
    if reason.startswith("not JSON") or reason == "not a JSON object":
        return "json"
    if reason.startswith("unknown message type"):
        return "unknown_type"
    if "prefix" in reason or "NLRI" in reason or "path-information" in reason:
        return "prefix"
    if reason.startswith("line of"):
        return "too_long"
    if reason.startswith("nested"):
        return "too_deep"
    if reason.startswith("bad value"):
        return "value"
    if reason.startswith("unknown neighbor"):
        return "unknown_neighbor"
    if reason.startswith("parser failed"):
        return "internal"
    if reason.startswith(("malformed", "no neighbor", "update ", "withdraw ", "announce ")):
        return "malformed"
    return "other"


@dataclass(slots=True)
class FeedCounters:
    lines: int = 0
    updates: int = 0
    prefixes_announced: int = 0
    prefixes_withdrawn: int = 0
    treated_as_withdraw: int = 0
    end_of_rib: int = 0
    bad_lines: int = 0
    bad_by_category: dict[str, int] = field(default_factory=dict)
    reads: int = 0  # socket reads that returned bytes (a load's wake-ups: ribd.feed)

    def add(self, other: FeedCounters) -> None:
        self.lines += other.lines
        self.updates += other.updates
        self.prefixes_announced += other.prefixes_announced
        self.prefixes_withdrawn += other.prefixes_withdrawn
        self.treated_as_withdraw += other.treated_as_withdraw
        self.end_of_rib += other.end_of_rib
        self.bad_lines += other.bad_lines
        self.reads += other.reads
        for k, v in other.bad_by_category.items():
            self.bad_by_category[k] = self.bad_by_category.get(k, 0) + v


class BadLineLog:
    """Counts a bad line into a connection's counters and logs it, rate-limited
    (one budget shared by bad lines and treat-as-withdraw notices)."""

    def __init__(self) -> None:
        self.logged = 0

    def bad_line(self, c: FeedCounters, line: bytes, reason: str) -> None:
        category = bad_line_category(reason)
        c.bad_lines += 1
        c.bad_by_category[category] = c.bad_by_category.get(category, 0) + 1
        self.logged += 1
        if self.logged <= BAD_LINES_LOGGED_IN_FULL or self.logged % 1000 == 0:
            text = line[:LOGGED_LINE_CHARS].decode("utf-8", "replace")
            more = f"... ({len(line)} bytes)" if len(line) > LOGGED_LINE_CHARS else ""
            log.warning("bad feed line (%s): %s: %s%s", category, reason, text, more)

    def treat_as_withdraw(self, ev: RoutesWithdrawn) -> None:
        self.logged += 1
        if self.logged <= BAD_LINES_LOGGED_IN_FULL or self.logged % 1000 == 0:
            log.warning(
                "treat-as-withdraw: %d prefix(es) from %s (%s), first %s",
                len(ev.prefixes),
                ev.neighbor,
                ev.reason[:LOGGED_LINE_CHARS],
                ev.prefixes[0],
            )
