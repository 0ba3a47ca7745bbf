"""Session, stale-route and re-read (resync) state of the RIB's routers. No I/O.

Split out of ``ribd.rib``: which generation of a router's routes is current,
which is kept stale behind it and until when, and when a table counts as
complete again (End-of-RIB, EoRR, an inferred quiet window, or a hold that
expired). ``SessionHandling`` is mixed into ``ribd.rib.Rib`` and uses its
state (``tables``, ``routers``, ``clock``, ``notes``, the hold times).
"""

from __future__ import annotations

from ribd.entries import drop_dead_rows, slots_moved, value_at
from ribd.events import EndOfRib, RouteRefreshMarker, SessionState
from ribd.observe import SessionDown, SessionUp, TableLoaded
from ribd.table import (
    END_OF_RIB_WAIT_QUIET_TIMES,
    GROWING_PREFIXES_PER_SECOND,
    QUIET_PREFIXES_PER_SECOND,
    REFRESH_ASKED,
    REFRESH_NONE,
    REFRESH_RUNNING,
    FamilyState,
    RouterRib,
)


class SessionHandling:
    """Session and stale-state transitions of ``ribd.rib.Rib`` (a mixin: see above)."""

    def _end_of_rib(self, ev: EndOfRib) -> None:
        r = self.router(ev.neighbor)
        r.families[ev.family].sends_end_of_rib = True
        if r.families[ev.family].refresh != REFRESH_NONE:
            # Lines were lost since the session started: what was not sent
            # again since then is not known to be gone; the re-read decides.
            return
        self._converge(r, ev.family, inferred=False)

    def _converge(self, r: RouterRib, family: str, inferred: bool) -> None:
        """The router's table of ``family`` is complete: retire the stale generation."""
        fs = r.families[family]
        if not fs.converged:
            # For the log: a re-read after a feed gap counts from when it was asked.
            reread = fs.refresh != REFRESH_NONE
            since = r.refresh_asked if reread and r.refresh_asked else r.session_since
            self.notes.append(
                TableLoaded(
                    r.neighbor,
                    r.name,
                    family,
                    fs.prefixes,
                    fs.paths,
                    max(0.0, self.clock() - since) if since else 0.0,
                    inferred,
                    self.converge_quiet_time if inferred else 0.0,
                    how=(
                        "route refresh"
                        if fs.refresh == REFRESH_RUNNING
                        else "nothing to re-read"
                        if reread
                        else ""
                    ),
                )
            )
        fs.converged = True
        fs.inferred = inferred
        fs.refresh = REFRESH_NONE
        if fs.stale_slot is not None:
            self.tables[family].release_slot(fs.stale_slot)
            fs.stale_slot = None
            fs.stale_prefixes = 0
        if all(f.stale_slot is None for f in r.families.values()):
            r.stale_until = 0.0
        if all(f.refresh == REFRESH_NONE for f in r.families.values()):
            r.refresh_asked = 0.0

    def _rotate(self, r: RouterRib, family: str, fs: FamilyState) -> None:
        """The family's current routes become its stale generation.

        They stay readable (stale) behind the fresh slot; what the router
        sends from now on shadows them, and the next End-of-RIB or EoRR
        drops those it did not send again. A stale generation already there
        (a re-read or a session start that never finished) is dropped: the
        routes it held alone are missing until the router sends them again.
        """
        if fs.prefixes == 0:
            return
        table = self.tables[family]
        if fs.stale_slot is not None:
            table.release_slot(fs.stale_slot)
        fs.stale_slot = fs.slot
        fs.stale_prefixes = fs.prefixes
        fs.slot = table.alloc_slot()
        fs.prefixes = fs.paths = 0
        if not r.stale_until:
            # Expire the stale copies if the re-read never finishes.
            r.stale_until = self.clock() + max(self.hold_time_for(r.neighbor), 300.0)

    # -- exact re-reads after lost feed lines ----------------------------------

    def mark_gap(self, neighbors: frozenset[str] | None = None, *, asked: bool = True) -> list[str]:
        """Feed lines were lost: announcements *and* withdrawals may be missing.

        Every router's routes become stale and each family awaits a re-read
        (ROUTE-REFRESH answered with BoRR ... EoRR, RFC 7313, or a session
        reset): routes not sent again by its end are swept, so the RIB ends
        up equal to the router's table. Routers we think down are marked too:
        should one in fact be up (its "up" line was lost), its BoRR says so
        and its End-of-RIB alone cannot be trusted; one really down keeps its
        routes stale until its hold expires or its session comes back.
        ``neighbors``: only these routers (the lines of one ExaBGP worker's
        relay were lost); None: every router. Returns the routers marked.

        A family already awaiting or in a re-read (an earlier gap) keeps what
        it holds: its routes since that gap join its stale generation
        (``_fold_into_stale``) rather than replacing it, so a router still
        waiting for its turn (re-reads go in waves, ``ribd.reread_waves``)
        keeps answering, stale, from its whole table. ``asked``: False when
        the re-read will be asked later (``note_refresh_asked`` then starts
        the wait for BoRR); until then the router is not overdue.
        """
        now = self.clock()
        marked = []
        folds: dict[str, dict[int, int]] = {}
        for r in self.routers.values():
            if neighbors is not None and r.neighbor not in neighbors:
                continue
            for family, fs in r.families.items():
                if fs.refresh != REFRESH_NONE and fs.stale_slot is not None:
                    if fs.prefixes:
                        folds.setdefault(family, {})[fs.slot] = fs.stale_slot
                else:
                    self._rotate(r, family, fs)
                fs.converged = False
                fs.refresh = REFRESH_ASKED
            r.refresh_asked = now if asked else 0.0
            marked.append(r.neighbor)
        for family, moves in folds.items():
            moved = self._fold_into_stale(family, moves)
            for r in self.routers.values():
                fs = r.families.get(family)
                if fs is not None and fs.slot in moves:
                    fs.stale_prefixes += moved.get(fs.slot, 0)
                    fs.prefixes = fs.paths = 0
        return marked

    def _fold_into_stale(self, family: str, moves: dict[int, int]) -> dict[int, int]:
        """Move what each slot of ``moves`` holds into its stale slot (``moves``:
        slot -> stale slot of the same router); returns prefixes moved per slot.

        One pass over the family's prefixes (the delta merged first, as the
        sweep does): a second gap before a re-read finished is rare, and the
        routes the router sent since the first gap are then as uncertain as
        the rest of its table, so they become stale with it; the re-read's
        EoRR sweeps those it does not send again.
        """
        table = self.tables[family]
        store = table.store
        if store.has_delta():
            store.merge()
            table.merged()
        moved = dict.fromkeys(moves, 0)
        values, keys = store.values, store.keys
        intern, log_change = table.intern, table.changes.append
        rows: dict = {}  # rows move once for all their prefixes (ribd.entries.slots_moved)
        for i in range(len(values)):
            entry = values[i]
            if entry is None:
                continue
            hit = False
            for slot in moves:
                if value_at(entry, slot) is not None:
                    moved[slot] += 1
                    hit = True
            if hit:
                store.set_at(i, slots_moved(entry, moves, rows, intern))
                log_change(store.key_of(store.text(keys[i])))
        entry = None
        drop_dead_rows(rows, table._entries)
        table.note_slots(*moves, *moves.values())
        table.forget_changes_if_behind()
        return moved

    def reread_status(self, neighbor: str) -> tuple[bool, bool, bool, tuple] | None:
        """For the re-read waves (``ribd.reread_waves``): whether ``neighbor``
        still needs its table re-read (a family awaiting or in a re-read);
        whether it is settled (every family converged, or still awaiting a
        re-read with nothing stale to re-send: an empty family gets no
        BoRR/EoRR and waits for ``overdue_refreshes``, but sends no burst
        either); whether its session is up; and a marker that changes
        whenever it makes progress (routes written, a re-read begun or ended,
        its session changing). None: an unknown router."""
        r = self.routers.get(neighbor)
        if r is None:
            return None
        families = r.families.values()
        pending = any(fs.refresh != REFRESH_NONE for fs in families)
        settled = all(
            fs.converged or (fs.refresh == REFRESH_ASKED and not fs.stale_prefixes)
            for fs in families
        )
        marker = (
            r.session,
            r.session_since,
            tuple((fs.writes, fs.refresh, fs.converged) for fs in families),
        )
        return pending, settled, r.session == "up", marker

    def note_refresh_asked(self, neighbors: frozenset[str] | None = None) -> None:
        """The re-read was just asked for (of ``neighbors``' worker; None: every
        router): the wait for BoRR starts now."""
        now = self.clock()
        for r in self.routers.values():
            if neighbors is not None and r.neighbor not in neighbors:
                continue
            if any(fs.refresh == REFRESH_ASKED for fs in r.families.values()):
                r.refresh_asked = now

    def _refresh_marker(self, ev: RouteRefreshMarker) -> None:
        r = self.router(ev.neighbor)
        fs = r.families[ev.family]
        if ev.begin:
            if r.session != "up":  # only an established session sends BoRR
                r.session, r.session_since = "up", self.clock()
            if fs.refresh != REFRESH_ASKED:  # not marked at a gap: mark now (RFC 7313)
                self._rotate(r, ev.family, fs)
            fs.refresh = REFRESH_RUNNING
            fs.converged = False
        elif fs.refresh == REFRESH_RUNNING:
            self._converge(r, ev.family, inferred=False)
        # An EoRR without its BoRR (lost, or from before a gap) proves nothing.

    def overdue_refreshes(self, timeout: float) -> list[str]:
        """Routers whose re-read was asked ``timeout`` seconds ago and never began.

        A family without stale routes needs nothing re-read (what it holds
        came after the gap): it is converged. One with stale routes needs a
        session reset (the peer did not answer with BoRR: no enhanced route
        refresh, or nothing left to send): returned for the caller to ask
        ExaBGP; the reset keeps the routes stale meanwhile.
        """
        now = self.clock()
        resets = []
        for r in self.routers.values():
            if not r.refresh_asked or now - r.refresh_asked < timeout:
                continue
            need_reset = False
            for family, fs in r.families.items():
                if fs.refresh != REFRESH_ASKED:
                    continue
                if fs.stale_slot is None or not fs.stale_prefixes:
                    self._converge(r, family, inferred=False)
                else:
                    need_reset = True
            if need_reset and r.session == "up":
                r.resetting = True
                r.refresh_asked = now  # asked again if the reset does not happen
                resets.append(r.neighbor)
            elif not need_reset and all(f.refresh == REFRESH_NONE for f in r.families.values()):
                r.refresh_asked = 0.0
        return resets

    def _session(self, ev: SessionState) -> None:
        r = self.router(ev.neighbor)
        now = self.clock()
        if ev.peer_as:
            r.peer_as = ev.peer_as
        if ev.router_id:
            r.router_id = ev.router_id
        if ev.state == "up":
            if r.session != "up":
                self._start_session(r)
                self.notes.append(SessionUp(r.neighbor, r.name, r.peer_as))
            r.session, r.session_since = "up", now
        elif ev.state == "down":
            r.last_reason = ev.reason
            if r.session != "down":
                hold = self._down_hold(r)
                self._note_down(r, ev.reason, hold)
                self._lose_session(r, hold)
            r.session, r.session_since = "down", now
        elif ev.state == "connected":
            r.session, r.session_since = "connected", now

    def _down_hold(self, r: RouterRib) -> float:
        """How long a session that went down keeps its routes (0: purge).

        The router's own hold, except when the loss is ours (ExaBGP being
        stopped for a restart, or a reset to re-read the table), where the
        restart hold applies as when ExaBGP dies.
        """
        hold = self.hold_time_for(r.neighbor)
        if self.stopping or r.resetting:  # a reset we asked for: the same
            hold = max(hold, self.restart_hold_time)
        return hold

    def _start_session(self, r: RouterRib) -> None:
        """A (re)started session: current routes become the stale generation.

        Routes already marked stale stay so; whatever the router sends now
        goes into a fresh slot and shadows them until End-of-RIB.
        """
        r.refresh_asked = 0.0
        r.resetting = False
        for family, fs in r.families.items():
            table = self.tables[family]
            fs.converged = False
            fs.refresh = REFRESH_NONE  # the new session's End-of-RIB is exact
            if fs.prefixes == 0:
                continue
            if fs.stale_slot is not None:
                # A session that never reached End-of-RIB flapped again: its
                # partial routes are newer than the older stale generation.
                table.release_slot(fs.stale_slot)
            fs.stale_slot = fs.slot
            fs.stale_prefixes = fs.prefixes
            fs.slot = table.alloc_slot()
            fs.prefixes = fs.paths = 0
        if any(f.stale_slot is not None for f in r.families.values()) and not r.stale_until:
            # Routes kept from before without a hold window (first start after
            # a snapshot, say) expire if no End-of-RIB comes.
            r.stale_until = self.clock() + max(self.hold_time_for(r.neighbor), 300.0)

    def _note_down(self, r: RouterRib, reason: str, hold_time: float) -> None:
        routes = "purged" if hold_time <= 0 else f"kept stale for {hold_time:.0f} s"
        self.notes.append(SessionDown(r.neighbor, r.name, reason, routes))

    def _lose_session(self, r: RouterRib, hold_time: float) -> None:
        """Session gone: purge now, or keep routes stale for ``hold_time``."""
        r.refresh_asked = 0.0
        r.resetting = False
        for fs in r.families.values():
            fs.refresh = REFRESH_NONE
        if hold_time <= 0:
            self._purge(r)
            return
        r.stale_until = self.clock() + hold_time
        for fs in r.families.values():
            fs.converged = False

    def _purge(self, r: RouterRib) -> None:
        for family, fs in r.families.items():
            table = self.tables[family]
            if fs.prefixes:
                table.release_slot(fs.slot)
                fs.slot = table.alloc_slot()
            if fs.stale_slot is not None:
                table.release_slot(fs.stale_slot)
                fs.stale_slot = None
            fs.prefixes = fs.paths = fs.stale_prefixes = 0
            fs.converged = False
        r.stale_until = 0.0

    def exabgp_gone(
        self,
        reason: str,
        hold_time: float | None = None,
        neighbors: frozenset[str] | None = None,
    ) -> None:
        """ExaBGP stopped or died: every session it held is gone.

        Routes stay readable, marked stale, for ``hold_time`` (default: the
        restart hold time) so that a restart costs no answers; each router's
        End-of-RIB after the restart replaces them. Routers whose session was
        already down keep the state that loss gave them. ``neighbors``: the
        routers of the one ExaBGP worker that went (ribd.workers); None: all.
        """
        hold = self.restart_hold_time if hold_time is None else hold_time
        now = self.clock()
        for r in self.routers.values():
            if r.session == "down" or (neighbors is not None and r.neighbor not in neighbors):
                continue
            r.last_reason = reason
            r.session, r.session_since = "down", now
            self._note_down(r, reason, hold)
            self._lose_session(r, hold)

    def with_lock_exabgp_gone(
        self,
        reason: str,
        hold_time: float | None = None,
        neighbors: frozenset[str] | None = None,
    ) -> None:
        with self.lock:
            self.exabgp_gone(reason, hold_time, neighbors)

    def _infer_convergence(self, now: float) -> None:
        """Peers that never send End-of-RIB (no graceful restart capability,
        e.g. gobgpd's default): a family of an up session is converged,
        marked inferred, once it has been quiet for ``converge_quiet_time``:
        fewer than QUIET_PREFIXES_PER_SECOND prefixes announced or withdrawn
        per second over that time, and its table grown by fewer than
        GROWING_PREFIXES_PER_SECOND. Not "no UPDATE at all": a full-table peer
        is never silent for a minute (RIS, 2019: the busiest peers' longest
        pause was 4 to 31 s), while a table loads at thousands of prefixes a
        second and churn runs at a few to a hundred. Not the rate alone
        either: 63 routers through one ExaBGP each sent ~300 prefixes a
        second, and all were inferred converged a third into their tables
        (their views built then, routes kept stale dropped; BENCHMARKS.md,
        stop 42). A load adds prefixes to the table (re-sent over a stale
        copy too: they return to the current generation); churn changes the
        ones it holds.

        Windows are counted per family from the first round that sees it
        unconverged with its session up (session start, or a re-read that
        ended without EoRR), and start over while the family is busy.

        A family the router is known to send End-of-RIB for
        (``FamilyState.sends_end_of_rib``) is waited for: inferred only once
        its session has been up for
        END_OF_RIB_WAIT_QUIET_TIMES quiet times, in case its End-of-RIB never
        comes. A table arriving slower than the quiet rate (a starved box,
        many routers through one ExaBGP) would otherwise count as converged
        half loaded, open the readiness gate and drop routes kept stale.
        """
        quiet = self.converge_quiet_time
        patience = quiet * END_OF_RIB_WAIT_QUIET_TIMES
        windows = self._quiet_windows
        for r in self.routers.values():
            for family, fs in r.families.items():
                key = (r.neighbor, family)
                if fs.converged or r.session != "up" or fs.refresh != REFRESH_NONE:
                    windows.pop(key, None)  # (a re-read ends with EoRR or a reset)
                    continue
                window = windows.get(key)
                if window is None or window[0] < r.session_since:
                    windows[key] = (max(now, r.session_since), fs.writes, fs.prefixes)
                    continue
                started, writes, prefixes = window
                if now - started < quiet:
                    continue
                if fs.sends_end_of_rib and now - r.session_since < patience:
                    continue
                spell = now - started
                if (
                    fs.writes - writes < QUIET_PREFIXES_PER_SECOND * spell
                    and fs.prefixes - prefixes < GROWING_PREFIXES_PER_SECOND * spell
                ):
                    windows.pop(key, None)
                    self._converge(r, family, inferred=True)
                else:
                    windows[key] = (now, fs.writes, fs.prefixes)  # busy: a new window
