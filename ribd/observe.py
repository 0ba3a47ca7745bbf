"""What the RIB has to say to an operator: session and table events, as log lines.

The RIB (``ribd.rib``) records a small note for each session up or down,
End-of-RIB (or convergence inferred from a quiet peer) and stale routes given
up, in ``Rib.notes``. It does so under its lock, where no I/O belongs; the
service drains the notes from another thread and logs them here. Each line
says what happened in words (with BGP NOTIFICATION codes decoded, RFC 4271,
4486, 6608, 7313, 8538, 9234, 9384) and carries the same facts as structured
fields for JSON logs.
"""

from __future__ import annotations

import logging
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("ribd.sessions")

# (code, subcode) names; subcode 0 is "unspecific".
NOTIFICATION_CODES: dict[int, str] = {
    1: "Message Header Error",
    2: "OPEN Message Error",
    3: "UPDATE Message Error",
    4: "Hold Timer Expired",
    5: "Finite State Machine Error",
    6: "Cease",
    7: "ROUTE-REFRESH Message Error",
}
NOTIFICATION_SUBCODES: dict[tuple[int, int], str] = {
    (1, 1): "Connection Not Synchronized",
    (1, 2): "Bad Message Length",
    (1, 3): "Bad Message Type",
    (2, 1): "Unsupported Version Number",
    (2, 2): "Bad Peer AS",
    (2, 3): "Bad BGP Identifier",
    (2, 4): "Unsupported Optional Parameter",
    (2, 6): "Unacceptable Hold Time",
    (2, 7): "Unsupported Capability",
    (2, 11): "Role Mismatch",
    (3, 1): "Malformed Attribute List",
    (3, 2): "Unrecognized Well-known Attribute",
    (3, 3): "Missing Well-known Attribute",
    (3, 4): "Attribute Flags Error",
    (3, 5): "Attribute Length Error",
    (3, 6): "Invalid ORIGIN Attribute",
    (3, 8): "Invalid NEXT_HOP Attribute",
    (3, 9): "Optional Attribute Error",
    (3, 10): "Invalid Network Field",
    (3, 11): "Malformed AS_PATH",
    (5, 1): "Receive Unexpected Message in OpenSent State",
    (5, 2): "Receive Unexpected Message in OpenConfirm State",
    (5, 3): "Receive Unexpected Message in Established State",
    (6, 1): "Maximum Number of Prefixes Reached",
    (6, 2): "Administrative Shutdown",
    (6, 3): "Peer De-configured",
    (6, 4): "Administrative Reset",
    (6, 5): "Connection Rejected",
    (6, 6): "Other Configuration Change",
    (6, 7): "Connection Collision Resolution",
    (6, 8): "Out of Resources",
    (6, 9): "Hard Reset",
    (6, 10): "BFD Down",
    (7, 1): "Invalid Message Length",
}

# ExaBGP 5's down reasons for NOTIFICATIONs: "notification sent (4,0)",
# "notification received (6,2)" (exabgp/reactor/peer.py).
_NOTIFICATION_REASON = re.compile(r"notification (sent|received) \((\d{1,3}),(\d{1,3})\)")


def notification_name(code: int, subcode: int) -> str:
    """'Cease / Administrative Shutdown' for (6, 2); numbers for codes no RFC names."""
    name = NOTIFICATION_CODES.get(code, f"code {code}")
    if subcode == 0:
        return name
    return f"{name} / {NOTIFICATION_SUBCODES.get((code, subcode), f'subcode {subcode}')}"


def describe_reason(reason: str) -> str:
    """ExaBGP's down reason, with a NOTIFICATION's code and subcode named."""
    if not reason:
        return "no reason given"
    m = _NOTIFICATION_REASON.search(reason)
    if m is None:
        return reason
    direction = "sent to" if m.group(1) == "sent" else "received from"
    name = notification_name(int(m.group(2)), int(m.group(3)))
    return f"NOTIFICATION {direction} the peer: {name} ({m.group(2)}/{m.group(3)})"


# -- notes (recorded by the RIB under its lock; no I/O there) ------------------


