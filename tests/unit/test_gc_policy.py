"""The service's garbage-collector settings (in a child interpreter: they are process-wide)."""

from __future__ import annotations

import subprocess
import sys

from service import gc_policy

_PROBE = """
import gc, json
from service.gc_policy import settle_after_startup
startup = [object() for _ in range(10)], {"kept": [1, 2, 3]}
before = gc.get_freeze_count()
settle_after_startup()
print(json.dumps({"before": before, "after": gc.get_freeze_count(),
                  "threshold": gc.get_threshold(), "enabled": gc.isenabled()}))
"""


def _probe() -> dict[str, object]:
    import json

    done = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True, timeout=60
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_startup_objects_are_frozen_and_the_generations_widened() -> None:
    result = _probe()
    assert result["before"] == 0
    assert isinstance(result["after"], int) and result["after"] > 1000
    assert result["threshold"] == [
        gc_policy.YOUNG_THRESHOLD,
        gc_policy.MIDDLE_THRESHOLD,
        gc_policy.OLD_THRESHOLD,
    ]


def test_the_collector_stays_on_so_cycles_are_still_freed() -> None:
    assert _probe()["enabled"] is True
