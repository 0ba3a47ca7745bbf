"""Log output: text or one JSON object per line, chosen by flag or config."""

from __future__ import annotations

import io
import logging

import orjson
import pytest

from attribution import logs
from ribd.speaker import wait_until
from tests.attribution.observed import ServedProcess, router_block


@pytest.fixture
def root_logging():
    """Put the root logger back as it was (logs.setup changes it)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    if logs._handler is not None:
        root.removeHandler(logs._handler)
        logs._handler = None
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_lines_carry_time_level_logger_message_and_extra_fields(root_logging):
    out = io.StringIO()
    logs.setup("INFO", "json", out)
    log = logging.getLogger("ribd.sessions")
    log.warning("router %s: down", "edge1", extra={"router": "edge1", "prefixes": 3})
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        log.exception("failed")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2  # a multi-line traceback stays inside its object
    first, second = (orjson.loads(line) for line in lines)
    assert first["level"] == "WARNING" and first["logger"] == "ribd.sessions"
    assert first["message"] == "router edge1: down"
    assert (first["router"], first["prefixes"]) == ("edge1", 3)
    assert first["time"].endswith("Z")
    assert "ValueError: boom" in second["exception"]


def test_the_flag_wins_over_the_config_file(root_logging):
    out = io.StringIO()
    logs.setup("INFO", "text", out)
    logs.use_config_format("json")
    logging.getLogger("x").info("hello")
    assert out.getvalue().rstrip().endswith("INFO x: hello")


def test_the_config_file_chooses_when_the_flag_is_absent(root_logging):
    out = io.StringIO()
    logs.setup("INFO", None, out)
    logs.use_config_format("json")
    logging.getLogger("x").info("hello")
    assert orjson.loads(out.getvalue())["message"] == "hello"


def test_serve_writes_json_logs_when_the_config_says_so():
    svc = ServedProcess(
        router_block("edge1", "127.0.0.2", "127.0.1.1"),
        service='log_format = "json"\n',
        log_args=(),
    )
    try:
        wait_until(lambda: "gRPC listening" in svc.log_text(), 60, 0.1, "gRPC listening")
    finally:
        svc.stop()
    records = svc.log_records()  # every line parses as JSON
    assert any(r["message"].startswith("gRPC listening") for r in records)
    health = [r for r in records if r.get("event") == "health"]
    assert health[0]["serving"] is False


def test_serve_writes_text_logs_by_default():
    svc = ServedProcess(router_block("edge1", "127.0.0.2", "127.0.1.1"), log_args=())
    try:
        wait_until(lambda: "gRPC listening" in svc.log_text(), 60, 0.1, "gRPC listening")
    finally:
        svc.stop()
    line = next(x for x in svc.log_text().splitlines() if "gRPC listening" in x)
    assert " INFO attribution.grpc_server: gRPC listening on 127.0.0.1:" in line
