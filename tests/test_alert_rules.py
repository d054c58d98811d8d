"""deploy/prometheus/lapak-rules.yml: valid for Prometheus, each alert fires when it should
(promtool's unit tests), and every metric a rule names is one a running server exports."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from tests_support import free_port, wait_healthy

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "deploy" / "prometheus" / "lapak-rules.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "lapak-rules.test.yml"
METRIC = re.compile(r"\blapak_[a-z0-9_]+\b")
# Every alert the operator kit promises (issue 16), by the name the rules give it.
PROMISED = ("LapakServerDown", "LapakCommitLatencyHigh", "LapakSlowConsumersClosed")


def promtool() -> str:
    tool = shutil.which("promtool")
    if tool is None:
        if os.environ.get("CI"):
            pytest.fail("promtool missing in CI: .ci/run installs Debian's prometheus package")
        pytest.skip("promtool not installed (apt-get install prometheus); rules parsed only")
    return tool


def rule_metrics() -> set[str]:
    """The lapak_* series named by the rules (comments left out)."""
    text = "\n".join(ln for ln in RULES.read_text().splitlines() if not ln.lstrip().startswith("#"))
    return set(METRIC.findall(text))


def test_rules_name_the_promised_alerts() -> None:
    alerts = set(re.findall(r"^\s*- alert: (\w+)$", RULES.read_text(), re.M))
    assert set(PROMISED) <= alerts, f"missing alerts: {set(PROMISED) - alerts}"
    tested = set(re.findall(r"^\s*alertname: (\w+)$", RULE_TESTS.read_text(), re.M))
    assert alerts == tested, f"alerts without a promtool test: {alerts - tested}"


def test_promtool_checks_the_rules() -> None:
    proc = subprocess.run(
        [promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_each_alert_fires_on_its_series_and_not_otherwise() -> None:
    proc = subprocess.run(
        [promtool(), "test", "rules", RULE_TESTS.name],
        capture_output=True, text=True, timeout=60, cwd=RULE_TESTS.parent,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr


def exported_series(metrics_text: str) -> set[str]:
    """Sample names a /metrics page can carry, from its TYPE lines (a labelled counter that
    never moved has no sample yet, but its family is declared)."""
    names: set[str] = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", metrics_text, re.M):
        names.add(name)
        if kind == "histogram":
            names |= {f"{name}_bucket", f"{name}_count", f"{name}_sum"}
        if kind == "counter" and not name.endswith("_total"):
            names.add(f"{name}_total")
    return names


def test_every_metric_a_rule_names_is_exported_by_a_running_server(tmp_path: Path) -> None:
    wanted = rule_metrics()
    assert wanted, "the rules name no lapak_* metric"
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "lapak.cli", "signal", "--port", str(port),
            "--data-dir", str(tmp_path / "data"), "--secret-file", str(tmp_path / "secret"),
        ],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_healthy(port, proc)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            exported = exported_series(r.read().decode())
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    assert wanted <= exported, f"rules name metrics the server does not export: {wanted - exported}"
