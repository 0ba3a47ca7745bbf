"""The `attribution` client commands against a real server: connection
settings, pipes, log levels, version, and what `routers` says."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
import time
from pathlib import Path

import grpc
import orjson
import pytest

from attribution.cli import COMMANDS, _command_in, build_parser, main
from attribution.client import connection_from
from attribution.config import ApiSettings
from attribution.v1 import attribution_pb2 as pb
from ribd.events import EndOfRib, SessionState
from tests.attribution.helpers import CONFIG, EDGE1, EDGE2, attrs
from tests.attribution.pki import make_pki
from tests.attribution.served import Server

ENV_KEYS = ("ATTRIBUTION_TARGET", "ATTRIBUTION_TOKEN", "ATTRIBUTION_CA")
ENV_KEYS += ("ATTRIBUTION_CERT", "ATTRIBUTION_KEY")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for key in ENV_KEYS:
        monkeypatch.delenv(key, raising=False)


@pytest.fixture
def serve():
    servers: list[Server] = []

    def start(api: ApiSettings | None = None) -> Server:
        servers.append(Server(api))
        return servers[-1]

    yield start
    for s in servers:
        s.stop()


def cli(*argv: str, stdin: bytes = b"", env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "attribution.cli", *argv],
        input=stdin,
        capture_output=True,
        timeout=120,
        env=env,
    )


# -- pipes, log levels, version ------------------------------------------------------


def test_resolve_into_a_closed_pipe_ends_quietly(serve, tmp_path):
    s = serve()
    line = b'{"exporter":"127.0.1.1","src_addr":"172.16.0.1","dst_addr":"10.9.1.1"}\n'
    flows = tmp_path / "flows.jsonl"
    flows.write_bytes(line * 50_000)  # far more answers than a pipe buffers
    # what `resolve < flows | head -1` does: read one line, close the pipe (the input
    # is a file: resolve reads only a bounded number of batches ahead of its output)
    with open(flows, "rb") as stdin:
        proc = subprocess.Popen(
            [sys.executable, "-m", "attribution.cli", "resolve", "--target", s.target],
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    first = proc.stdout.readline()
    proc.stdout.close()
    proc.wait(timeout=120)
    stderr = proc.stderr.read().decode()
    proc.stderr.close()
    assert json.loads(first)["dst_origin_as"] == 65006
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr
    assert proc.returncode in (0, 141)


def test_log_level_goes_before_or_after_the_command():
    parser = build_parser()
    assert parser.parse_args(["routers", "--log-level", "debug"]).log_level == "DEBUG"
    assert parser.parse_args(["--log-level", "error", "routers"]).log_level == "ERROR"
    assert parser.parse_args(["routers"]).log_level is None
    assert parser.parse_args(["serve", "--config", "x", "--log-level", "info"]).log_level == "INFO"
    for command in (["demo"], ["reload"], ["lookup", "r", "10.0.0.1"], ["report", "f.csv"]):
        assert parser.parse_args([*command, "--log-level", "warning"]).log_level == "WARNING"


def test_an_unknown_log_level_is_refused_naming_the_levels():
    for argv in (["--log-level", "verbose", "routers"], ["routers", "--log-level", "verbose"]):
        r = cli(*argv)
        assert r.returncode == 2
        err = r.stderr.decode()
        assert "'verbose' is not a log level" in err and "DEBUG" in err, err


def test_version_prints_the_package_version():
    r = cli("--version")
    assert r.returncode == 0
    assert (
        r.stdout.decode().strip() == f"attribution {importlib.metadata.version('bgp-attribution')}"
    )


# -- routers ----------------------------------------------------------------------------


def routers_json(target: str, capsys) -> dict:
    assert main(["routers", "--json", "--target", target]) == 0
    return orjson.loads(capsys.readouterr().out)


def test_routers_json_has_last_update_and_service_totals(serve, capsys):
    s = serve()
    from ribd.events import UpdateTime

    s.rib.apply(UpdateTime(EDGE1, 1_700_000_000.5))
    doc = routers_json(s.target, capsys)
    assert doc["unique_attribute_sets"] == len(s.rib.interner)
    assert doc["bad_feed_lines"] == 3
    edge1 = next(r for r in doc["routers"] if r["name"] == "edge1")
    assert edge1["last_update"] == 1_700_000_000.5
    assert edge1["session_since"] > 0
    assert edge1["families"]["ipv4 unicast"]["prefixes"] == edge1["ipv4_prefixes"] == 8
    # the world sends no End-of-RIB for IPv6
    assert edge1["convergence"] == "waiting for End-of-RIB (ipv6 unicast)"


def test_routers_counts_prefixes_served_stale(serve, capsys):
    s = serve()
    s.rib.stale_hold_by_neighbor[EDGE1] = 600.0
    s.rib.apply(SessionState(EDGE1, "down", reason="hold timer expired"))
    doc = routers_json(s.target, capsys)
    edge1 = next(r for r in doc["routers"] if r["name"] == "edge1")
    assert edge1["stale"] is True
    assert edge1["stale_prefixes"] == edge1["ipv4_prefixes"] + edge1["ipv6_prefixes"] == 10
    assert main(["routers", "--target", s.target]) == 0
    text = capsys.readouterr().out
    row = next(line for line in text.splitlines() if line.startswith("edge1"))
    assert " 10 " in row, text
    assert "session down (hold timer expired); routes served stale" in row


def test_routers_marks_a_family_that_refused_prefixes_at_its_limit(serve, capsys):
    from ribd.events import RoutesAnnounced
    from ribd.prefix_limit import PrefixLimits

    s = serve()
    s.rib.set_prefix_limits(PrefixLimits(default={"ipv4 unicast": 8}))
    s.rib.apply(RoutesAnnounced(EDGE1, "ipv4 unicast", ("10.99.0.0/16",), None, attrs((65099,))))
    doc = routers_json(s.target, capsys)
    edge1 = next(r for r in doc["routers"] if r["name"] == "edge1")
    v4 = edge1["families"]["ipv4 unicast"]
    assert (v4["prefixes"], v4["max_prefixes"], v4["prefixes_refused"]) == (8, 8, 1)
    assert edge1["families"]["ipv6 unicast"]["max_prefixes"] is None  # no limit
    assert main(["routers", "--target", s.target]) == 0
    text = capsys.readouterr().out
    row = next(line for line in text.splitlines() if line.startswith("edge1"))
    assert " 8 * ! " in row or " 8 ! " in row, text
    assert "(! prefixes refused at max_prefixes)" in text


def test_routers_says_why_a_router_has_not_converged(serve, capsys):
    s = serve()
    s.rib.apply(EndOfRib(EDGE1, "ipv6 unicast"))
    s.rib.apply(SessionState(EDGE2, "down"))
    s.rib.apply(SessionState(EDGE2, "up"))  # up again, no End-of-RIB since
    assert main(["routers", "--target", s.target]) == 0
    text = capsys.readouterr().out
    edge2 = next(line for line in text.splitlines() if line.startswith("edge2"))
    assert "waiting for End-of-RIB (ipv4 unicast, ipv6 unicast)" in edge2
    edge1 = next(line for line in text.splitlines() if line.startswith("edge1"))
    assert "converged" in edge1 and "waiting" not in edge1


def test_routers_marks_convergence_inferred_for_a_peer_without_end_of_rib(serve, capsys):
    """Like gobgpd without graceful restart: no End-of-RIB for IPv6, then quiet."""
    s = serve()
    s.rib.converge_quiet_time = 60.0
    now = [time.time()]
    s.rib.clock = lambda: now[0]
    for _ in range(2):  # first seen not converged; then quiet for longer than 60 s
        while s.rib.maintenance():
            pass
        now[0] += 61
    assert main(["routers", "--target", s.target]) == 0
    edge1 = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("edge1"))
    assert "converged (inferred" in edge1 and "*" not in edge1
    doc = routers_json(s.target, capsys)
    families = next(r for r in doc["routers"] if r["name"] == "edge1")["families"]
    assert families["ipv6 unicast"]["inferred"] and not families["ipv4 unicast"]["inferred"]


# -- connection settings ------------------------------------------------------------------


def write_config(tmp_path: Path, target: str, api: str) -> Path:
    path = tmp_path / "attribution.toml"
    text = CONFIG.replace('grpc_listen = "127.0.0.1:0"', f'grpc_listen = "{target}"')
    path.write_text(text + "\n[api]\n" + api)
    return path


@pytest.fixture
def secured(tmp_path, serve):
    """A mutual-TLS server with read and admin tokens, and its config file."""
    pki = make_pki(tmp_path)
    (tmp_path / "read.tokens").write_text("read-1\n")
    (tmp_path / "admin.tokens").write_text("# admins\nadmin-1\n")
    api = ApiSettings(
        tls_cert=str(pki.server_cert),
        tls_key=str(pki.server_key),
        tls_client_ca=str(pki.ca),
        read_token_file=str(tmp_path / "read.tokens"),
        admin_token_file=str(tmp_path / "admin.tokens"),
    )
    s = serve(api)
    config = write_config(
        tmp_path,
        s.target,
        "\n".join(
            f'{k} = "{getattr(api, k)}"'
            for k in ("tls_cert", "tls_key", "tls_client_ca", "read_token_file", "admin_token_file")
        ),
    )
    return s, pki, config


def test_client_commands_reach_a_secured_service_from_its_config(secured, capsys):
    s, _, config = secured
    assert main(["reload", "--config", str(config)]) == 0  # admin token from the file
    assert s.reloads == 1
    assert capsys.readouterr().out.startswith("reloaded")
    assert main(["routers", "--config", str(config), "--json"]) == 0
    assert orjson.loads(capsys.readouterr().out)["routers"]
    # a read token given on the command line wins over the file's admin token
    assert main(["reload", "--config", str(config), "--token", "read-1"]) == 1
    assert "PERMISSION_DENIED" in capsys.readouterr().err
    assert s.reloads == 1


def test_client_commands_take_settings_from_env_and_flags_win(secured, monkeypatch, capsys):
    s, pki, _ = secured
    monkeypatch.setenv("ATTRIBUTION_TARGET", s.target)
    monkeypatch.setenv("ATTRIBUTION_CA", str(pki.ca))
    monkeypatch.setenv("ATTRIBUTION_CERT", str(pki.client_cert))
    monkeypatch.setenv("ATTRIBUTION_KEY", str(pki.client_key))
    monkeypatch.setenv("ATTRIBUTION_TOKEN", "wrong")
    assert main(["lookup", "edge1", "10.9.1.1"]) == 1
    err = capsys.readouterr().err
    assert "UNAUTHENTICATED" in err and "ATTRIBUTION_TOKEN" in err
    assert main(["lookup", "edge1", "10.9.1.1", "--token", "read-1"]) == 0
    assert orjson.loads(capsys.readouterr().out)["prefix"] == "10.9.0.0/16"
    monkeypatch.setenv("ATTRIBUTION_TOKEN", "read-1")
    r = cli(
        "resolve",
        stdin=b'{"exporter":"127.0.1.1","src_addr":"172.16.0.1","dst_addr":"10.9.1.1"}\n',
        env={**__import__("os").environ},
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["dst_origin_as"] == 65006
    # without a client certificate mutual TLS refuses the connection
    monkeypatch.delenv("ATTRIBUTION_CERT")
    monkeypatch.delenv("ATTRIBUTION_KEY")
    assert main(["routers"]) == 1
    assert "UNAVAILABLE" in capsys.readouterr().err


def test_connection_settings_precedence(tmp_path):
    (tmp_path / "admin.tokens").write_text("admin-from-file\n")
    config = write_config(
        tmp_path,
        "0.0.0.0:6000",
        'tls_cert = "/srv/cert.pem"\ntls_key = "/srv/key.pem"\ntls_client_ca = "/srv/ca.pem"\n'
        f'admin_token_file = "{tmp_path / "admin.tokens"}"\n',
    )
    c = connection_from(config_path=str(config), env={})
    assert (c.target, c.token, c.ca, c.cert, c.key, c.tls) == (
        "127.0.0.1:6000",
        "admin-from-file",
        "/srv/ca.pem",
        "/srv/cert.pem",
        "/srv/key.pem",
        True,
    )
    env = {"ATTRIBUTION_TARGET": "127.0.0.2:1", "ATTRIBUTION_TOKEN": "env-token"}
    c = connection_from(config_path=str(config), env=env)
    assert (c.target, c.token) == ("127.0.0.2:1", "env-token")
    c = connection_from(target="127.0.0.3:2", config_path=str(config), env=env)
    assert c.target == "127.0.0.3:2"
    c = connection_from(env={})
    assert (c.target, c.token, c.tls) == ("127.0.0.1:50051", "", False)
    # a client certificate of one's own replaces the service's
    c = connection_from(cert="/me.pem", key="/me.key", config_path=str(config), env={})
    assert (c.cert, c.key, c.ca) == ("/me.pem", "/me.key", "/srv/ca.pem")


def test_a_client_tls_file_that_cannot_be_used_is_a_clear_error(capsys, tmp_path):
    assert main(["routers", "--ca", str(tmp_path / "missing.pem")]) == 2
    err = capsys.readouterr().err
    assert "missing.pem" in err and "cannot read" in err and "Traceback" not in err
    (tmp_path / "junk.pem").write_text("junk\n")
    assert main(["routers", "--ca", str(tmp_path / "junk.pem")]) == 2
    assert "junk.pem: not a PEM file" in capsys.readouterr().err
    assert main(["routers", "--cert", str(tmp_path / "junk.pem")]) == 2
    assert "both --cert and --key" in capsys.readouterr().err


def test_unusable_tls_files_stop_serve_before_anything_starts(tmp_path):
    config = write_config(
        tmp_path, "127.0.0.1:0", f'tls_cert = "{tmp_path}/nope.pem"\ntls_key = "{tmp_path}/k"\n'
    )
    r = cli("serve", "--config", str(config))
    assert r.returncode == 2
    assert "tls_cert" in r.stderr.decode() and "no such file" in r.stderr.decode()


def test_grpc_errors_name_the_target(serve, capsys):
    s = serve()
    assert main(["lookup", "nosuchrouter", "10.0.0.1", "--target", s.target]) == 1
    err = capsys.readouterr().err
    assert s.target in err and grpc.StatusCode.NOT_FOUND.name in err
    assert pb.LookupRouteRequest  # the request type the command sends


def test_report_through_a_secured_service_takes_tls_and_token_from_env(
    secured, monkeypatch, capsys, tmp_path
):
    s, pki, _ = secured
    flows = Path(__file__).resolve().parents[1] / "reports" / "data" / "flows.jsonl"
    out = tmp_path / "report.json"
    argv = ["report", str(flows), "--target", s.target, "-f", "json", "-o", str(out)]
    monkeypatch.setenv("ATTRIBUTION_CA", str(pki.ca))
    monkeypatch.setenv("ATTRIBUTION_CERT", str(pki.client_cert))
    monkeypatch.setenv("ATTRIBUTION_KEY", str(pki.client_key))
    assert main(argv) == 1
    assert "UNAUTHENTICATED" in capsys.readouterr().err
    monkeypatch.setenv("ATTRIBUTION_TOKEN", "read-1")
    assert main(argv) == 0, capsys.readouterr().err
    assert json.loads(out.read_text())["meta"]["records"] > 0


OPTIONAL = ("pyarrow", "chdb", "clickhouse_connect")


def test_the_cli_needs_no_optional_extra_until_a_command_uses_one():
    """`pip install .` (no extras) must run the demo: the parser imports no extra's package."""
    blocker = (
        "import sys\n"
        f"for name in {OPTIONAL!r}:\n"
        "    sys.modules[name] = None  # import of it raises ImportError\n"
        "from attribution.cli import build_parser, main\n"
        "build_parser()\n"
        "sys.exit(main(['clickhouse', 'schema']))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", blocker], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "CREATE TABLE" in done.stdout


