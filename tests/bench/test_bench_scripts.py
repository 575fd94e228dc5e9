"""The bench scripts still run end to end, and what they print adds up.

Each script runs as a user runs it (a subprocess from the repository root) on small
synthetic traces (a daily cycle with Poisson counts), named like the shared traces
so that each picks its per-node capacity: figures on real traces are for the notes,
not for tests. The checks are on the scripts' own arithmetic: the ratio and the goal
they print follow from the results they report.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]


def daily_trace(folder: Path, name: str, days: int, seed: int) -> None:
    """Minute counts around a daily sine (peak at 14:00 UTC), in the shared traces' format."""
    rng = np.random.default_rng(seed)
    index = pd.date_range("2025-01-06", periods=days * 1440, freq="min", tz="UTC")
    minute_of_day = (index.hour * 60 + index.minute).to_numpy()
    rate = 40.0 + 25.0 * np.sin(2 * np.pi * (minute_of_day - 480) / 1440)
    frame = pd.DataFrame(
        {"timestamp": index.strftime("%Y-%m-%dT%H:%M:%SZ"), "requests": rng.poisson(rate)}
    )
    frame.to_csv(folder / f"{name}.csv", index=False)


def run_script(script: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, f"bench/{script}", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def traces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("traces")
    daily_trace(folder, "nasa_jul95", days=8, seed=3)  # 7 days of warmup, one day scored
    daily_trace(folder, "servegen_msmall", days=14, seed=4)  # forecast_accuracy needs 14
    return folder


def test_backtest_targets_prints_the_ratio_of_the_results_it_writes(
    traces: Path, tmp_path: Path
) -> None:
    out = tmp_path / "report.json"
    printed = run_script(
        "backtest_targets.py",
        *("--traces", str(traces), "--only", "nasa_jul95"),
        *("--json", str(out), "--plots", str(tmp_path)),
    )
    (document,) = json.loads(out.read_text())
    results = {p["name"]: p for p in document["policies"]}
    assert set(results) == {"policy", "oracle", "static", "hpa", "linear-20m", "seasonal-naive"}
    oracle = results.pop("oracle")["node_hours"]
    assert all(p["node_hours"] >= oracle for p in results.values())
    policy = results.pop("policy")
    meeting = [p for p in results.values() if p["meets_target"]]
    best = min(meeting, key=lambda p: p["node_hours"])
    ratio = policy["node_hours"] / best["node_hours"]
    assert f"{ratio:.3f} × {best['name']}" in printed
    (summary,) = [line for line in printed.splitlines() if line.split()[:1] == ["nasa_jul95"]]
    verdict = "met" if policy["meets_target"] and ratio <= 0.9 else "NOT met"
    assert summary.split()[1:3] == [f"{ratio:.3f}", verdict.split()[0]]
    assert (tmp_path / "backtest_nasa.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_headroom_bounds_states_the_goal_of_the_best_baseline_it_lists(traces: Path) -> None:
    printed = run_script("headroom_bounds.py", "--traces", str(traces), "--only", "nasa_jul95")
    rows = {
        cells[0]: cells[1:]
        for line in printed.splitlines()
        if len(cells := [c.strip() for c in line.strip("│ ").split("│")]) == 5
    }
    for rule in ("persistence", "volatility", "hour-to-come", "last + hour-to-come"):
        assert rule in rows, printed
    goal = re.search(r"goal: ≤ 0\.9 × (\S+) = ([\d,]+) node-hours", printed)
    assert goal is not None, printed
    best_hours = float(rows[goal.group(1)][1].replace(",", ""))
    assert rows[goal.group(1)][2] == "1.000"  # the best baseline is the ratios' reference
    assert float(goal.group(2).replace(",", "")) == pytest.approx(0.9 * best_hours, abs=1.0)


def test_forecast_accuracy_scores_the_seasonal_forecaster_above_seasonal_naive(
    traces: Path,
) -> None:
    """On a clean daily cycle the seasonal forecaster's error is the counts' own noise,
    while a day-old copy carries that noise twice: a lower MASE at both leads."""
    printed = run_script("forecast_accuracy.py", "--traces", str(traces), "--every", "240")
    mase = {
        line[21:45].strip(): [float(x) for x in line[45:].split()[:2]]
        for line in printed.splitlines()
        if line.startswith("servegen_msmall")
    }
    assert set(mase) == {"seasonal-naive (1 day)", "seasonal", "linear (seed)"}
    assert "nasa_jul95" not in printed  # 8 days: under the 14 the script asks for
    for lead in (0, 1):
        assert mase["seasonal"][lead] < mase["seasonal-naive (1 day)"][lead]


def test_predictor_speed_runs_on_a_few_pools() -> None:
    printed = run_script(
        "predictor_speed.py", "--pools", "3", "--repeats", "3", "--backtest-days", "0.2"
    )
    assert re.search(r"seasonal [\d.]+ ms .* linear [\d.]+ ms", printed), printed
    first = r"3 pools in one tick .* linear predictor [\d.]+ s \([\d.]+ s CPU\), ratio [\d.]+ \("
    assert re.search(first + r"[\d.]+ in CPU", printed), printed
    assert re.search(r"full replay at once, quick_first_fit off: [\d.]+ s CPU", printed), printed
    assert re.search(r"peak RSS grew \d+ MiB over that tick, \d+ kB per fitted pool", printed)
    assert re.search(r"steady tick of 3 pools .* 0 refits due.* ratio [\d.]+", printed), printed
    together = r"worst tick .*\(refit_phase 0,.* [\d.]+ s CPU .* 3 refits in it; at most 3 in"
    assert re.search(together, printed), printed
    staggered = re.search(r"worst tick .* staggered by pool name.* at most (\d+) in one", printed)
    assert staggered and int(staggered[1]) < 3, printed  # not all three on one tick
    assert re.search(r"backtest of one pool, 0.2 d .* seasonal [\d.]+ s, linear [\d.]+ s", printed)


def test_first_tick_compares_the_same_decisions_with_and_without_workers() -> None:
    """3 pools, one run: the workers' decisions equal one process's, and the ratio it
    prints is the one its two wall times give."""
    printed = run_script("first_tick.py", "--pools", "3", "--repeats", "1", "--workers", "2")
    one = re.search(r"one process: +([\d.]+) s wall", printed)
    two = re.search(r"2 fit workers: +([\d.]+) s wall .* ([\d.]+) x one process", printed)
    assert one and two, printed
    assert float(two[2]) == pytest.approx(float(two[1]) / float(one[1]), rel=0.05), printed
    assert "decisions that differ from one process's: 0 of 3" in printed, printed
    steady = printed.split("steady ticks")[1]  # 15 a minute apart, the refits in workers
    one = re.search(r"one process: +([\d.]+) s wall", steady)
    two = re.search(r"2 fit workers: +([\d.]+) s wall .* ([\d.]+) x one process", steady)
    assert one and two, printed
    assert "decisions that differ from one process's: 0 of 45" in steady, printed
    assert re.search(r"the daemon's own tick.* [\d.]+ s wall, [\d.]+ x linear's", steady)
    assert "its forecasts that differ from one process's: 0 of 45" in steady, printed


def test_week_old_tick_prints_each_configuration_and_the_ratio_its_medians_give() -> None:
    """32 pools (the fewest the daemon starts workers for), 3 ticks after a week is kept:
    three rows, and one with none kept, each with its ticks, and the ratios the medians
    give."""
    printed = run_script("week_old_tick.py", "--pools", "32", "--ticks", "3", "--workers", "2")
    found = r"(a week|none) kept, median of 3: ([\d.]+) s wall, worst ([\d.]+) s.*; (\d+) pools"
    rows = re.findall(found, printed)
    assert [row[0] for row in rows] == ["a week", "a week", "a week", "none"], printed
    assert all(float(median) <= float(worst) for _, median, worst, _ in rows), printed
    assert len({row[3] for row in rows[:3]}) == 1, printed  # the same phases: the same due
    assert rows[3][3] == "0", printed  # none kept: none to recalibrate on
    ratios = re.search(
        r"median ([\d.]+) s: ([\d.]+) x linear's .*, ([\d.]+) x one process's .*, "
        r"([\d.]+) x none kept",
        printed,
    )
    assert ratios, printed
    ours, alone, linear, fresh = (float(row[1]) for row in rows)
    assert float(ratios[1]) == ours
    for ratio, baseline in zip(ratios.groups()[1:], (linear, alone, fresh), strict=True):
        assert float(ratio) == pytest.approx(ours / baseline, rel=0.05), printed


@pytest.mark.integration
def test_demand_read_gets_the_same_answers_both_ways_from_a_real_prometheus() -> None:
    printed = run_script("demand_read.py", "--ticks", "3", "--days", "1")
    found = re.search(
        r"whole window ([\d.]+) ms, kept window ([\d.]+) ms .*, (\d+) x less", printed
    )
    assert found, printed
    assert abs(int(found[3]) - float(found[1]) / float(found[2])) <= 1, printed  # rounded
    assert "answers that differ: 0 of 3" in printed, printed


def test_loop_speed_adds_up_the_worst_tick_it_prints() -> None:
    """One trace fed a week and a day under `margin: loop`, 3 pools, a 0.2-day month:
    each line is printed, and the worst tick is the sum of the parts it names."""
    printed = run_script(
        "loop_speed.py", "--pools", "3", "--backtest-days", "0.2", "--only", "alibaba_genai_lora"
    )
    configurations = (("loop", "forecast"), ("loop", "auto"), ("widen", "auto"))
    for margin, policy in configurations:
        line = rf"one recalibration .* margin {margin}, policy {policy}: [\d.]+ ms CPU .* x the"
        assert re.search(line, printed), printed
    fleet = re.search(
        r"3 pools: at most (\d+) recalibrations .* steady tick ([\d.]+) s CPU, .* ~([\d.]+) s",
        printed,
    )
    assert fleet and 1 <= int(fleet[1]) <= 3, printed
    kept = re.search(r"memory a pool keeps for its week of ticks: ([\d.]+) MB", printed)
    assert kept and float(kept[1]) > 0, printed
    for margin, policy in configurations:
        worst = re.search(
            rf"worst tick under margin {margin}, policy {policy}: ([\d.]+) s CPU \(its \d+ "
            r"recalibrations ([\d.]+) s\)",
            printed,
        )
        assert worst, printed
        parts = float(fleet[2]) + float(fleet[3]) + float(worst[2])
        assert float(worst[1]) == pytest.approx(parts, abs=0.02), printed
    backtest = (
        r"backtest of one pool, 0.2 d .* band [\d.]+ s, loop with policy forecast [\d.]+ s .*"
        r" loop with policy auto [\d.]+ s .* widen with policy auto [\d.]+ s"
    )
    assert re.search(backtest, printed), printed


def test_backtest_untuned_scores_every_target_and_extra_trace(traces: Path, tmp_path: Path) -> None:
    """Three targets on nasa_jul95, one on an extra file, nasa_jul95's stress variants and
    a 4-day trace played twice with its variants, at 1 %; each verdict follows from its row."""
    extra = tmp_path / "extra"
    extra.mkdir()
    daily_trace(extra, "unseen", days=8, seed=5)
    daily_trace(traces, "four_days", days=4, seed=6)
    out = tmp_path / "rows.json"
    printed = run_script(
        "backtest_untuned.py",
        *("--traces", str(traces), "--only", "nasa_jul95", "--jobs", "1"),
        *("--json", str(out), "--variants", "nasa_jul95", str(extra / "unseen.csv")),
        *("--twice", "four_days"),
    )
    rows = json.loads(out.read_text())
    assert [(r["trace"], r["target"]) for r in rows] == [
        ("nasa_jul95", 0.01),
        ("nasa_jul95", 0.001),
        ("nasa_jul95", 0.05),
        ("unseen", 0.01),
        *((f"nasa_jul95_{v}", 0.01) for v in ("step2x", "ramp3x", "phase7h", "spikeday4x")),
        ("nasa_jul95_campaigns3x", 0.01),
        ("four_days_twice", 0.01),
        *((f"four_days_twice_{v}", 0.01) for v in ("step2x", "ramp3x", "phase7h", "spikeday4x")),
        ("four_days_twice_campaigns3x", 0.01),
    ]
    for row in rows:
        meets = row["late"] <= row["target"]
        spends = row["late"] >= 0.5 * row["target"]
        cheap = row["ratio"] is not None and row["ratio"] <= 0.9
        assert (row["verdict"] == "MET") == (meets and spends and cheap)
        if meets and row["ratio"] is not None:  # no fleet that meets it costs under the least
            assert 0 < row["least"] <= row["ratio"]
            assert row["first_week"] is not None
        shown = "-" if row["ratio"] is None else f"{row['ratio']:.3f}"
        line = f"│ {row['trace']} ".ljust(10)
        assert any(
            line.strip() in text and f"{row['late']:.3%}" in text and shown in text
            for text in printed.splitlines()
        )


def test_replay_speed_prints_the_ratio_of_the_times_it_prints(traces: Path) -> None:
    """One replay of a 7-day window, decide() beside replay_decide: the same counts and
    late share (the script fails otherwise), and the ratio is the two times'."""
    printed = run_script(
        "replay_speed.py",
        *("--traces", str(traces), "--trace", "servegen_msmall"),
        "--repeats",
        "1",
    )
    assert "servegen_msmall: 10,080 ticks" in printed
    assert "counts identical: 10,080 ticks" in printed and "late share identical" in printed
    for label in ("replay_counts", "replay_late"):
        found = re.search(
            rf"{label}: decide\(\) ([\d.]+) ms, replay_decide ([\d.]+) ms, ratio ([\d.]+)x", printed
        )
        assert found, printed
        old, new, ratio = (float(x) for x in found.groups())
        assert ratio == pytest.approx(old / new, rel=0.05, abs=0.1)


def day_rows(printed: str) -> tuple[list[list[str]], list[str]]:
    """budget_by_day.py's table: its day rows' cells, and its total row's."""
    rows = [
        [c.strip() for c in line.strip("│ ").split("│")]
        for line in printed.splitlines()
        if line.startswith("│")
    ]
    (total,) = [r for r in rows if r[0] == "all"]
    return [r for r in rows if r[0] != "all"], total


def test_budget_by_day_adds_up_to_the_late_share_of_the_run(tmp_path: Path) -> None:
    """Two scored days, the second with a burst that the fleet cannot boot for in time:
    the days' late requests add up to the total row, which is the run's own late share."""
    daily_trace(tmp_path, "nasa_jul95", days=9, seed=5)
    path = tmp_path / "nasa_jul95.csv"
    frame = pd.read_csv(path)
    burst = slice(8 * 1440 + 600, 8 * 1440 + 630)  # day 8, 10:00-10:30 UTC
    frame.loc[burst, "requests"] = frame.loc[burst, "requests"] * 6
    frame.to_csv(path, index=False)
    printed = run_script("budget_by_day.py", str(path))
    run = re.search(r"policy by day: ([\d.]+)% late over the run", printed)
    days, total = day_rows(printed)
    assert run and len(days) == 2, printed
    late = [float(r[2].replace(",", "")) for r in days]
    assert late[1] > late[0] and late[1] > 0, printed  # the burst day is late
    assert sum(late) == pytest.approx(float(total[2].replace(",", "")), abs=0.15)
    assert total[3] == f"{run[1]}%"
    requests = sum(float(r[1].replace(",", "")) for r in days)
    assert float(total[1].replace(",", "")) == pytest.approx(requests, abs=2)


def test_budget_by_day_sets_the_cheapest_anchor_beside_each_day(tmp_path: Path) -> None:
    """`--anchors`: the anchor that meets the target at the least cost is named, and each
    day's ratio (and the total's) is the policy's mean count over the anchor's that day."""
    daily_trace(tmp_path, "nasa_jul95", days=9, seed=5)
    printed = run_script("budget_by_day.py", str(tmp_path / "nasa_jul95.csv"), "--anchors")
    assert re.search(r"┃ (static|hpa|linear-20m|seasonal-naive) nodes ┃", printed), printed
    days, total = day_rows(printed)
    assert len(days) == 2, printed
    for row in [*days, total]:
        mine, theirs, ratio = float(row[5]), float(row[6]), float(row[7])
        assert ratio == pytest.approx(mine / theirs, rel=0.005), row  # counts shown to 0.1


def test_budget_by_day_plays_a_trace_twice_at_its_sources_capacity(tmp_path: Path) -> None:
    """`--twice`: five days played twice are ten, three of them scored after the week of
    warm-up; the nodes are the source's (alibaba_genai_lora: 2 requests a minute each, so
    about 100 for 200 a minute), not those a `_twice` file's name would pick (mean / 20:
    about 20)."""
    daily_trace(tmp_path, "alibaba_genai_lora", days=5, seed=3)
    path = tmp_path / "alibaba_genai_lora.csv"
    frame = pd.read_csv(path)
    frame["requests"] = frame["requests"] * 5
    frame.to_csv(path, index=False)
    printed = run_script("budget_by_day.py", str(path), "--twice")
    days, total = day_rows(printed)
    assert len(days) == 3, printed
    assert days[0][0].startswith("2025-01-13"), printed  # a week after the first minute
    assert float(total[5]) > 60, printed


def test_week_io_prints_ratios_that_follow_from_its_figures() -> None:
    """The week file's cost: each ratio is its figure over the baseline it printed."""
    out = run_script("week_io.py", "--pools", "5")
    line = float(re.search(r"save_pool\): ([\d.]+) ms", out).group(1))  # type: ignore[union-attr]
    rows = re.findall(r"(write|read|take up): ([\d.]+) ms a pool .*?, ([\d.]+) x the line", out)
    assert [what for what, _, _ in rows] == ["write", "read", "take up"]
    for _, ms, ratio in rows:
        assert float(ratio) == pytest.approx(float(ms) / line, rel=0.04, abs=0.01)  # as printed


def test_restarts_with_the_week_score_as_no_restart(tmp_path: Path) -> None:
    """Four days scored, restarted every 7 hours, before the first calibration and after:
    with the week taken up, the rows are those of the run without restarts."""
    daily_trace(tmp_path, "servegen_msmall", days=11, seed=4)
    common = ("--traces", str(tmp_path), "--only", "servegen_msmall", "--jobs", "1")
    run_script("backtest_untuned.py", *common, "--json", str(tmp_path / "none.json"))
    printed = run_script(
        "restarts.py", "--every", "0.3", *common, "--json", str(tmp_path / "r.json")
    )
    assert "restarted every 0.3 d, with the week" in printed
    baseline, restarted = (json.loads((tmp_path / f).read_text()) for f in ("none.json", "r.json"))
    assert [(r["late"], r["node_hours"]) for r in restarted] == [
        (r["late"], r["node_hours"]) for r in baseline
    ]
