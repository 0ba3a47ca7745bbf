"""The config in effect and what became of its reloads, for the metrics.

A refused reload keeps the running config (README, "Bad input"): right for the
flows, but until now visible only in the log line and in the answer of the one
`attribution reload` that asked. A SIGHUP from a deploy tool, or a file changed
on one replica of several, left nothing to alert on. These are the figures
Prometheus and Alertmanager give for their own config, under the names
operators already alert on (``*_config_last_reload_successful``,
``*_config_last_reload_success_timestamp_seconds``), plus the file's digest
(replicas given different files show two values) and whether settings read at
the last reload wait for a restart.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

# Characters of the SHA-256 shown as the digest label: enough to tell files apart.
DIGEST_CHARS = 16


def short_digest(digest: str) -> str:
    """The digest as the metric and `attribution check` show it."""
    return digest[:DIGEST_CHARS]


class ConfigReloads:
    """Reload outcomes since start; written by the reload thread, read by scrapes."""

    def __init__(self, digest: str, now: float | None = None) -> None:
        self._lock = threading.Lock()
        self.digest = digest  # of the file in effect
        self.succeeded_at = time.time() if now is None else now  # the start counts
        self.taken = 0
        self.refused = 0
        self.last_ok = True
        self.restart_pending: tuple[str, ...] = ()  # settings only a restart applies

    def record_taken(self, digest: str, restart_pending: tuple[str, ...] = ()) -> None:
        with self._lock:
            self.taken += 1
            self.last_ok = True
            self.succeeded_at = time.time()
            self.digest = digest
            self.restart_pending = restart_pending

    def record_refused(self) -> None:
        with self._lock:
            self.refused += 1
            self.last_ok = False

    def copy(self) -> tuple[str, float, int, int, bool, tuple[str, ...]]:
        with self._lock:
            return (
                self.digest,
                self.succeeded_at,
                self.taken,
                self.refused,
                self.last_ok,
                self.restart_pending,
            )


class ConfigCollector(Collector):
    """``attribution_config_*``, read from a ConfigReloads when scraped."""

    def __init__(self, reloads: ConfigReloads) -> None:
        self.reloads = reloads

    def collect(self) -> Iterator[Metric]:
        digest, succeeded_at, taken, refused, last_ok, pending = self.reloads.copy()
        info = GaugeMetricFamily(
            "attribution_config_info",
            "1, labelled with the SHA-256 (first 16 hex digits) of the config file in "
            "effect; `attribution check` prints the same. Replicas given one file show one "
            "value.",
            labels=["sha256"],
        )
        info.add_metric([short_digest(digest)], 1)
        yield info
        reloads = CounterMetricFamily(
            "attribution_config_reloads",
            "Config reloads (SIGHUP, ReloadConfig) by outcome: taken, or refused (the "
            "running config kept; the log and the RPC's answer say why).",
            labels=["outcome"],
        )
        reloads.add_metric(["taken"], taken)
        reloads.add_metric(["refused"], refused)
        yield reloads
        yield GaugeMetricFamily(
            "attribution_config_last_reload_successful",
            "0 when the last reload was refused: the file on disk is not the config "
            "running (alert on it); 1 after a reload taken, and from start.",
            value=1 if last_ok else 0,
        )
        yield GaugeMetricFamily(
            "attribution_config_last_reload_success_timestamp_seconds",
            "When the config running was read (Unix time): the start, or the last reload taken.",
            value=succeeded_at,
        )
        yield GaugeMetricFamily(
            "attribution_config_restart_pending",
            "1 when the config running has settings that take effect only at a restart "
            "(listeners, ExaBGP's sessions, TLS paths: logged at the reload), 0 otherwise.",
            value=1 if pending else 0,
        )
