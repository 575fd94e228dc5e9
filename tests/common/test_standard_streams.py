"""Closed standard streams are opened again on /dev/null before anything else runs."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib

import pytest

from tests.autoscaler.test_daemon import ROOT

CHECK = """
import os, sys
from common.standard_streams import reopen_closed_standard_streams
assert sys.stderr is None and sys.stdin is None
reopen_closed_standard_streams()
opened = os.open(os.devnull, os.O_RDONLY)  # a file opened now
null = os.stat(os.devnull)
for fd in (0, 2):
    assert (os.fstat(fd).st_rdev, os.fstat(fd).st_ino) == (null.st_rdev, null.st_ino), fd
sys.stderr.write("nowhere\\n")
sys.stderr.flush()
print("ok", opened > 2)
"""


def test_closed_stdin_and_stderr_are_put_on_dev_null() -> None:
    done = subprocess.run(
        ["sh", "-c", 'exec "$0" -c "$1" <&- 2>&-', sys.executable, CHECK],
        cwd=ROOT,
        capture_output=False,
        stdout=subprocess.PIPE,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0
    assert done.stdout.split() == ["ok", "True"]


def _console_script(program: str, *args: str, stdout: int) -> subprocess.CompletedProcess[str]:
    """The installed entry point ([project.scripts]) run as `python -c`, its stdout `stdout`."""
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, function = scripts[program].split(":")
    code = (
        f"import sys; sys.argv = [{program!r}, *{list(args)!r}]; "
        f"from {module} import {function} as main; main()"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("program", "args"),
    [
        ("autoscaler", ["validate", "config/demo.yaml"]),  # rich's console
        ("autoscaler", ["--version"]),  # click's echo
        ("gpu-bench", ["--help"]),
    ],
)
def test_a_stdout_that_refuses_the_output_is_one_line_and_exit_1(
    program: str, args: list[str]
) -> None:
    """`autoscaler status > /dev/full` (a full disk alike): it was an OSError's traceback
    of rich's or click's write. Now one line on stderr and exit 1, as a closed pipe."""
    with open("/dev/full", "w") as full:
        done = _console_script(program, *args, stdout=full.fileno())
    assert done.returncode == 1, done.stderr
    assert done.stderr == f"{program}: cannot write to stdout: No space left on device\n"


def test_a_closed_pipe_stays_quiet_and_another_files_error_is_its_own() -> None:
    read, write = os.pipe()
    os.close(read)  # `| head -0`: the reader gone before the first line
    try:
        done = _console_script("autoscaler", "--version", stdout=write)
    finally:
        os.close(write)
    assert done.returncode == 1 and done.stderr == ""
    config = _console_script("autoscaler", "validate", "/nonexistent.yaml", stdout=subprocess.PIPE)
    assert config.returncode == 2 and "file not found" in config.stdout + config.stderr
    assert "stdout" not in config.stderr
