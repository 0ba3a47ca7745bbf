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

import dataclasses
import hashlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import orjson
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

# Characters of the SHA-256 shown as the digest label: enough to tell files apart.
DIGEST_CHARS = 16


def short_digest(digest: str) -> str:
    """The digest as the metric and `attribution check` show it."""
    return digest[:DIGEST_CHARS]


# The settings an answer depends on. Replicas' files differ by design ([service]
# router_id: each pod is its own BGP speaker; listeners, paths), so their file digests
# differ; these must not, or two replicas answer one flow differently.
ANSWER_SETTINGS = ("local_as", "as_set_policy", "default_fallback", "routers", "overrides", "ix")


def answers_digest(config: Any) -> str:
    """SHA-256 (first 16 hex digits) of ``config``'s ANSWER_SETTINGS, canonical: the
    same for files that differ only in comments, layout or other settings."""
    settings = {name: _plain(getattr(config, name)) for name in ANSWER_SETTINGS}
    return hashlib.sha256(orjson.dumps(settings, option=orjson.OPT_SORT_KEYS)).hexdigest()[
        :DIGEST_CHARS
    ]


def _plain(value: Any) -> Any:
    """JSON-ready, and the same in every process (no set order, no object address)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((_plain(v) for v in value), key=orjson.dumps)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, bytes):
        return value.hex()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise TypeError(f"no canonical form for {type(value).__name__}")


class ConfigReloads:
    """Reload outcomes since start; written by the reload thread, read by scrapes."""

    def __init__(self, config: Any) -> None:
        """``config``: the one read at start (``attribution.config.Config``)."""
        self._lock = threading.Lock()
        self.digest = config.digest  # of the file in effect
        self.answers = answers_digest(config)  # computed once per config, not per scrape
        self.succeeded_at = time.time()  # the start counts
        self.taken = 0
        self.refused = 0
        self.last_ok = True
        self.restart_pending: tuple[str, ...] = ()  # settings only a restart applies

    def record_taken(self, config: Any, restart_pending: tuple[str, ...] = ()) -> None:
        """``config`` is now in effect; ``restart_pending``: what of it waits for a restart."""
        answers = answers_digest(config)
        with self._lock:
            self.taken += 1
            self.last_ok = True
            self.succeeded_at = time.time()
            self.digest = config.digest
            self.answers = answers
            self.restart_pending = restart_pending

    def record_refused(self) -> None:
        with self._lock:
            self.refused += 1
            self.last_ok = False

    def copy(self) -> tuple[tuple[str, str], float, int, int, bool, tuple[str, ...]]:
        with self._lock:
            return (
                (self.digest, self.answers),
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
        (digest, answers), succeeded_at, taken, refused, last_ok, pending = self.reloads.copy()
        info = GaugeMetricFamily(
            "attribution_config_info",
            "1, labelled with SHA-256s (first 16 hex digits) of the config in effect: sha256 "
            "of the file, answers_sha256 of the settings answers depend on (routers, "
            "overrides, [[ix]], fallback, local_as, as_set_policy), which replicas must "
            "share. `attribution check` prints both.",
            labels=["sha256", "answers_sha256"],
        )
        info.add_metric([short_digest(digest), answers], 1)
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
