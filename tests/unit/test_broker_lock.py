"""The lock that keeps a broker restart away from other suites' tests."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from tests.broker_lock import broker_lock

HOLD = """
import sys, time
from pathlib import Path
from tests.broker_lock import broker_lock
with broker_lock(exclusive=sys.argv[1] == "ex", path=Path(sys.argv[2])):
    print("held", flush=True)
    time.sleep(float(sys.argv[3]))
"""


def hold_elsewhere(path: Path, *, exclusive: bool, seconds: float) -> subprocess.Popen[str]:
    """Another process (another suite) holding the lock; returns once it holds it."""
    mode = "ex" if exclusive else "sh"
    argv = [sys.executable, "-c", HOLD, mode, str(path), str(seconds)]
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline() == "held\n"
    return child


def finished(child: subprocess.Popen[str], *, kill: bool = False) -> int:
    if kill:
        child.kill()
    child.communicate()
    return child.returncode


def waited_for(path: Path, *, exclusive: bool) -> float:
    started = time.monotonic()
    with broker_lock(exclusive=exclusive, path=path):
        return time.monotonic() - started


def test_tests_of_two_suites_run_side_by_side(tmp_path: Path) -> None:
    other = hold_elsewhere(tmp_path / "lock", exclusive=False, seconds=5)
    try:
        assert waited_for(tmp_path / "lock", exclusive=False) < 1
    finally:
        finished(other, kill=True)


def test_a_broker_restart_waits_for_the_other_suites_test(tmp_path: Path) -> None:
    other = hold_elsewhere(tmp_path / "lock", exclusive=False, seconds=1)
    assert waited_for(tmp_path / "lock", exclusive=True) > 0.5
    assert finished(other) == 0


def test_no_test_runs_while_the_other_suite_restarts_the_broker(tmp_path: Path) -> None:
    other = hold_elsewhere(tmp_path / "lock", exclusive=True, seconds=1)
    assert waited_for(tmp_path / "lock", exclusive=False) > 0.5
    assert finished(other) == 0
