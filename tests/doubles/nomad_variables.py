"""Nomad variables and their locks, for the Nomad API double (tests.doubles.nomad_api).

Follows Nomad's "Variable Locks - HTTP API" (api-docs/variables/locks) and
"Variables HTTP API" (Read Variable): PUT /v1/var/:path?lock-acquire with
Lock{TTL, LockDelay} creates or locks the variable and returns it with Lock.ID;
acquiring a locked variable answers 409 with the conflicting variable (Lock
omitted, as the documented sample shows); ?lock-renew needs the lock ID and keeps
the lock for another TTL; ?lock-release with the ID (and no Items, else 400)
removes the lock at once. Lock rules from Nomad's server (nomad/structs/variables.go,
nomad/variables_endpoint.go): TTL must be between 10 s and 24 h (400), a zero
TTL or LockDelay takes the 15 s default; once a TTL lapses unrenewed the lock can
no longer be renewed (HTTP 500 "attempting to modify locked variable", as Nomad's
HTTP layer answers uncoded RPC errors) but stays on the variable, refusing
acquisition, for the LockDelay more. Time comes from `clock` (seconds), so a test
can move it.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

_GO_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_GO_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
DEFAULT_TTL_S = DEFAULT_DELAY_S = 15.0


def parse_go_duration(value: Any) -> float:
    """A Go duration string ("15s", "1m30s") or nanoseconds, in seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value / 1e9
    if isinstance(value, str) and value and _GO_PART.sub("", value) == "":
        return sum(float(n) * _GO_UNIT[u] for n, u in _GO_PART.findall(value))
    raise ValueError(f"time: invalid duration {value!r}")


def go_duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


@dataclass
class FakeLock:
    id: str
    ttl_s: float
    delay_s: float
    expires_at: float  # by the double's clock; renewals push it on


@dataclass
class FakeVariable:
    namespace: str
    path: str
    items: dict[str, str] = field(default_factory=dict)
    lock: FakeLock | None = None
    create_index: int = 0
    modify_index: int = 0
    create_time: int = 1694552155379696000
    modify_time: int = 1694552155379696000


class NomadVariables:
    """The variables store behind /v1/var; the caller holds the double's lock."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.variables: dict[tuple[str, str], FakeVariable] = {}
        self.index = 1000

    def route(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        namespace = query.get("namespace") or "default"
        if not path:
            return 400, "missing variable path"
        variable = self._current(namespace, path)
        if method == "GET":
            if variable is None:
                return 404, "variable not found"
            return 200, self.variable_json(variable, with_lock=True)
        if method not in ("PUT", "POST"):
            return 400, "Invalid method"
        if not isinstance(body, dict):
            return 400, "unexpected EOF"
        lock = body.get("Lock") or {}
        if "lock-acquire" in query:
            return self.acquire(namespace, path, variable, body, lock)
        if "lock-renew" in query:
            return self.renew(variable, lock)
        if "lock-release" in query:
            return self.release(variable, body, lock)
        return 405, "only the lock operations are served by this double"

    def _current(self, namespace: str, path: str) -> FakeVariable | None:
        """The variable, with a lock whose TTL and delay have both passed removed."""
        variable = self.variables.get((namespace, path))
        lock = variable.lock if variable else None
        if (
            variable is not None
            and lock is not None
            and self.clock() >= lock.expires_at + lock.delay_s
        ):
            variable.lock = None
        return variable

    def acquire(
        self,
        namespace: str,
        path: str,
        variable: FakeVariable | None,
        body: dict[str, Any],
        lock: dict[str, Any],
    ) -> tuple[int, Any]:
        try:
            ttl_s = parse_go_duration(lock.get("TTL") or 0) or DEFAULT_TTL_S
            delay_s = parse_go_duration(lock.get("LockDelay") or 0) or DEFAULT_DELAY_S
        except ValueError as error:
            return 400, str(error)
        if ttl_s < 0 or delay_s < 0:
            return 400, "Lock delay and TTL must be positive"
        if not 10 <= ttl_s <= 24 * 3600:
            return 400, "TTL must be between 10 seconds and 24 hours"
        if variable is not None and variable.lock is not None:
            return 409, self.variable_json(variable, with_lock=False)
        self.index += 1
        if variable is None:
            variable = FakeVariable(namespace, path, create_index=self.index)
            self.variables[(namespace, path)] = variable
        if body.get("Items"):
            variable.items = {str(k): str(v) for k, v in body["Items"].items()}
        variable.lock = FakeLock(str(uuid.uuid4()), ttl_s, delay_s, self.clock() + ttl_s)
        variable.modify_index = self.index
        return 200, self.variable_json(variable, with_lock=True)

    def renew(self, variable: FakeVariable | None, lock: dict[str, Any]) -> tuple[int, Any]:
        if not lock.get("ID"):
            return 400, "missing lock ID"
        if variable is None:
            return 500, "variable doesn't exist"
        if variable.lock is None:
            return 500, "variable doesn't hold a lock"
        if variable.lock.id != lock["ID"] or self.clock() >= variable.lock.expires_at:
            return 500, "attempting to modify locked variable"
        variable.lock.expires_at = self.clock() + variable.lock.ttl_s
        answer = self.variable_json(variable, with_lock=True)
        answer.pop("Items")  # the renew answer is metadata only
        return 200, answer

    def release(
        self, variable: FakeVariable | None, body: dict[str, Any], lock: dict[str, Any]
    ) -> tuple[int, Any]:
        if body.get("Items"):
            return 400, "lock release operation doesn't take variable items"
        if not lock.get("ID"):
            return 400, "release requires all lock information"
        if variable is None:
            return 500, "variable doesn't exist"
        if variable.lock is None or variable.lock.id != lock["ID"]:
            return 409, self.variable_json(variable, with_lock=False)
        variable.lock = None
        self.index += 1
        variable.modify_index = self.index
        answer = self.variable_json(variable, with_lock=False)
        answer.pop("Items")
        return 200, answer

    @staticmethod
    def variable_json(variable: FakeVariable, *, with_lock: bool) -> dict[str, Any]:
        lock = variable.lock
        return {
            "Namespace": variable.namespace,
            "Path": variable.path,
            "CreateIndex": variable.create_index,
            "CreateTime": variable.create_time,
            "ModifyIndex": variable.modify_index,
            "ModifyTime": variable.modify_time,
            "Items": dict(variable.items),
            "Lock": (
                {
                    "TTL": go_duration(lock.ttl_s),
                    "LockDelay": go_duration(lock.delay_s),
                    "ID": lock.id,
                }
                if with_lock and lock is not None
                else None
            ),
        }
