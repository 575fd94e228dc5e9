"""run_checks: every check runs and says one line, whatever it raises."""

from __future__ import annotations

import io

from rich.console import Console

from autoscaler.cli.check import run_checks
from backends.base import BackendError
from common.secrets import remember

SECRET = "s3cr3t-token-value-for-check-test"


def test_an_unforeseen_error_fails_its_check_in_one_line_and_the_rest_still_run() -> None:
    """Before, an AttributeError from an answer of an odd shape ended validate
    --check-backends in a traceback, and the checks after it never ran."""
    remember(SECRET)

    def odd_answer() -> str:
        raise AttributeError(f"'str' object has no attribute 'get' (token {SECRET})")

    def refused() -> str:
        raise BackendError("nomad job j: 403")

    out, err = io.StringIO(), io.StringIO()
    checks = {"odd": odd_answer, "refused": refused, "fine": lambda: "reachable"}
    failed = run_checks(checks, Console(file=out), Console(file=err, width=200))

    assert failed == ["odd", "refused"]
    lines = err.getvalue().splitlines()
    assert lines[0].startswith("FAILED odd: unexpected AttributeError: 'str' object")
    assert SECRET not in err.getvalue() and "[redacted]" in lines[0]
    assert lines[1] == "FAILED refused: nomad job j: 403"
    assert "fine: reachable" in out.getvalue()
