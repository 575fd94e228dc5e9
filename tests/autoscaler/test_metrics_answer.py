"""autoscaler.metrics_answer: the parts of Prometheus's answer read apart from the call.

Its hooks are run through PrometheusSource against the Prometheus API double (tests in
tests/autoscaler/test_metrics_prometheus.py and tests/faults/test_odd_answers.py); the
pure URL wording is tested here.
"""

from __future__ import annotations

from autoscaler.metrics_answer import redact_url


def test_redact_url_keeps_only_scheme_host_port_path() -> None:
    assert redact_url("https://u:p@prom.example:9090/x?y=1#z") == "https://prom.example:9090/x"
    assert redact_url("http://[::1]:9090") == "http://[::1]:9090"
