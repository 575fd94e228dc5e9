"""A Kubernetes Deployment or StatefulSet as a fleet, through the official `kubernetes` client.

The count is read from and written to the workload's scale subresource
(autoscaling/v1 Scale), as `kubectl scale` and the HorizontalPodAutoscaler do,
so the autoscaler needs only `get`/`patch` on `deployments/scale` (or
`statefulsets/scale`) and `get` on the workload, whose status gives readiness.

Credentials come from the usual places: the pod's service account when running
in a cluster, else a kubeconfig (the pool's file, else $KUBECONFIG, else
~/.kube/config) and context. Each backend builds its own ApiClient and never
touches the client library's global default configuration.

Writes carry the resourceVersion that was read, so a change made by someone
else in between is refused by the API server (409) instead of silently
overwritten: the count is then read again and the write repeated only if
nobody changed the replica count meanwhile. The bearer token and client key
never reach a log line or an error: the client's ApiException prints headers
and bodies, so failures are re-worded here from status codes and Status messages.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import urllib3.exceptions
import yaml
from kubernetes.client import ApiClient, AppsV1Api, Configuration
from kubernetes.client.exceptions import ApiException
from kubernetes.config import ConfigException, load_kube_config
from kubernetes.config.incluster_config import InClusterConfigLoader

from autoscaler.config import KubernetesBackend
from backends.base import BackendError, FleetState
from backends.retry import call_with_retries

log = logging.getLogger(__name__)

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
DEFAULT_KUBECONFIG = "~/.kube/config"
REASON_ANNOTATION = "gpu-autoscaler/last-scale-reason"
USER_AGENT = "gpu-autoscaler"
_REASON_LIMIT = 1024
_BODY_LIMIT = 300


# ---- pure: where the credentials and the namespace come from -------------------------


@dataclass(frozen=True)
class CredentialSource:
    """Either the pod's service account, or a kubeconfig path list and a context."""

    in_cluster: bool
    kubeconfig: str | None = None  # os.pathsep-separated, like $KUBECONFIG
    context: str | None = None


def credential_source(config: KubernetesBackend, env: Mapping[str, str]) -> CredentialSource:
    """In-cluster when asked, or when unasked and the pod's service variables are set."""
    in_cluster = config.in_cluster
    if in_cluster is None:
        in_cluster = bool(env.get("KUBERNETES_SERVICE_HOST")) and config.kubeconfig is None
    if in_cluster:
        return CredentialSource(in_cluster=True)
    paths = str(config.kubeconfig) if config.kubeconfig else env.get("KUBECONFIG")
    paths = paths or DEFAULT_KUBECONFIG
    return CredentialSource(
        in_cluster=False,
        kubeconfig=os.pathsep.join(_expand_home(p, env) for p in paths.split(os.pathsep) if p),
        context=config.context,
    )


def _expand_home(path: str, env: Mapping[str, str]) -> str:
    home = env.get("HOME")
    if home and (path == "~" or path.startswith("~/")):
        return home + path[1:]
    return os.path.expanduser(path)


def choose_namespace(configured: str | None, discovered: str | None) -> str:
    """The pool's namespace, else the context's (or service account's), else "default"."""
    for candidate in (configured, discovered):
        if candidate and candidate.strip():
            return candidate.strip()
    return "default"


def proxy_settings(host: str, env: Mapping[str, str]) -> tuple[str | None, str | None]:
    """Proxy and no-proxy list from the given environment (the client reads os.environ)."""
    names = ("HTTPS_PROXY", "https_proxy") if host.startswith("https") else ()
    proxy = next((env[n] for n in (*names, "HTTP_PROXY", "http_proxy") if env.get(n)), None)
    no_proxy = env.get("NO_PROXY") or env.get("no_proxy") or None
    return proxy, no_proxy


# ---- the connection -------------------------------------------------------------------


@dataclass
class KubernetesConnection:
    """A dedicated API client and what to call the identity it speaks as."""

    api_client: ApiClient = field(repr=False)
    host: str
    namespace: str
    identity: str
    secrets: tuple[str, ...] = field(default=(), repr=False)

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            if secret:
                text = text.replace(secret, "[redacted]")
        return text


