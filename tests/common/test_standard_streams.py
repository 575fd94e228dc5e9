"""Closed standard streams are opened again on /dev/null before anything else runs."""

from __future__ import annotations

import subprocess
import sys

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
