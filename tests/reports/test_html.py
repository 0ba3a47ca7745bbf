"""The HTML report: self-contained, and drawn by a real headless browser."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from attribution.reports import cli

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def html_report(data, tmp_path):
    out = tmp_path / "report.html"
    rc = cli.main(
        [
            str(data / "attributed.jsonl"),
            str(data / "pmacct.csv"),
            "-c",
            str(data / "report.toml"),
            "-f",
            "html",
            "-o",
            str(out),
        ]
    )
    assert rc == 0
    return out


def test_html_is_self_contained(html_report):
    text = html_report.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text), "no network references"
    assert "<link " not in text and "@import" not in text
    assert text.count('<svg class="chart') == 4


def _chromium(args, tmp_path):
    profile = tmp_path / "profile"
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--v=0",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium)")
def test_html_renders_charts_in_headless_chromium(html_report, tmp_path):
    result = _chromium(["--dump-dom", html_report.as_uri()], tmp_path)
    dom = result.stdout
    assert result.returncode == 0, result.stderr[-2000:]
    body = re.search(r"<body[^>]*>", dom).group(0)
    assert 'data-rendered="1"' in body, body
    assert "data-errors" not in body
    assert 'data-charts="4"' in body
    # every chart has marks with a non-empty box: 2 stacked peers charts, cost per link, candidates
    drawn = dict(re.findall(r'id="(chart-[a-z-]+)"[^>]*data-drawn="(\d+)"', dom))
    assert int(drawn["chart-peers-in"]) >= 2
    assert int(drawn["chart-peers-out"]) >= 1
    assert int(drawn["chart-link-cost"]) >= 5  # five links, each with at least one segment
    assert int(drawn["chart-candidates"]) >= 2
    console_errors = [ln for ln in result.stderr.splitlines() if "CONSOLE" in ln and "rror" in ln]
    assert not console_errors, console_errors


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium)")
def test_html_screenshot_is_produced(html_report, tmp_path):
    shot = tmp_path / "shot.png"
    result = _chromium(
        [
            "--hide-scrollbars",
            "--window-size=1280,2000",
            f"--screenshot={shot}",
            html_report.as_uri(),
        ],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert shot.stat().st_size > 20_000  # a blank page compresses to a few kB
