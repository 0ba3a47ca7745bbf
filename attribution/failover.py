"""What a lost replica means to a client: the codes retried elsewhere, the errors
raised, and the counters of what the balancing did.

Kept apart from :mod:`attribution.balancing` (the streams themselves) because
the commands and the enrich jobs read these without opening a stream.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import grpc

# Codes after which a batch is sent again elsewhere: the replica went away (killed,
# restarting, the connection reset), refused a stream because it was full, or cut
# a stream (idle watchdog, shutdown). Anything else (bad token, bad request, a
# bug on the server) would fail the same way on every replica: the run stops.
RETRYABLE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.INTERNAL,  # "Received RST_STREAM", a reset stream
        grpc.StatusCode.RESOURCE_EXHAUSTED,  # [api] max_streams reached on that replica
        grpc.StatusCode.CANCELLED,  # cancelled by the server (shutdown)
        grpc.StatusCode.DEADLINE_EXCEEDED,  # the server's stream watchdog; we set no deadline
        grpc.StatusCode.ABORTED,
    }
)


class BalancingError(RuntimeError):
    """The batches cannot all be answered: the message says which and why."""


class StreamError(grpc.RpcError):
    """How a stream ended (its status code and details), without the call.

    grpc raises the call object itself (a ``_Rendezvous``) as the error, and its
    traceback holds the frames that hold the call: kept or raised further, it
    lives in a reference cycle until some garbage collection, possibly the
    interpreter's last one, where its ``__del__`` waits for a lock a frozen
    daemon thread may hold (enrich hung at exit that way). This copy holds
    only what callers read: ``code()`` and ``details()``.
    """

    def __init__(self, code: grpc.StatusCode | None, details: str) -> None:
        super().__init__(f"{code.name if code is not None else 'UNKNOWN'}: {details}")
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode | None:
        return self._code

    def details(self) -> str:
        return self._details

    def trailing_metadata(self) -> tuple:
        return ()

    @classmethod
    def of(cls, exc: grpc.RpcError) -> StreamError:
        code = exc.code() if callable(getattr(exc, "code", None)) else None
        details = exc.details() if callable(getattr(exc, "details", None)) else str(exc)
        return cls(code, details or "")


@dataclass
class FailoverStats:
    """What the balancing did; printed by the commands, returned to callers."""

    batches: int = 0  # taken from the source
    answered: int = 0  # yielded, exactly once each
    streams_opened: int = 0
    streams_failed: int = 0  # streams lost mid-way (a replica died, a reset)
    batches_retried: int = 0  # sends of a batch again after its stream was lost
    duplicates_dropped: int = 0  # answers for a batch_id already answered
    errors: dict[str, int] = field(default_factory=dict)  # status code name -> streams
    last_error: str = ""
    recovery_seconds: list[float] = field(default_factory=list)  # failure -> next answer
    _failed_at: float | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "batches": self.batches,
            "answered": self.answered,
            "streams_opened": self.streams_opened,
            "streams_failed": self.streams_failed,
            "batches_retried": self.batches_retried,
            "duplicates_dropped": self.duplicates_dropped,
            "errors": dict(self.errors),
            "last_error": self.last_error,
            "recovery_seconds": [round(s, 3) for s in self.recovery_seconds],
        }

    def summary(self) -> str:
        text = (
            f"{self.answered} batches answered, {self.streams_failed} streams lost, "
            f"{self.batches_retried} batches sent again"
        )
        if self.errors:
            text += " (" + ", ".join(f"{k} {v}" for k, v in sorted(self.errors.items())) + ")"
        return text
