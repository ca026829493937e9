"""Load for the webhook intake scenario, from its own process: signed MsgFlash deliveries.

Every body is a distinct ``message.delivered`` delivery (its own messageId, so none is a
duplicate), built and signed before the clock starts. Two modes, both bounded in count and
time:

* ``max``: ``--concurrency`` connections send ``--requests`` deliveries back to back; the
  requests/s is the program's maximum intake.
* ``rate``: deliveries sent at a steady ``--rate`` for ``--seconds`` (a late tick catches up at
  once), each timed from its send to its answer: p50/p99.

Prints one JSON object on stdout: requests, seconds, requests_per_second, statuses, and the
latency percentiles in ms. Run as ``python -m benchmarks.webhook_load --help``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aiohttp

from benchmarks.loops import new_event_loop
from benchmarks.stats import percentile
from service.providers.msgflash.sandbox.seed import INSTANCE_MAIN
from service.web.credentials import webhook_signature

SIGNATURE_HEADER = "X-MsgFlash-Signature"
WARM_UP_SECONDS = 1.0


def signed_deliveries(secret: str, count: int) -> list[tuple[bytes, str]]:
    """``count`` distinct deliveries and their signatures, dated now."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    deliveries = []
    for _ in range(count):
        body = json.dumps(
            {
                "event": "message.delivered",
                "instanceId": INSTANCE_MAIN,
                "messageId": str(uuid.uuid4()),
                "providerMessageId": "BAE5" + uuid.uuid4().hex[:12].upper(),
                "to": "+33612345678",
                "status": "delivered",
                "timestamp": stamp,
            },
            separators=(",", ":"),
        ).encode()
        deliveries.append((body, webhook_signature(secret, body)))
    return deliveries


@dataclass
class Tally:
    """What came back: statuses and, per request, (sent at, took) in perf_counter seconds."""

    statuses: Counter[int] = field(default_factory=Counter)
    timings: list[tuple[float, float]] = field(default_factory=list)

    def summary(self, seconds: float, warm_until: float) -> dict[str, object]:
        took = sorted(t for at, t in self.timings if at >= warm_until) or sorted(
            t for _, t in self.timings
        )
        done = sum(self.statuses.values())
        return {
            "requests": done,
            "seconds": seconds,
            "requests_per_second": done / seconds if seconds > 0 else 0.0,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "p50_ms": 1000 * percentile(took, 50) if took else None,
            "p99_ms": 1000 * percentile(took, 99) if took else None,
            "max_ms": 1000 * took[-1] if took else None,
        }


async def post(
    http: aiohttp.ClientSession, url: str, delivery: tuple[bytes, str], tally: Tally
) -> None:
    body, signature = delivery
    started = time.perf_counter()
    headers = {SIGNATURE_HEADER: signature, "Content-Type": "application/json"}
    try:
        async with http.post(url, data=body, headers=headers) as response:
            await response.read()
            status = response.status
    except (aiohttp.ClientError, TimeoutError):
        status = 0  # counted apart: no answer
    tally.statuses[status] += 1
    tally.timings.append((started, time.perf_counter() - started))


async def at_most(
    url: str, deliveries: Sequence[tuple[bytes, str]], concurrency: int, seconds: float
) -> dict[str, object]:
    tally = Tally()
    pending = iter(deliveries)
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=10)
    ) as http:

        async def worker() -> None:
            for delivery in pending:
                if time.perf_counter() > deadline:
                    return
                await post(http, url, delivery, tally)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return tally.summary(time.perf_counter() - start, start)


async def steadily(
    url: str, deliveries: Sequence[tuple[bytes, str]], rate: float
) -> dict[str, object]:
    tally = Tally()
    connector = aiohttp.TCPConnector(limit=200)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=10)
    ) as http:
        calls: list[asyncio.Task[None]] = []
        start = time.perf_counter()
        for index, delivery in enumerate(deliveries):
            delay = start + index / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            calls.append(asyncio.create_task(post(http, url, delivery, tally)))
        await asyncio.gather(*calls)
        return tally.summary(time.perf_counter() - start, start + WARM_UP_SECONDS)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.webhook_load", description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--mode", choices=("max", "rate"), required=True)
    parser.add_argument("--requests", type=int, default=2000, help="max mode: how many")
    parser.add_argument("--concurrency", type=int, default=32, help="max mode: connections")
    parser.add_argument("--rate", type=float, default=100.0, help="rate mode: per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="time bound (max: at most)")
    return parser.parse_args(argv)


async def main_async(args: argparse.Namespace) -> dict[str, object]:
    if args.mode == "max":
        deliveries = signed_deliveries(args.secret, args.requests)
        return await at_most(args.url, deliveries, args.concurrency, args.seconds)
    deliveries = signed_deliveries(args.secret, round(args.rate * args.seconds))
    return await steadily(args.url, deliveries, args.rate)


def main() -> None:
    args = parse_args()
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        print(json.dumps(runner.run(main_async(args))), flush=True)


if __name__ == "__main__":
    main()
