"""The alerting rules shipped for the daemon's own metrics (config/prometheus-alerts.yaml):
valid to Debian's promtool, firing on the series they are meant for (promtool's own rule
unit tests, tests/prometheus_alerts_test.yaml), and written against the names and labels
the daemon really exports, so that a renamed metric cannot leave an alert that never fires."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import generate_latest

from autoscaler.metrics import MetricsError
from autoscaler.telemetry import Telemetry
from tests.autoscaler.test_tick import Harness

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "config" / "prometheus-alerts.yaml"
RULE_TESTS = ROOT / "tests" / "prometheus_alerts_test.yaml"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    """Debian's promtool (CI installs the `prometheus` package; missing, the test fails)."""
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is not installed (Debian package `prometheus`)")
    return subprocess.run([path, *args], capture_output=True, text=True, timeout=120)


def alert_expressions() -> dict[str, str]:
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return {rule["alert"]: rule["expr"] for group in groups for rule in group["rules"]}


def exported(telemetry: Telemetry) -> str:
    return generate_latest(telemetry.registry).decode()


def test_promtool_accepts_the_rules() -> None:
    checked = promtool("check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(alert_expressions())} rules found" in checked.stdout


def test_each_alert_fires_on_its_series_and_not_on_a_one_off() -> None:
    tested = promtool("test", "rules", str(RULE_TESTS))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    cases = yaml.safe_load(RULE_TESTS.read_text(encoding="utf-8"))["tests"]
    alerts_tested = {
        check["alertname"]
        for case in cases
        for check in case["alert_rule_test"]
        if check["exp_alerts"]
    }
    assert alerts_tested == set(alert_expressions())  # every alert seen firing at least once


def test_the_rules_name_only_metrics_the_daemon_exports() -> None:
    text = exported(Telemetry(leader_election=True))
    families = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, flags=re.MULTILINE))
    names = set(families)
    names |= {
        f"{n}{s}"
        for n, t in families.items()
        if t == "histogram"
        for s in ("_bucket", "_sum", "_count")
    }
    used = {
        name
        for expr in alert_expressions().values()
        for name in re.findall(r"autoscaler_\w+", expr)
    }
    assert used and used <= names, used - names


def test_a_capped_pool_and_a_failing_one_carry_the_labels_the_alerts_select(tmp_path: Path) -> None:
    """AutoscalerPoolAtMaxNodes selects rule="max_nodes", AutoscalerPoolErrors kind="metrics":
    a real tick of a pool whose forecast wants 13 nodes under max_nodes 5, and one whose
    metrics fail, exported by the real telemetry."""
    telemetry = Telemetry()
    capped = Harness(tmp_path / "capped", rps=10.0, max_nodes=5, name="llm")
    telemetry.record(capped.tick())
    failing = Harness(tmp_path / "failing", rps=10.0)
    failing.metrics.failure = MetricsError("stale", "q", "old")
    telemetry.record(failing.tick())
    text = exported(telemetry)
    assert re.search(
        r'^autoscaler_decision_rules_total\{pool="llm",rule="max_nodes"\} 1\.0$', text, re.M
    )
    assert re.search(r'^autoscaler_errors_total\{kind="metrics",pool="ocr"\} 1\.0$', text, re.M)
    expressions = alert_expressions()
    assert 'rule="max_nodes"' in expressions["AutoscalerPoolAtMaxNodes"]
    assert "by (pool, kind)" in expressions["AutoscalerPoolErrors"]
