"""Kubernetes credentials and namespace, from the places kubectl and the client look.

The pod's service account when running in a cluster (or when the pool says so),
else a kubeconfig: the pool's file, else $KUBECONFIG (a path list), else
~/.kube/config, with the pool's context or the current one. Every connection
gets its own Configuration and ApiClient: the client library's global default
is never set, so pools on different clusters do not disturb one another.
Everything is read from the `env` mapping given, not from os.environ.
"""

from __future__ import annotations

import logging
import os
import re
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import yaml
from pydantic import AfterValidator, Field

from backends.base import BackendError
from backends.settings import TlsApiCalls
from common.deadline import whole_answer_s
from common.http_body import PoolManagerInTime
from common.secrets import redact, remember
from common.settings import Name
from common.small_files import MIB, NotASmallFileError, read_small_text
from common.transport import plain_http_elsewhere

if TYPE_CHECKING:  # the [kubernetes] extra: imported when a connection is made, not on load
    from kubernetes.client import ApiClient, Configuration

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
KUBECONFIG_MAX_BYTES = 16 * MIB
"""Far more than a kubeconfig of many clusters with their certificates inline."""


KUBERNETES_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
"""An object name the API server takes (a lowercase RFC 1123 subdomain, at most 253
characters: a Deployment's, a StatefulSet's, a Lease's); any other is refused at create
and found nowhere."""


def kubernetes_name_problem(name: str) -> str | None:
    """Why the API server can hold no object of this name; None where it can."""
    if len(name) <= 253 and KUBERNETES_NAME.fullmatch(name):
        return None
    return (
        f"{name!r} is no Kubernetes object name: lowercase letters, digits, '-' and '.', "
        "starting and ending with a letter or digit, at most 253 (RFC 1123)"
    )


_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def kubernetes_namespace_problem(namespace: str) -> str | None:
    """Why no namespace can have this name (a lowercase RFC 1123 label, at most 63
    characters); None where one can."""
    if len(namespace) <= 63 and _NAMESPACE.fullmatch(namespace):
        return None
    return (
        f"{namespace!r} is no Kubernetes namespace: lowercase letters, digits and '-', "
        "starting and ending with a letter or digit, at most 63 (RFC 1123)"
    )


def _object_name(name: str) -> str:
    problem = kubernetes_name_problem(name)
    if problem is not None:  # looked up in vain at every tick ("not found")
        raise ValueError(problem)
    return name


def _namespace(namespace: str) -> str:
    problem = kubernetes_namespace_problem(namespace)
    if problem is not None:  # looked up in vain at every tick ("not found")
        raise ValueError(problem)
    return namespace


KubernetesName = Annotated[Name, AfterValidator(_object_name)]
"""A workload's name: not blank, and one the API server can hold."""
KubernetesNamespace = Annotated[str, AfterValidator(_namespace)]


class KubernetesAccess(TlsApiCalls):
    """Which cluster, as whom, and in which namespace (a workload's or a Lease's)."""

    namespace: KubernetesNamespace | None = Field(
        default=None, description="default: the context's namespace"
    )
    context: str | None = Field(default=None, description="kubeconfig context; default current")
    kubeconfig: Path | None = Field(
        default=None, description="default: $KUBECONFIG, ~/.kube/config"
    )
    in_cluster: bool | None = Field(
        default=None, description="use the pod's service account; default: when in a pod"
    )


DEFAULT_KUBECONFIG = "~/.kube/config"
USER_AGENT = "gpu-autoscaler"


# ---- pure: where the credentials and the namespace come from -------------------------


@dataclass(frozen=True)
class CredentialSource:
    """Either the pod's service account, or a kubeconfig path list and a context."""

    in_cluster: bool
    kubeconfig: str | None = None  # os.pathsep-separated, like $KUBECONFIG
    context: str | None = None


def credential_source(config: KubernetesAccess, env: Mapping[str, str]) -> CredentialSource:
    """In-cluster when asked, or when unasked, in a pod, and no kubeconfig is named."""
    in_cluster = config.in_cluster
    if in_cluster is None:
        explicit_file = config.kubeconfig is not None or bool(env.get("KUBECONFIG"))
        in_cluster = bool(env.get("KUBERNETES_SERVICE_HOST")) and not explicit_file
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

    def redact(self, text: str) -> str:
        return _redact(text, _secrets_of(self.api_client.configuration))


