"""`autoscaler backtest --config FILE --pool P`: a pool's real settings replayed on a trace
or on its Prometheus history, and the predictor settings its past recommends."""

from __future__ import annotations

import csv
import gzip
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from autoscaler.backtest.engine import MINUTE
from autoscaler.cli.backtest_config import PoolRun, load_pool, pool_history, pool_settings
from autoscaler.cli.main import app
from autoscaler.config.schema import Pool
from autoscaler.metrics import MetricsError
from tests.doubles.nomad_api import NomadApiDouble
from tests.doubles.prometheus_server import DEMAND_QUERY, PrometheusWithHistory
from tests.traces import NASA

runner = CliRunner()


def _nasa_cut(tmp_path: Path, minutes: int) -> Path:
    with gzip.open(NASA, "rt") as trace:
        lines = trace.read().splitlines()[: minutes + 1]
    path = tmp_path / "nasa_cut.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def _flat_noisy(tmp_path: Path, days: int) -> Path:
    """A flat level with Poisson noise: nothing to forecast, so the band is too wide."""
    rng = np.random.default_rng(7)
    times = pd.date_range("2026-03-02", periods=days * 1440, freq="1min", tz="UTC")
    frame = pd.DataFrame(
        {
            "timestamp": times.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "requests": rng.poisson(600, len(times)),
        }
    )
    path = tmp_path / "flat.csv"
    frame.to_csv(path, index=False)
    return path


def _pool(**changes: Any) -> dict[str, Any]:
    pool: dict[str, Any] = {
        "name": "gpu",
        "backend": {"kind": "simulated"},
        "demand": {"query": "sum(rate(http_requests_total[5m]))", "window": "1d"},
        "capacity": {"per_node_rps": 1.0},
        "predictor": {"kind": "seasonal"},
        "min_nodes": 1,
        "max_nodes": 100,
        "boot_time": "10m",
        "horizon": "15m",
    }
    pool.update(changes)
    return pool


def _config(tmp_path: Path, metrics: dict[str, Any], *pools: dict[str, Any]) -> Path:
    document = {"interval": "1m", "state_dir": str(tmp_path / "state"), "metrics": metrics}
    document["pools"] = list(pools)
    path = tmp_path / "autoscaler.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def _replay(trace: Path) -> dict[str, Any]:
    return {"kind": "replay", "trace": str(trace)}


def _backtest(config: Path, *arguments: str) -> Any:
    return runner.invoke(app, ["backtest", "--config", str(config), *arguments])


def test_schedule_floor_and_min_nodes_bound_every_replayed_count(tmp_path: Path) -> None:
    trace = _nasa_cut(tmp_path, 2 * 1440)
    schedule = {"name": "day", "start": "14:00", "end": "20:00", "timezone": "UTC", "min_nodes": 12}
    pool = _pool(capacity={"per_node_rps": 0.25}, min_nodes=3, max_nodes=40, schedules=[schedule])
    config = _config(tmp_path, _replay(trace), pool)
    decisions = tmp_path / "decisions.csv"
    result = _backtest(
        config, "--pool", "gpu", "--warmup", "1d", "--json", "--decisions-out", str(decisions)
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(decisions.open()))
    times = pd.DatetimeIndex([r["timestamp"] for r in rows])
    desired = np.array([int(r["desired"]) for r in rows])
    inside = (times.hour >= 14) & (times.hour < 20)
    assert inside.any() and (~inside).any()
    assert desired.min() >= 3
    assert desired[inside].min() >= 12
    assert desired[~inside].min() < 12  # the floor binds only inside the window
    document = json.loads(result.stdout)
    assert document["pool"] == "gpu"
    assert document["policies"][0]["knobs"]["floor"] == 3


def test_unknown_pool_exits_2_naming_the_pools(tmp_path: Path) -> None:
    trace = _nasa_cut(tmp_path, 60)
    config = _config(tmp_path, _replay(trace), _pool(name="alpha"), _pool(name="beta"))
    result = _backtest(config, "--pool", "gamma")
    assert result.exit_code == 2
    assert "gamma" in result.output and "alpha, beta" in result.output


