"""Profiling (opt-in): the throughput drain with the relay running under pyinstrument.

Writes, next to ``latest.json``: ``profile-relay.txt`` (call tree of the relay's own code),
``profile-relay-self.txt`` (time per function, library time charged to the relay function
that called into it) and ``profile-relay-total.txt`` (inclusive time per function, libraries
included). Hot spots such as JSON, logging, validation or confirm waits show up there. Only
the main thread is sampled (SQLite's checkpoint thread is not), and the profiler roughly halves
the relay's rate, so the rate reported here is for orientation only.
"""

from __future__ import annotations

from pathlib import Path

from pyinstrument.renderers import ConsoleRenderer
from pyinstrument.session import Session

from benchmarks.drain import drain_preloaded
from benchmarks.report import Figure
from benchmarks.session import BenchSession

SCENARIO = "profile"
RESULTS = Path(__file__).resolve().parent / "results"


async def run(session: BenchSession) -> list[Figure]:
    count = session.sizes.throughput_commands
    raw = session.workspace.path("relay.pyisession")  # ~150 MB at full size: not kept
    drained = await drain_preloaded(
        session.workspace, await session.responder(), "relay", count, profile_to=raw
    )
    written = render_profile(raw, RESULTS)
    session.details[SCENARIO] = {"events_per_second": drained.events_per_second, "files": written}
    session.progress(SCENARIO, f"profiles written: {', '.join(written)}")
    return [
        Figure.info(
            SCENARIO, f"relay under pyinstrument, N={count}", drained.events_per_second, "events/s"
        )
    ]


def render_profile(raw: Path, folder: Path) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    profiled = Session.load(raw)
    renderers = {
        "profile-relay.txt": ConsoleRenderer(),
        "profile-relay-self.txt": ConsoleRenderer(flat=True),
        "profile-relay-total.txt": ConsoleRenderer(flat=True, flat_time="total", show_all=True),
    }
    for name, renderer in renderers.items():
        (folder / name).write_text(renderer.render(profiled))
    return list(renderers)