def connect(
    config: KubernetesAccess,
    env: Mapping[str, str],
    service_account_dir: Path = SERVICE_ACCOUNT_DIR,
) -> KubernetesConnection:
    """Load credentials into a fresh Configuration; raises BackendError, never a secret."""
    from kubernetes.client import ApiClient, Configuration
    from kubernetes.config import ConfigException, load_kube_config
    from kubernetes.config.incluster_config import InClusterConfigLoader

    from backends.kubernetes_exec import plugin_runs

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
            if not any(os.path.exists(p) for p in source.kubeconfig.split(os.pathsep)):
                raise BackendError(
                    f"no kubeconfig at {source.kubeconfig} (set the pool's kubeconfig or "
                    "$KUBECONFIG, or in_cluster: true when running in a pod)"
                )
            contexts, current = kubeconfig_contexts(source.kubeconfig)
            name = source.context or current
            details = _context_named(contexts, name)
            identity = f"kubeconfig user {details.get('user')!r} (context {name!r})"
            with plugin_runs(whole_answer_s(config.timeout.total_seconds())) as failed:
                load_kube_config(
                    config_file=source.kubeconfig,
                    context=name,
                    client_configuration=configuration,
                    persist_config=False,
                )
            if failed:  # the client logs it and goes on without credentials
                raise BackendError(f"{identity}: {failed[-1]}")
            discovered = details.get("namespace")
    except ConfigException as error:
        where = "in-cluster service account" if source.in_cluster else source.kubeconfig
        raise BackendError(f"cannot load Kubernetes credentials ({where}): {error}") from None
    if not config.allow_insecure:
        _refuse_insecure(configuration, identity)
    if not config.verify_tls:
        configuration.verify_ssl = False
    configuration.retries = False  # one loop of retries: ours (backends.retry)
    configuration.proxy, configuration.no_proxy = proxy_settings(configuration.host, env)
    _client_log_filter.configurations.add(configuration)
    remember(*_secrets_of(configuration), configuration.password or None)
    api_client = ApiClient(configuration=configuration)
    rest = api_client.rest_client  # bodies read within each call's deadline, not past it
    rest.pool_manager = PoolManagerInTime(rest.pool_manager)
    api_client.user_agent = f"{USER_AGENT} ({api_client.user_agent})"
    return KubernetesConnection(
        api_client=api_client,
        host=configuration.host,
        namespace=choose_namespace(config.namespace, discovered),
        identity=identity,
    )


def _refuse_insecure(configuration: Configuration, identity: str) -> None:
    """A kubeconfig may skip TLS checks or use plain http; like every other insecure
    setting, that must be accepted in the config (`allow_insecure: true`)."""
    if not configuration.verify_ssl:
        raise BackendError(
            f"{identity}: the kubeconfig sets insecure-skip-tls-verify; refused unless its "
            "block (the pool's backend or leader_election) says allow_insecure: true"
        )
    if plain_http_elsewhere(configuration.host):
        raise BackendError(
            f"{identity}: the API server {configuration.host.split('://')[0]}://... is plain "
            "http to another host; refused unless its block (the pool's backend or "
            "leader_election) says allow_insecure: true"
        )


def kubeconfig_contexts(paths: str) -> tuple[dict[str, dict[str, Any]], str | None]:
    """Contexts by name and the current one, merged across files as the client merges them.

    The first file naming a context wins; the last file setting current-context wins.
    """
    contexts: dict[str, dict[str, Any]] = {}
    current: str | None = None
    # Each path the client would load (it skips only missing ones): a FIFO among them held
    # the start for ever, a huge file was read whole. Refused here, before the client reads.
    for path in (p for p in paths.split(os.pathsep) if p and os.path.exists(p)):
        try:
            document = yaml.safe_load(read_small_text(Path(path), KUBECONFIG_MAX_BYTES)) or {}
        except NotASmallFileError as error:
            raise BackendError(f"cannot read kubeconfig {path}: {error.strerror}") from None
        except (OSError, ValueError, yaml.YAMLError) as error:
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


class _RedactingFilter(logging.Filter):
    """The client logs every response body at DEBUG; a server or proxy echoing the
    Authorization header would put the token there, so current tokens are cut out
    (read from each live Configuration, as a service account token rotates)."""

    def __init__(self) -> None:
        super().__init__()
        self.configurations: weakref.WeakSet[Configuration] = weakref.WeakSet()

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = [s for c in list(self.configurations) for s in _secrets_of(c)]
        if secrets:
            record.msg, record.args = _redact(record.getMessage(), secrets), ()
        return True


_client_log_filter = _RedactingFilter()
logging.getLogger("kubernetes.client.rest").addFilter(_client_log_filter)


def _redact(text: str, secrets: Iterable[str]) -> str:
    """Every secret the process knows (common.secrets), these included."""
    remember(*secrets)
    return redact(text)


def _secrets_of(configuration: Configuration) -> tuple[str, ...]:
    """The token as sent and bare, so an echo of either can be redacted."""
    header = configuration.api_key.get("authorization") or ""
    bare = header.split(" ", 1)[1].strip() if " " in header else header
    return tuple(s for s in (header, bare) if s)