def test_bad_config_exits_2_naming_file_line_and_field(tmp_path: Path) -> None:
    trace = _nasa_cut(tmp_path, 60)
    config = _config(tmp_path, _replay(trace), _pool(min_nodes=-1))
    line = next(
        n for n, text in enumerate(config.read_text().splitlines(), 1) if "min_nodes" in text
    )
    result = _backtest(config, "--pool", "gpu")
    assert result.exit_code == 2
    assert f"{config}:{line}: pools[0].min_nodes" in result.output


def test_policy_options_are_refused_with_a_config(tmp_path: Path) -> None:
    trace = _nasa_cut(tmp_path, 60)
    config = _config(tmp_path, _replay(trace), _pool())
    result = _backtest(config, "--pool", "gpu", "--margin", "loop", "--boot-delay", "5m")
    assert result.exit_code == 2
    assert "--boot-delay" in result.output and "--margin" in result.output
    late = _backtest(config, "--pool", "gpu", "--burn-in", "soon")  # the pool's own run: taken
    assert late.exit_code == 2 and "--burn-in" in late.output


def test_a_variant_cheaper_at_the_target_is_recommended_with_its_config_lines(
    tmp_path: Path,
) -> None:
    trace = _flat_noisy(tmp_path, 3)
    predictor = {"kind": "seasonal", "params": {"service_target": 0.01}, "margin": "band"}
    config = _config(tmp_path, _replay(trace), _pool(predictor=predictor))
    result = _backtest(config, "--pool", "gpu", "--warmup", "2d", "--json")
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)["recommendations"]
    configured, *others = found["candidates"]
    assert configured["configured"] and (configured["margin"], configured["policy"]) == (
        "band",
        "forecast",
    )
    assert {(c["margin"], c["policy"]) for c in others} == {("widen", "auto"), ("loop", "auto")}
    chosen = found["recommended"]
    assert chosen["meets_target"]
    assert chosen["node_hours"] < configured["node_hours"]
    assert chosen["node_hours"] == min(c["node_hours"] for c in others if c["meets_target"])
    lines = yaml.safe_load(found["config_lines"])
    setting = {"margin": chosen["margin"], "policy": chosen["policy"]}
    assert lines == {"predictor": predictor | setting}
    document = yaml.safe_load(config.read_text())
    document["pools"][0].update(lines)  # in place of the pool's own block, as printed
    pasted = tmp_path / "pasted.yaml"
    pasted.write_text(yaml.safe_dump(document, sort_keys=False))
    assert runner.invoke(app, ["validate", "--config", str(pasted)]).exit_code == 0
    assert "hindsight" in found["note"]
    one_process = _backtest(config, "--pool", "gpu", "--warmup", "2d", "--json", "--jobs", "1")
    assert json.loads(one_process.stdout)["recommendations"] == found  # forked or not
    table = _backtest(config, "--pool", "gpu", "--warmup", "2d")
    assert table.exit_code == 0, table.output
    assert found["config_lines"] in table.stdout
    assert "hindsight" in table.stdout and "not a guarantee" in table.stdout


def test_no_recommendation_when_the_configured_pool_is_already_cheapest(tmp_path: Path) -> None:
    trace = _flat_noisy(tmp_path, 3)
    pool = _pool(predictor={"kind": "seasonal", "margin": "loop", "policy": "auto"})
    config = _config(tmp_path, _replay(trace), pool)
    result = _backtest(config, "--pool", "gpu", "--warmup", "2d", "--json")
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)["recommendations"]
    configured, *others = found["candidates"]
    assert [(c["margin"], c["policy"]) for c in others] == [("band", "forecast"), ("widen", "auto")]
    assert all(not c["meets_target"] or c["node_hours"] >= configured["node_hours"] for c in others)
    assert found["recommended"] is None and found["config_lines"] is None
    table = _backtest(config, "--pool", "gpu", "--warmup", "2d")
    assert "no other setting beats pool gpu as configured" in table.stdout
    assert "predictor: block" not in table.stdout and "predictor:\n" not in table.stdout


