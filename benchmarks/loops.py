"""The event loop the benchmark's own programs run on: uvloop when it is installed.

The bare loop, the FastStream peer and the responder are meant to be as fast as a careful
hand-written service would be, so none of them is held back by the default loop.
"""

from __future__ import annotations

import asyncio
import importlib.util


def uvloop_available() -> bool:
    return importlib.util.find_spec("uvloop") is not None


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop when it is installed, else asyncio's; for ``asyncio.Runner``."""
    if uvloop_available():
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def loop_name() -> str:
    return "uvloop" if uvloop_available() else "asyncio"
