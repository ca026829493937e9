"""How the relay process uses Python's cyclic garbage collector, set once its modules are in.

Every command allocates a few hundred short-lived containers (models, dicts, futures, tasks),
so with CPython's defaults the collector runs every few commands, and now and then walks the
whole heap: the tens of thousands of objects that start-up created (modules, pydantic schemas,
aiohttp and aio-pika internals) and that never become garbage. What that cost and what this
saves is measured in benchmarks/README.md.
``gc.freeze()`` moves what start-up created out of the collector's sight, and a larger young
generation lets most command objects die by reference counting before a collection looks at
them. Cycles are still collected: later, and in smaller heaps.
"""

from __future__ import annotations

import gc

# Net container allocations between two young collections (CPython's default: 700): one
# collection per hundred-odd commands, and at most a few MB of not-yet-collected cyclic garbage.
YOUNG_THRESHOLD = 50_000
# Young collections per middle one, and middle ones per full one (defaults: 10 and 10).
MIDDLE_THRESHOLD = 20
OLD_THRESHOLD = 100


def settle_after_startup() -> None:
    """Collect start-up's garbage, freeze the survivors, widen the generations.

    For the service process only (``msgflash-relay run``, after its imports and before it
    connects, so no connection is frozen): it changes process-wide state, so the library never
    calls it on its own.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLD_THRESHOLD)