def connect(
    config: KubernetesBackend,
    env: Mapping[str, str],
    service_account_dir: Path = SERVICE_ACCOUNT_DIR,
) -> KubernetesConnection:
    """Load credentials into a fresh Configuration; raises BackendError, never a secret."""
    source = credential_source(config, env)
    configuration = Configuration()
    try:
        if source.in_cluster:
            InClusterConfigLoader(
                token_filename=str(service_account_dir / "token"),
                cert_filename=str(service_account_dir / "ca.crt"),
                environ=env,
            ).load_and_set(configuration)
            discovered = _read_text(service_account_dir / "namespace")
            identity = "the pod's service account"
        else:
            assert source.kubeconfig is not None
            if not any(Path(p).is_file() for p in source.kubeconfig.split(os.pathsep)):
                raise BackendError(
                    f"no kubeconfig at {source.kubeconfig} (set the pool's kubeconfig or "
                    "$KUBECONFIG, or in_cluster: true when running in a pod)"
                )
            contexts, current = kubeconfig_contexts(source.kubeconfig)
            name = source.context or current
            details = _context_named(contexts, name)
            load_kube_config(
                config_file=source.kubeconfig,
                context=name,
                client_configuration=configuration,
                persist_config=False,
            )
            discovered = details.get("namespace")
            identity = f"kubeconfig user {details.get('user')!r} (context {name!r})"
    except ConfigException as error:
        where = "in-cluster service account" if source.in_cluster else source.kubeconfig
        raise BackendError(f"cannot load Kubernetes credentials ({where}): {error}") from None
    if not config.verify_tls:
        configuration.verify_ssl = False
    configuration.retries = False  # one loop of retries: ours (backends.retry)
    configuration.proxy, configuration.no_proxy = proxy_settings(configuration.host, env)
    secrets = _secrets_of(configuration)
    api_client = ApiClient(configuration=configuration)
    api_client.user_agent = f"{USER_AGENT} ({api_client.user_agent})"
    return KubernetesConnection(
        api_client=api_client,
        host=configuration.host,
        namespace=choose_namespace(config.namespace, discovered),
        identity=identity,
        secrets=secrets,
    )


def kubeconfig_contexts(paths: str) -> tuple[dict[str, dict[str, Any]], str | None]:
    """Contexts by name and the current one, merged across files as the client merges them.

    The first file naming a context wins; the last file setting current-context wins.
    """
    contexts: dict[str, dict[str, Any]] = {}
    current: str | None = None
    for path in (p for p in paths.split(os.pathsep) if p and Path(p).is_file()):
        try:
            document = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as error:
            raise BackendError(f"cannot read kubeconfig {path} ({type(error).__name__})") from None
        if not isinstance(document, dict):
            raise BackendError(f"kubeconfig {path} is not a kubeconfig mapping")
        for entry in document.get("contexts") or []:
            if isinstance(entry, dict) and entry.get("name") not in contexts:
                contexts[str(entry.get("name"))] = dict(entry.get("context") or {})
        current = document.get("current-context") or current
    return contexts, current


def _context_named(contexts: dict[str, dict[str, Any]], name: str | None) -> dict[str, Any]:
    if name is not None and name in contexts:
        return contexts[name]
    known = ", ".join(sorted(contexts)) or "none"
    if name is None:
        raise BackendError(f"the kubeconfig has no current-context; name one (contexts: {known})")
    raise BackendError(f"kubeconfig has no context {name!r} (contexts: {known})")


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def _secrets_of(configuration: Configuration) -> tuple[str, ...]:
    """The token as sent and bare, so an echo of either can be redacted."""
    header = configuration.api_key.get("authorization") or ""
    bare = header.split(" ", 1)[1].strip() if " " in header else header
    return tuple(s for s in (header, bare) if s)


# ---- pure: classifying and wording failures -------------------------------------------


def is_retryable_kubernetes_error(error: BaseException) -> bool:
    """5xx, 429, 409 (re-read, re-apply), timeouts and lost connections; never other 4xx."""
    if isinstance(error, ApiException):
        status = error.status or 0
        return status in (409, 429) or status >= 500
    if isinstance(error, urllib3.exceptions.SSLError):
        return False
    return isinstance(
        error,
        urllib3.exceptions.TimeoutError  # includes NewConnectionError (refused, DNS)
        | urllib3.exceptions.ProtocolError
        | urllib3.exceptions.MaxRetryError
        | ConnectionError
        | TimeoutError,
    )