@dataclass(frozen=True, slots=True)
class SessionUp:
    neighbor: str
    name: str
    peer_as: int


@dataclass(frozen=True, slots=True)
class SessionDown:
    neighbor: str
    name: str
    reason: str
    # What happens to its routes: "purged" or "kept stale for N s".
    routes: str


@dataclass(frozen=True, slots=True)
class TableLoaded:
    """End-of-RIB, or convergence inferred after ``quiet`` seconds without UPDATEs."""

    neighbor: str
    name: str
    family: str
    prefixes: int
    paths: int
    seconds: float  # since the session came up
    inferred: bool = False
    quiet: float = 0.0
    # After a feed gap: "route refresh" (the router re-sent its table, BoRR ..
    # EoRR) or "nothing to re-read" (no stale routes were waiting); "" otherwise.
    how: str = ""


@dataclass(frozen=True, slots=True)
class StaleExpired:
    neighbor: str
    name: str
    prefixes: int


Note = SessionUp | SessionDown | TableLoaded | StaleExpired
MAX_NOTES = 10_000  # a flood of flaps beyond this between two drains loses the oldest notes


def new_notes() -> deque[Note]:
    return deque(maxlen=MAX_NOTES)


def log_note(note: Note, logger: logging.Logger = log) -> None:
    """One log line for ``note``, with its facts as structured fields."""
    who = f"router {note.name} ({note.neighbor})" if note.name != note.neighbor else note.neighbor
    fields: dict[str, object] = {"router": note.name, "neighbor": note.neighbor}
    if type(note) is SessionUp:
        fields.update(event="session_up", peer_as=note.peer_as)
        logger.info("%s: BGP session up (AS %d)", who, note.peer_as, extra=fields)
    elif type(note) is SessionDown:
        described = describe_reason(note.reason)
        fields.update(event="session_down", reason=described, routes=note.routes)
        logger.warning(
            "%s: BGP session down: %s; routes %s", who, described, note.routes, extra=fields
        )
    elif type(note) is TableLoaded:
        fields.update(
            event="table_loaded",
            family=note.family,
            prefixes=note.prefixes,
            paths=note.paths,
            seconds=round(note.seconds, 3),
            inferred=note.inferred,
        )
        if note.how:
            fields["event"] = "table_reread"
            fields["how"] = note.how
            logger.info(
                "%s %s: table re-read after a feed gap (%s): %d prefixes in %.1f s",
                who,
                note.family,
                note.how,
                note.prefixes,
                note.seconds,
                extra=fields,
            )
        elif note.inferred:
            logger.info(
                "%s %s: no End-of-RIB, but quiet for %.0f s: converged (inferred); "
                "table loaded: %d prefixes in %.1f s",
                who,
                note.family,
                note.quiet,
                note.prefixes,
                note.seconds,
                extra=fields,
            )
        else:
            logger.info(
                "%s %s: End-of-RIB; table loaded: %d prefixes in %.1f s",
                who,
                note.family,
                note.prefixes,
                note.seconds,
                extra=fields,
            )
    elif type(note) is StaleExpired:
        fields.update(event="stale_expired", prefixes=note.prefixes)
        logger.warning(
            "%s: stale hold time expired: %d stale prefixes dropped",
            who,
            note.prefixes,
            extra=fields,
        )


def drain(
    notes: deque[Note],
    logger: logging.Logger = log,
    count: Callable[[Note], None] | None = None,
) -> int:
    """Log and remove every note recorded so far; returns how many.

    ``count`` also sees each note (the service's session counters).
    ``deque.popleft`` is atomic, so this needs no lock against the RIB.
    """
    n = 0
    while True:
        try:
            note = notes.popleft()
        except IndexError:
            return n
        try:
            log_note(note, logger)
            if count is not None:
                count(note)
        except Exception:  # a broken handler must not stop the next notes
            logger.exception("cannot log %r", note)
        n += 1


__all__ = [
    "SessionDown",
    "SessionUp",
    "StaleExpired",
    "TableLoaded",
    "describe_reason",
    "drain",
    "log_note",
    "new_notes",
    "notification_name",
]
