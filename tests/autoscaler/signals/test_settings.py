"""The signals' settings: the shipped example validates, and mistakes name file, line
and field (a utilization over 100 %, a repeated name, signals on a replayed trace)."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoscaler.config.loader import load_config
from autoscaler.config.problems import ConfigError
from autoscaler.config.validate import validate_files
from tests.autoscaler.config.test_loader import assert_reported, line_of

EXAMPLE = Path(__file__).parents[3] / "config" / "signals.example.yaml"


def test_the_example_has_all_four_signals_and_a_capacity_check_and_validates(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the Slack token autoscaler.env.example lists (run would not start without it)."""
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-example")
    config, problems = validate_files(EXAMPLE)
    assert problems == [] and config is not None
    (pool,) = config.pools
    assert [s.kind for s in pool.signals] == [
        "queue_depth",
        "gpu_utilization",
        "latency",
        "node_count",
    ]
    assert pool.signals[2].query.startswith("histogram_quantile(0.95,")
    assert pool.capacity_check is not None and pool.capacity_check.utilization_query


def _copy(tmp_path: Path, old: str, new: str) -> tuple[Path, str]:
    text = EXAMPLE.read_text()
    assert old in text
    text = text.replace(old, new, 1)
    path = tmp_path / "signals.yaml"
    path.write_text(text)
    return path, text


@pytest.mark.parametrize(
    ("old", "new", "anchor", "field", "words"),
    [
        (
            "        target: 70",
            "        target: 130",
            "target: 130",
            "pools[0].signals[1].target",
            ["less than or equal to 100"],
        ),
        (  # a ratio for percent: a GPU at 60 % read against 0.7 % asked for 86 x the nodes
            "        target: 70",
            "        target: 0.7",
            "target: 0.7",
            "pools[0].signals[1].target",
            ["is in percent (0-100): 0.7 is 0.7 %, not 70 %; write 70"],
        ),
        (
            "      busy_above: 80 ",
            "      busy_above: 0.8 ",
            "busy_above: 0.8",
            "pools[0].capacity_check.busy_above",
            ["is in percent (0-100)", "write 80"],
        ),
        (
            "        drain_within: 30s",
            "        drain_within: 0s",
            "drain_within: 0s",
            "pools[0].signals[0].drain_within",
            ["must be more than 0"],
        ),
        (
            "        kind: node_count",
            "        kind: node_counts",
            "kind: node_counts",
            "pools[0].signals[3].kind",
            ["unknown kind 'node_counts'", "'node_count'"],
        ),
        (  # Prometheus answers 400 "no expression found" to a blank query, every tick
            "        query: max(face_match_nodes_planned)",
            "        query: ' '",
            "query: ' '",
            "pools[0].signals[3].query",
            ["is empty: give a PromQL expression"],
        ),
        (
            '      query: sum(rate(http_requests_total{service="face-match"}[2m]))',
            '      query: ""',
            'query: ""',
            "pools[0].demand.query",
            ["is empty"],
        ),
        (
            "        add_nodes: 1",
            "        add_nodes: 1000000000000",
            "add_nodes: 1000000000000",
            "pools[0].signals[2].add_nodes",
            ["less than or equal to 1000000"],
        ),
        (
            "      tolerance: 0.2 ",
            "      tolerance: 1.5 ",
            "tolerance: 1.5",
            "pools[0].capacity_check.tolerance",
            ["less than 1"],
        ),
    ],
)
def test_a_bad_signal_setting_names_file_line_and_field(
    tmp_path: Path, old: str, new: str, anchor: str, field: str, words: list[str]
) -> None:
    path, text = _copy(tmp_path, old, new)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert_reported(caught.value, path, line_of(text, anchor), field, *words)


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        (
            '        query: avg(DCGM_FI_DEV_GPU_UTIL{service="face-match"})',
            '        query: avg(DCGM_FI_PROF_GR_ENGINE_ACTIVE{service="face-match"})',
            "pools[0].signals[1].query",
        ),
        (
            '      utilization_query: avg(DCGM_FI_DEV_GPU_UTIL{service="face-match"})',
            '      utilization_query: max(vllm:gpu_cache_usage_perc{model_name="face"})',
            "pools[0].capacity_check.utilization_query",
        ),
    ],
)
def test_a_utilization_query_giving_a_fraction_is_refused_not_read_100_times_low(
    tmp_path: Path, old: str, new: str, field: str
) -> None:
    """DCGM's profiling fields (DCGM_FI_PROF_GR_ENGINE_ACTIVE, ...) and vLLM's cache usage
    are ratios 0-1: read as percent, a GPU at 95 % is 0.95 %, the signal asks for one node
    and the capacity check never sees a busy sample. Scaled by 100, they are accepted."""
    path, text = _copy(tmp_path, old, new)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    metric = new.split("(")[1].split("{")[0]
    anchor = new.strip()
    assert_reported(caught.value, path, line_of(text, anchor), field, metric, "0-1", "by 100")

    scaled = new.replace("query: ", "query: 100 * ")
    path, _ = _copy(tmp_path, old, scaled)
    assert load_config(path).pools[0].name == "face-match"