@pytest.mark.integration
def test_replays_the_pools_prometheus_history(
    prometheus_history: PrometheusWithHistory, tmp_path: Path
) -> None:
    """A real Prometheus (Debian's, backfilled with promtool) holds the pool's demand."""
    metrics = {"kind": "prometheus", "url": prometheus_history.url, "timeout": "10s"}
    pool = _pool(demand={"query": DEMAND_QUERY, "window": "1h"}, capacity={"per_node_rps": 0.05})
    config = _config(tmp_path, metrics, pool)
    before = datetime.now(UTC)
    result = _backtest(config, "--pool", "gpu", "--history", "2d", "--warmup", "1d", "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["trace"].startswith("gpu history")
    end = pd.Timestamp(document["end"])
    assert abs(end - pd.Timestamp(before).floor("1min")) <= pd.Timedelta(minutes=2)
    scored = pd.date_range(document["scored_from"], end - pd.Timedelta(minutes=1), freq="1min")
    expected = prometheus_history.expected_rate(scored).sum() * 60
    requests = document["policies"][0]["requests"]
    assert requests == pytest.approx(expected, rel=0.02)


@pytest.mark.integration
def test_unreachable_prometheus_exits_2_and_never_reads_as_zero(
    stopped_prometheus_url: str, tmp_path: Path
) -> None:
    metrics = {"kind": "prometheus", "url": stopped_prometheus_url, "timeout": "2s"}
    config = _config(tmp_path, metrics, _pool())
    result = _backtest(config, "--pool", "gpu", "--history", "2d", "--warmup", "1d")
    assert result.exit_code == 2
    assert "unreachable" in result.output or "cannot connect" in result.output


def test_the_pools_real_backend_and_overrides_are_never_touched(
    nomad_api: NomadApiDouble, tmp_path: Path
) -> None:
    """The pool's backend is the Nomad API double (it follows Nomad's HTTP API documents):
    the replay drives a simulated fleet, so the double sees no request at all; the
    overrides file is not read (it would not even parse)."""
    nomad_api.add_job("web-workers", {"gpu": 5})
    trace = _nasa_cut(tmp_path, 1440)
    backend = {"kind": "nomad_job", "job": "web-workers", "group": "gpu", "address": nomad_api.url}
    config = _config(
        tmp_path, _replay(trace), _pool(backend=backend, boot_time="20m", horizon="25m")
    )
    overrides = tmp_path / "overrides.yaml"
    overrides.write_text("overrides: [this is: not, an overrides file\n")
    document = yaml.safe_load(config.read_text())
    config.write_text(yaml.safe_dump({**document, "overrides_file": str(overrides)}))
    result = _backtest(config, "--pool", "gpu", "--warmup", "12h", "--json")
    assert result.exit_code == 0, result.output
    assert nomad_api.requests == []
    assert json.loads(result.stdout)["settings"]["boot_delay_s"] == 20 * 60


class _Answers:
    """A metrics source giving one fixed answer (the shape PrometheusSource returns)."""

    def __init__(self, series: pd.Series) -> None:
        self.series = series
        self.asked: list[tuple[datetime, datetime, timedelta]] = []

    def demand(self, query: str, start: datetime, end: datetime, step: timedelta) -> pd.Series:
        self.asked.append((start, end, step))
        return self.series


def test_history_gaps_stay_missing_and_stale_history_is_refused() -> None:
    end = datetime(2026, 3, 5, 12, 0, 30, tzinfo=UTC)
    times = pd.date_range("2026-03-05 10:00", "2026-03-05 12:00", freq="1min", tz="UTC")
    values = np.full(len(times), 4.0)
    values[30] = np.nan
    answer = pd.Series(values, index=times).drop(times[60:70])
    pool = Pool.model_validate(_pool())
    source = _Answers(answer)
    series = pool_history(source, pool, end, timedelta(hours=2), timedelta(minutes=5))
    assert source.asked == [(datetime(2026, 3, 5, 10, tzinfo=UTC), end.replace(second=0), MINUTE)]
    assert len(series) == len(times) and series.index.equals(times)
    assert series.isna().sum() == 11 and (series.dropna() == 4.0).all()
    stale = _Answers(answer[answer.index < times[100]])
    with pytest.raises(MetricsError) as raised:
        pool_history(stale, pool, end, timedelta(hours=2), timedelta(minutes=5))
    assert raised.value.kind == "stale"


def test_capacity_and_boot_time_come_from_the_pools_profile_unless_overridden(
    tmp_path: Path,
) -> None:
    trace = _nasa_cut(tmp_path, 1440)
    profile = tmp_path / "profile.yaml"
    profile.write_text("per_node_rps: 0.3\nstartup_p90_s: 300\n")
    capacity = {"profile": str(profile), "startup_in_boot_time": True}
    pool = _pool(capacity=capacity, boot_time="10m", horizon="20m")
    config = _config(tmp_path, _replay(trace), pool)
    result = _backtest(config, "--pool", "gpu", "--warmup", "12h", "--json")
    assert result.exit_code == 0, result.output
    settings = json.loads(result.stdout)["settings"]
    assert settings["per_node_rps"] == 0.3
    assert settings["boot_delay_s"] == 15 * 60  # 10 min boot + the profile's 5 min start-up
    assert (settings["service_target"], settings["latency_target_s"]) == (0.01, 3.0)
    arguments = ["--per-node-rps", "0.5", "--service-target", "0.05", "--latency-target", "1s"]
    overridden = _backtest(config, "--pool", "gpu", "--warmup", "12h", "--json", *arguments)
    assert overridden.exit_code == 0, overridden.output
    settings = json.loads(overridden.stdout)["settings"]
    assert settings["per_node_rps"] == 0.5
    assert (settings["service_target"], settings["latency_target_s"]) == (0.05, 1.0)


def test_targets_tick_and_limits_come_from_the_pool_and_its_predictor(tmp_path: Path) -> None:
    trace = _nasa_cut(tmp_path, 60)
    predictor = {
        "kind": "seasonal",
        "params": {"service_target": 0.05, "latency_target_s": 2.0},
        "margin": "loop",
        "policy": "auto",
    }
    pool = _pool(predictor=predictor, scale_up={"max_step": 4}, boot_time="5m")
    path = _config(tmp_path, _replay(trace), pool)
    document = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**document, "interval": "2m"}))
    config, loaded, per_node_rps = load_pool(path, "gpu")
    run = PoolRun(path, "gpu", None, timedelta(days=14), timedelta(hours=12))
    settings = pool_settings(config, loaded, per_node_rps, run)
    assert (settings.service_target, settings.latency_target_s) == (0.05, 2.0)
    assert (settings.margin, settings.policy, settings.predictor_kind) == (
        "loop",
        "auto",
        "seasonal",
    )
    assert settings.tick == timedelta(minutes=2) and settings.boot_delay == timedelta(minutes=5)
    assert settings.scale_up_max_step == 4 and not settings.tune
    assert settings.burn_in == timedelta(hours=1)  # a pool just started, unless asked
    settled = pool_settings(config, loaded, per_node_rps, replace(run, burn_in=run.warmup))
    assert settled.burn_in == timedelta(hours=12)


