"""``msgflash-relay topology``: declare the relay's exchanges and queues, and print them.

Producers can then publish before any relay has started: what they send waits in the queues.
"""

from __future__ import annotations

import argparse
import asyncio

from service.bus.topology import declare_topology
from service.settings import Settings
from service.tools.broker import broker_connection


def run(_args: argparse.Namespace, settings: Settings) -> int:
    return asyncio.run(declare(settings))


async def declare(settings: Settings) -> int:
    topology = settings.topology
    async with broker_connection(settings) as connection:
        await declare_topology(connection, topology)
    for name in topology.exchanges():
        print(f"exchange  {name}")
    for name in topology.queues():
        print(f"queue     {name}")
    return 0
