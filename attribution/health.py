"""When the service says SERVING on gRPC health: the readiness rule.

A load balancer or a Kubernetes readiness probe should send flows only to a
service whose answers are worth having. The rule (README, "Metrics and logs"):

1. NOT_SERVING while ExaBGP is not up: the supervised process is not running
   (crashed, waiting to be restarted), or no feed relay is connected (ExaBGP
   starts its relay only once it has read its config and bound its port, so a
   crash loop such as "cannot bind" never counts as up, however long each run
   lasts; an external ExaBGP is up exactly while its relay is connected).
   Sessions are gone then and no route changes arrive.
2. After start, NOT_SERVING until every configured router has converged in
   every family (End-of-RIB, or inferred after ``[bgp] converge_quiet_time``
   quiet). ``[service] ready_timeout`` seconds after start, routers
   that have not converged yet (a router that is down, a session that never
   came up) stop holding it back. Once passed, this start-up gate stays
   open: a session lost later does not take the service out of rotation
   (its routes are kept stale or the fallback routers answer).
3. Otherwise SERVING.

"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from ribd.rib import Rib


class Readiness:
    """The rule above as a small state machine; ``check`` is called periodically."""

    def __init__(self, ready_timeout: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ready_timeout = ready_timeout
        self.clock = clock
        self.started = clock()
        self.gate_open = False
        self.released: tuple[str, ...] = ()  # routers let go by the timeout

    def check(
        self, rib: Rib, routers: Iterable[tuple[str, str]], exabgp_down: str = ""
    ) -> tuple[bool, str]:
        """(serving, why) for configured ``routers`` (name, neighbor).

        ``exabgp_down`` says why ExaBGP is not up ("" when it is).
        """
        if exabgp_down:
            return False, exabgp_down
        if self.gate_open:
            return True, "ready"
        waiting = []
        with rib.lock:
            for name, neighbor in routers:
                r = rib.routers.get(neighbor)
                if r is None or not all(fs.converged for fs in r.families.values()):
                    waiting.append(name)
        if not waiting:
            self.gate_open = True
            return True, "every configured router has converged"
        if self.clock() - self.started >= self.ready_timeout:
            self.gate_open = True
            self.released = tuple(waiting)
            return True, (
                f"ready_timeout ({self.ready_timeout:.0f} s) passed; not waiting any longer "
                f"for {', '.join(waiting)}"
            )
        return False, f"waiting for routers to converge: {', '.join(waiting)}"


__all__ = ["Readiness"]