@pytest.mark.parametrize(
    ("top", "pool", "field", "written"),
    [
        ({"interval": "30s"}, {}, "interval", "30s"),
        ({}, {"boot_time": "90s"}, "pools[gpu].boot_time", "90s"),
    ],
)
def test_a_setting_off_whole_minutes_is_refused_naming_the_configs_field(
    tmp_path: Path, top: dict[str, Any], pool: dict[str, Any], field: str, written: str
) -> None:
    """A daemon setting the minute replay cannot step is named as the config names it
    (file, field, value as written), not as the backtest's own 'tick'/'boot delay'."""
    trace = _nasa_cut(tmp_path, 60)
    config = _config(tmp_path, _replay(trace), _pool(**pool))
    document = yaml.safe_load(config.read_text()) | top
    config.write_text(yaml.safe_dump(document, sort_keys=False))
    result = _backtest(config, "--pool", "gpu")
    assert result.exit_code == 2
    assert f"{config.name}: {field}: {written} is not whole minutes" in result.output


def test_signals_the_replay_leaves_out_are_said(tmp_path: Path) -> None:
    """A pool's gpu_utilization, latency and node_count signals (and a queue_depth one
    without a trace's queue_depth column) are not replayed: the pool could look cheaper
    than it runs, and nothing said so. The text and the JSON name them."""
    trace = _nasa_cut(tmp_path, 1440)
    signals = [
        {"name": "gpu", "kind": "gpu_utilization", "query": "avg(gpu)", "target": 70},
        {"name": "backlog", "kind": "queue_depth", "query": "sum(q)", "drain_within": "1m"},
    ]
    metrics = {"kind": "prometheus", "url": "http://127.0.0.1:9"}
    config = _config(tmp_path, metrics, _pool(signals=signals))
    options = ["--pool", "gpu", "--trace", str(trace), "--warmup", "12h"]
    shown = _backtest(config, *options)
    assert shown.exit_code == 0, shown.output
    flat = " ".join(shown.output.split())
    assert "not replayed: the pool's signals gpu (gpu_utilization), backlog (queue_depth)" in flat
    document = json.loads(_backtest(config, *options, "--json").stdout)
    assert document["signals_not_replayed"] == ["gpu (gpu_utilization)", "backlog (queue_depth)"]
    plain = _config(tmp_path, metrics, _pool())
    assert "not replayed" not in _backtest(plain, *options).output