def status_message(error: ApiException) -> str:
    """The `message` of the Status object the API server sent, else a short body."""
    body = error.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if not body:
        return str(error.reason or "")
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("message"), str):
        return parsed["message"][:_BODY_LIMIT]
    return " ".join(str(body).split())[:_BODY_LIMIT]


@dataclass(frozen=True)
class Target:
    """The workload: kind words for messages and RBAC resources."""

    workload: str  # "deployment" | "statefulset"
    name: str
    namespace: str

    @property
    def resource(self) -> str:
        return "deployments" if self.workload == "deployment" else "statefulsets"

    def __str__(self) -> str:
        return f"{self.workload} {self.name!r} in namespace {self.namespace!r}"


def describe_kubernetes_error(
    error: BaseException, connection: KubernetesConnection, target: Target, *, writing: bool
) -> str:
    """A sentence for people about what went wrong, with credentials removed."""
    if isinstance(error, ApiException):
        status, message = error.status or 0, status_message(error)
        if status == 404:
            text = f"{target.workload} {target.name!r} not found in namespace {target.namespace!r}"
            text += f" at {connection.host} ({message})"
        elif status == 403:
            needs = (
                f"patch on {target.resource}/scale"
                if writing
                else f"get on {target.resource}/scale and {target.resource}"
            )
            text = (
                f"Kubernetes refused {connection.identity}: {message} "
                f"(it needs RBAC {needs} in API group apps, namespace {target.namespace!r})"
            )
        elif status == 401:
            text = (
                f"Kubernetes did not accept the credentials of {connection.identity} "
                f"(expired or wrong token?): HTTP 401 {message}"
            )
        elif status == 0:
            text = (
                f"TLS failed talking to {connection.host} "
                "(check the cluster's certificate-authority or verify_tls)"
            )
        else:
            text = f"Kubernetes answered HTTP {status}: {message}"
    elif isinstance(error, urllib3.exceptions.SSLError):
        text = f"TLS failed talking to {connection.host}"
    elif isinstance(error, urllib3.exceptions.NewConnectionError):
        text = f"connection to {connection.host} failed ({_root_cause_name(error)})"
    elif isinstance(error, urllib3.exceptions.TimeoutError | TimeoutError):
        text = f"no answer from {connection.host} within the timeout"
    elif isinstance(error, urllib3.exceptions.ProtocolError | ConnectionError):
        text = f"connection to {connection.host} was lost ({_root_cause_name(error)})"
    elif isinstance(error, BackendError):
        text = str(error)
    elif isinstance(error, ValueError):
        text = f"{connection.host} answered with something that is not a valid {target.workload}"
    else:
        text = type(error).__name__
    return connection.redact(text)


def _root_cause_name(error: BaseException) -> str:
    """The innermost exception type (e.g. ConnectionRefusedError), never its text."""
    current, seen = error, set()
    while id(current) not in seen:
        seen.add(id(current))
        inner = current.__cause__ or current.__context__
        if inner is None and current.args and isinstance(current.args[-1], BaseException):
            inner = current.args[-1]
        if inner is None:
            break
        current = inner
    return type(current).__name__


# ---- the adapter ----------------------------------------------------------------------


@dataclass(frozen=True)
class ScaleReading:
    replicas: int
    resource_version: str | None