@pytest.mark.parametrize(
    ("query", "metric", "scaled"),
    [
        (  # Triton's cumulative queue time over its successes: microseconds a request
            "sum(rate(nv_inference_queue_duration_us[5m])) / "
            "sum(rate(nv_inference_request_success[5m]))",
            "nv_inference_queue_duration_us",
            " / 1e6",
        ),
        (  # Triton's time-to-first-response histogram, in milliseconds
            "histogram_quantile(0.95, sum by (le) "
            "(rate(nv_inference_first_response_histogram_ms_bucket[5m])))",
            "nv_inference_first_response_histogram_ms_bucket",
            " / 1000",
        ),
        (  # Knative's queue-proxy histogram, in milliseconds though its name says not
            "histogram_quantile(0.95, sum by (le) "
            '(rate(revision_app_request_latencies_bucket{service_name="face"}[5m])))',
            "revision_app_request_latencies_bucket",
            " / 1000",
        ),
    ],
)
def test_a_latency_query_in_milli_or_microseconds_is_refused_not_read_as_seconds(
    tmp_path: Path, query: str, metric: str, scaled: str
) -> None:
    """The latency signal takes seconds: 1.5 ms of Triton queue time read as 1,500 s is
    always slower than a 2 s target, and the guard adds a node every tick up to
    max_nodes. Divided into seconds, the query is accepted."""
    text = EXAMPLE.read_text()
    start = text.index("        query: >-\n          histogram_quantile")
    end = text.index("        target: 2s", start)
    path = tmp_path / "signals.yaml"
    path.write_text(text[:start] + f"        query: {query}\n" + text[end:])
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    line = line_of(path.read_text(), f"query: {query}")
    assert_reported(caught.value, path, line, "pools[0].signals[2].query", metric, "seconds")

    path.write_text(text[:start] + f"        query: ({query}){scaled}\n" + text[end:])
    assert load_config(path).pools[0].signals[2].kind == "latency"


def test_signal_names_are_unique(tmp_path: Path) -> None:
    path, _ = _copy(tmp_path, "      - name: gpu\n", "      - name: backlog\n")
    with pytest.raises(ConfigError, match="signal names must be unique; repeated: backlog"):
        load_config(path)


def test_signals_on_a_replayed_trace_are_refused(tmp_path: Path) -> None:
    path, _ = _copy(
        tmp_path,
        "  kind: prometheus\n  url: https://prometheus.internal:9090\n",
        "  kind: replay\n  trace: trace.csv\n",
    )
    with pytest.raises(ConfigError, match="need a Prometheus metrics source"):
        load_config(path)