def test_an_unreadable_prometheus_credential_is_said_at_its_file_line_and_field(
    tmp_path: Path,
) -> None:
    """`run` and `validate` locate an unset bearer_token_env at its line; the backtest of
    the pool's history said only the field, naming neither file nor line. Nothing is
    asked of the (stopped) server: the credential stops the run first."""
    variable = "BTPROM_QX7_TOKEN_UNSET"
    metrics = {"kind": "prometheus", "url": "http://127.0.0.1:9", "bearer_token_env": variable}
    config = _config(tmp_path, metrics, _pool())
    line = config.read_text().splitlines().index(f"  bearer_token_env: {variable}") + 1
    result = runner.invoke(
        app,
        ["backtest", "--config", str(config), "--pool", "gpu", "--history", "2d"],
        env={variable: None},
    )
    assert result.exit_code == 2
    flat = " ".join(result.output.split())
    assert f"{config}:{line}: metrics.bearer_token_env: environment variable {variable}" in flat


def test_a_plain_http_proxy_that_would_see_the_prometheus_token_stops_it_as_run(
    tmp_path: Path,
) -> None:
    """`run` refuses to start where HTTP_PROXY, a plain-http proxy on another host, would
    relay the metrics block's bearer token (common.transport.proxy_finding); the
    backtest of the pool's history sent its queries, token and all, through it. The
    proxy is a TEST-NET address: nothing is asked of it, or of Prometheus."""
    variable, token = "BTPROM_QX7_TOKEN", "tok-Vq83Rm1Zk9Pw"
    metrics = {
        "kind": "prometheus",
        "url": "http://127.0.0.1:9",
        "timeout": "2s",
        "bearer_token_env": variable,
    }
    config = _config(tmp_path, metrics, _pool())
    proxy = "http://192.0.2.1:3128"
    result = runner.invoke(
        app,
        ["backtest", "--config", str(config), "--pool", "gpu", "--history", "2d"],
        env={variable: token, "HTTP_PROXY": proxy, "http_proxy": proxy}
        | {"NO_PROXY": None, "no_proxy": None},
    )
    assert result.exit_code == 2
    flat = " ".join(result.output.split())
    assert "metrics: url http://127.0.0.1 would go through the plain-http proxy" in flat
    assert "allow_insecure: true" in flat and token not in result.output