class KubernetesWorkload:
    """A Deployment or StatefulSet, scaled through its scale subresource."""

    name = "kubernetes"

    def __init__(
        self,
        config: KubernetesBackend,
        env: Mapping[str, str] = os.environ,
        sleep: Callable[[float], None] = time.sleep,
        service_account_dir: Path = SERVICE_ACCOUNT_DIR,
    ) -> None:
        self.config = config
        self._env = dict(env)
        self._sleep = sleep
        self._service_account_dir = service_account_dir
        self._connection: KubernetesConnection | None = None
        self._annotate = True
        seconds = config.timeout.total_seconds()
        self._timeout = (seconds, seconds)  # the client ignores a bare float
        self._is_deployment = config.workload == "deployment"

    def __repr__(self) -> str:
        return f"KubernetesWorkload({self.config.workload} {self.config.name!r})"

    @property
    def connection(self) -> KubernetesConnection:
        """Credentials load on first use, so building a backend does no I/O."""
        if self._connection is None:
            self._connection = connect(self.config, self._env, self._service_account_dir)
        return self._connection

    @property
    def target(self) -> Target:
        return Target(self.config.workload, self.config.name, self.connection.namespace)

    def check(self) -> None:
        """Credentials load, the API answers, the workload exists and can be read."""
        self.read()

    def read(self) -> FleetState:
        desired = self._call(self._read_scale, what=f"reading the scale of {self.target}")
        workload = self._call(self._read_workload, what=f"reading {self.target}")
        ready = (workload.status.ready_replicas if workload.status else None) or 0
        return FleetState(
            desired=desired.replicas, ready=ready, pending=max(desired.replicas - ready, 0)
        )

    def scale(self, desired: int, reason: str) -> None:
        if isinstance(desired, bool) or not isinstance(desired, int) or desired < 0:
            raise ValueError(f"desired count must be a non-negative integer, got {desired!r}")
        first = self._call(self._read_scale, what=f"reading the scale of {self.target}")
        if first.replicas == desired:
            log.debug("%s already at %d replicas; nothing to write", self.target, desired)
            return
        log.info("%s: scaling %d -> %d replicas (%s)", self.target, first.replicas, desired, reason)
        attempts = 0

        def write() -> None:
            nonlocal attempts
            attempts += 1
            current = first if attempts == 1 else self._read_scale()
            if current.replicas == desired:
                return  # an earlier attempt landed after all
            if current.replicas != first.replicas:
                raise BackendError(
                    f"{self.target} was scaled to {current.replicas} by someone else while "
                    f"the autoscaler was scaling {first.replicas} -> {desired}; not overriding it"
                )
            self._patch_scale(desired, current.resource_version)

        self._call(write, what=f"scaling {self.target} to {desired}", writing=True)
        self._record_reason(reason)

    # ---- API calls (each one request; retries live in _call) ----------------------------

    def _read_scale(self) -> ScaleReading:
        api, t = AppsV1Api(self.connection.api_client), self.target
        read = (
            api.read_namespaced_deployment_scale
            if self._is_deployment
            else api.read_namespaced_stateful_set_scale
        )
        scale = read(t.name, t.namespace, _request_timeout=self._timeout)
        # ScaleSpec.replicas is omitted from the JSON when it is 0.
        replicas = (scale.spec.replicas if scale.spec else None) or 0
        version = scale.metadata.resource_version if scale.metadata else None
        return ScaleReading(replicas=replicas, resource_version=version)

    def _read_workload(self) -> Any:
        api, t = AppsV1Api(self.connection.api_client), self.target
        read = (
            api.read_namespaced_deployment
            if self._is_deployment
            else api.read_namespaced_stateful_set
        )
        return read(t.name, t.namespace, _request_timeout=self._timeout)

    def _patch_scale(self, replicas: int, resource_version: str | None) -> None:
        api, t = AppsV1Api(self.connection.api_client), self.target
        patch = (
            api.patch_namespaced_deployment_scale
            if self._is_deployment
            else api.patch_namespaced_stateful_set_scale
        )
        body: dict[str, Any] = {"spec": {"replicas": replicas}}
        if resource_version:
            body["metadata"] = {"resourceVersion": resource_version}  # optimistic lock
        patch(t.name, t.namespace, body, _request_timeout=self._timeout)

    def _record_reason(self, reason: str) -> None:
        """Best effort: an annotation on the workload saying why; a refusal never fails a scale."""
        if not self._annotate:
            return
        api, t = AppsV1Api(self.connection.api_client), self.target
        patch = (
            api.patch_namespaced_deployment
            if self._is_deployment
            else api.patch_namespaced_stateful_set
        )
        body = {"metadata": {"annotations": {REASON_ANNOTATION: reason[:_REASON_LIMIT]}}}
        try:
            patch(t.name, t.namespace, body, _request_timeout=self._timeout)
        except Exception as error:
            if isinstance(error, ApiException) and error.status in (403, 404):
                self._annotate = False  # not allowed here: stop asking every scale
            log.warning(
                "%s scaled, but recording the reason annotation failed: %s",
                t,
                describe_kubernetes_error(error, self.connection, t, writing=True),
            )

    def _call(self, operation: Callable[[], Any], *, what: str, writing: bool = False) -> Any:
        connection, target = self.connection, self.target

        def describe(error: BaseException) -> str:
            return describe_kubernetes_error(error, connection, target, writing=writing)

        return call_with_retries(
            operation,
            what=what,
            retries=self.config.retries,
            is_retryable=is_retryable_kubernetes_error,
            describe=describe,
            sleep=self._sleep,
        )
