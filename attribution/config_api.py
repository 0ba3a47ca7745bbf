"""The config file's ``[api]`` section: how the gRPC API is secured and shared
(and ``[metrics]``' settings, secured the same way).

Its own module, as ``[[ix]]`` has (attribution.ix_config): the settings, the
keys the section accepts (attribution.config.SECTION_KEYS lists them with every
other section's) and their validator, in the one validator style
(attribution.config_file.Checker).
"""

from __future__ import annotations

from dataclasses import dataclass

from attribution.config_file import Checker

KEYS = frozenset(
    {
        "tls_cert",
        "tls_key",
        "tls_client_ca",
        "read_token_file",
        "admin_token_file",
        "workers",
        "max_streams",
        "stream_idle_timeout",
    }
)


@dataclass(frozen=True, slots=True)
class ApiSettings:
    """How the gRPC API is secured and how much of it one client may hold.

    TLS is on when ``tls_cert`` and ``tls_key`` are set; ``tls_client_ca`` makes
    it mutual (clients must present a certificate that CA signed). Token files
    hold one token per line: read tokens may resolve and look up, admin tokens
    may also reload. ``workers`` threads serve RPCs; at most ``max_streams`` of
    them serve streams at once, so health checks and unary calls always find one.
    """

    tls_cert: str = ""
    tls_key: str = ""
    tls_client_ca: str = ""
    read_token_file: str = ""
    admin_token_file: str = ""
    workers: int = 16
    max_streams: int = 8
    stream_idle_timeout: float = 300.0

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert)


METRICS_KEYS = frozenset({"listen", "tls_cert", "tls_key", "tls_client_ca", "token_file"})


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    """The Prometheus endpoint: where it listens and how it is secured.

    TLS as in ``[api]`` (``tls_client_ca``: scrapers must present a certificate
    that CA signed); ``token_file``: scrapers must send ``Authorization: Bearer
    TOKEN`` with one of its tokens (Prometheus' ``authorization`` setting)."""

    listen: str = ""  # HOST:PORT; "" = off
    tls_cert: str = ""
    tls_key: str = ""
    tls_client_ca: str = ""
    token_file: str = ""

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert)


def tls_paths(c: Checker, data: dict, section: str, extra: tuple[str, ...] = ()) -> dict[str, str]:
    """The TLS file paths of ``section`` (and the ``extra`` file keys), checked to go
    together: a certificate and its key both or neither, a client CA only with them."""
    w = (section, None)
    paths = {
        key: c.get(data, w, key, str, "")
        for key in ("tls_cert", "tls_key", "tls_client_ca", *extra)
    }
    if bool(paths["tls_cert"]) != bool(paths["tls_key"]):
        missing = "tls_key" if paths["tls_cert"] else "tls_cert"
        raise c.fail((section, None, missing), "tls_cert and tls_key go together: set both")
    if paths["tls_client_ca"] and not paths["tls_cert"]:
        raise c.fail((section, None, "tls_client_ca"), "mutual TLS needs tls_cert and tls_key")
    return paths


def parse_api(c: Checker, data: dict) -> ApiSettings:
    """``[api]``: TLS files that go together, thread and stream limits that leave
    a worker for health checks; files are read at start (attribution.security)."""
    api = c.get(data, ("", None, None), "api", dict, {})
    w = ("api", None)
    c.no_unknown(api, w, KEYS)
    paths = tls_paths(c, api, "api", ("read_token_file", "admin_token_file"))
    workers = c.get(api, w, "workers", int, 16)
    if not 2 <= workers <= 1024:
        raise c.fail(("api", None, "workers"), "must be between 2 and 1024")
    max_streams = c.get(api, w, "max_streams", int, min(8, workers - 1))
    if not 1 <= max_streams < workers:
        raise c.fail(
            ("api", None, "max_streams"),
            f"must be between 1 and workers - 1 ({workers - 1}): one worker is kept for "
            "health checks and unary calls",
        )
    idle = c.seconds(api, w, "stream_idle_timeout", 300.0, 1, 86400)
    return ApiSettings(workers=workers, max_streams=max_streams, stream_idle_timeout=idle, **paths)
