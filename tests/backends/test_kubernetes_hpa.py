"""Another autoscaler on a Kubernetes workload: KubernetesWorkload.other_autoscalers through
the real `kubernetes` client (AutoscalingV2Api) against the API double's autoscaling/v2
HorizontalPodAutoscalers (tests/doubles/kubernetes_hpas.py)."""

from __future__ import annotations

import time

import pytest

from backends.base import BackendError, other_autoscalers
from tests.backends.test_kubernetes import NAME, make_backend
from tests.doubles.kubernetes_api import DOUBLE_TOKEN, KubernetesApiDouble, kubernetes_api

__all__ = ["kubernetes_api"]  # the fixture, used by name below

HPAS = "/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers"


@pytest.fixture
def deployment(kubernetes_api: KubernetesApiDouble):
    return kubernetes_api.add_deployment(NAME, replicas=4, ready=4)


def test_an_hpa_on_the_deployment_is_named_with_how_to_remove_it(
    kubernetes_api: KubernetesApiDouble, deployment, tmp_path
) -> None:
    hpas = kubernetes_api.hpas
    hpas.add("default", "face-match-cpu", ("deployments", NAME), min_replicas=2, max_replicas=12)
    hpas.add("default", "other", ("deployments", "other-app"))  # another workload
    hpas.add("default", "same-name-sts", ("statefulsets", NAME))  # same name, other kind
    hpas.add("ml", "elsewhere", ("deployments", NAME))  # another namespace
    found = other_autoscalers(make_backend(kubernetes_api, tmp_path))
    assert found == [
        "HorizontalPodAutoscaler 'face-match-cpu' (2 to 12 replicas): "
        "kubectl delete hpa face-match-cpu -n default"
    ]
    (request,) = kubernetes_api.requests
    assert (request.method, request.path) == ("GET", HPAS)
    assert request.headers["authorization"] == f"Bearer {DOUBLE_TOKEN}"


def test_none_found_is_an_empty_list(kubernetes_api: KubernetesApiDouble, deployment, tmp_path):
    assert make_backend(kubernetes_api, tmp_path).other_autoscalers() == []


def test_a_statefulset_is_matched_by_its_kind(kubernetes_api: KubernetesApiDouble, tmp_path):
    kubernetes_api.add_statefulset(NAME, replicas=2)
    kubernetes_api.hpas.add("default", "sts-hpa", ("statefulsets", NAME))
    kubernetes_api.hpas.add("default", "deploy-hpa", ("deployments", NAME))
    backend = make_backend(kubernetes_api, tmp_path, workload="statefulset")
    (found,) = backend.other_autoscalers()
    assert found.startswith("HorizontalPodAutoscaler 'sts-hpa' (1 to 10 replicas)")


def test_an_hpa_whose_behavior_disables_both_directions_does_not_act(
    kubernetes_api: KubernetesApiDouble, deployment, tmp_path
) -> None:
    hpas = kubernetes_api.hpas
    hpas.add(
        "default",
        "off",
        ("deployments", NAME),
        scale_up_policy="Disabled",
        scale_down_policy="Disabled",
    )
    hpas.add("default", "up-only", ("deployments", NAME), scale_down_policy="Disabled")
    (found,) = make_backend(kubernetes_api, tmp_path).other_autoscalers()
    assert "'up-only' (1 to 10 replicas, scales up only)" in found


def test_an_hpa_made_by_an_operator_names_its_owner(
    kubernetes_api: KubernetesApiDouble, deployment, tmp_path
) -> None:
    kubernetes_api.hpas.add(
        "default", f"keda-hpa-{NAME}", ("deployments", NAME), owner=("ScaledObject", NAME)
    )
    (found,) = make_backend(kubernetes_api, tmp_path).other_autoscalers()
    assert f"made by ScaledObject '{NAME}': remove that" in found
    assert "kubectl delete hpa" not in found  # the operator would make it again


def test_rbac_without_list_on_hpas_says_which_rule_once(
    kubernetes_api: KubernetesApiDouble, deployment, tmp_path
) -> None:
    kubernetes_api.deny("list", "horizontalpodautoscalers")
    sleeps: list[float] = []
    with pytest.raises(BackendError) as caught:
        make_backend(kubernetes_api, tmp_path, sleeps=sleeps).other_autoscalers()
    said = str(caught.value)
    assert "listing HorizontalPodAutoscalers in namespace 'default' failed" in said
    assert "needs RBAC list on horizontalpodautoscalers in API group autoscaling" in said
    assert 'cannot list resource "horizontalpodautoscalers"' in said
    assert DOUBLE_TOKEN not in said
    assert len(kubernetes_api.requests) == 1 and sleeps == []  # one attempt, no retry


def test_a_stalled_api_server_costs_one_timeout_not_retries(
    kubernetes_api: KubernetesApiDouble, deployment, tmp_path
) -> None:
    kubernetes_api.delay_next(3, seconds=3.0)
    began = time.monotonic()
    with pytest.raises(BackendError, match=r"no answer from .* within 0\.4s"):
        make_backend(kubernetes_api, tmp_path).other_autoscalers()
    assert time.monotonic() - began < 2.0
    assert len(kubernetes_api.requests) == 1


def test_an_answer_that_is_no_list_is_an_error_not_none_found(
    kubernetes_api: KubernetesApiDouble, deployment, tmp_path
) -> None:
    kubernetes_api.answer_next(b"<html>login</html>", content_type="text/html", path=HPAS)
    with pytest.raises(BackendError, match="is not a HorizontalPodAutoscalerList"):
        make_backend(kubernetes_api, tmp_path).other_autoscalers()