def test_a_command_builds_only_its_own_parser_and_imports_no_other_commands_modules():
    """Every invocation paid ~0.2 CPU-s importing all commands' modules (the report
    engine, the overrides dry run, IX, ClickHouse) to build one parser."""
    probe = (
        "import sys\n"
        "from attribution.cli import main\n"
        "try:\n"
        "    main(['routers', '--help'])\n"
        "except SystemExit as e:\n"
        "    assert e.code == 0, e.code\n"
        "heavy = ('attribution.dryrun', 'attribution.reports.cli', 'attribution.reports.readers',\n"
        "         'attribution.ix', 'attribution.clickhouse_schema', 'attribution.enrich')\n"
        "print('loaded:', *(m for m in heavy if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "usage: attribution routers" in done.stdout
    assert done.stdout.splitlines()[-1] == "loaded:", done.stdout


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_commands_help_works_when_only_it_is_built(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    assert f"usage: attribution {command}" in capsys.readouterr().out


def test_the_command_is_found_past_the_options_before_it():
    assert _command_in(["--log-level", "debug", "routers", "--json"]) == "routers"
    assert _command_in(["--log-format", "json", "serve", "--config", "x"]) == "serve"
    assert _command_in(["--help"]) is None and _command_in(["--version"]) is None
    assert _command_in(["nonsense"]) is None and _command_in([]) is None
