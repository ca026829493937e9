"""Scenario: what the tracing hooks cost a command. Each variant runs the hooks one command goes
through (its consumer span, two store operations, one MsgFlash call with its headers, two
publishes, the outcome) many times and reports the time per command above doing nothing.

``off`` is the relay's default (no ``OTEL_*``); ``no-op tracer`` is the OpenTelemetry API's
own no-op provider; ``SDK`` records every span (sampled, nothing exported), for contrast.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import NoOpTracerProvider

from benchmarks.report import Figure
from benchmarks.session import BenchSession
from service.contract.commands import CommandIdentity
from service.tracing.spans import Tracing

SCENARIO = "tracing"
COMMANDS = 5_000
ROUNDS = 5  # the best round counts: the least disturbed by the other users of the machine
# Above this per command, tracing off would be worth measuring next to the relay's own cost.
OFF_BUDGET_MICROSECONDS = 2.0
URL = "http://127.0.0.1:8090/api/v1/messages/send"
TEMPLATE = "/api/v1/messages/send"


@dataclass(frozen=True, slots=True)
class Delivery:
    """What the consumer span reads of an AMQP delivery."""

    exchange: str = "msgflash.commands"
    routing_key: str = "message.send"
    body: bytes = b"{}"
    delivery_tag: int = 1
    message_id: str | None = None
    correlation_id: str | None = None


IDENTITY = CommandIdentity(id="bench-1", source="urn:bench", type="msgflash.message.send")
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def one_command(tracing: Tracing, delivery: Delivery) -> None:
    with tracing.consume(delivery, IDENTITY, TRACEPARENT):  # type: ignore[arg-type]  # duck-typed
        with tracing.store("claim", "sqlite"):
            pass
        with tracing.http_call("POST", URL, TEMPLATE) as call:
            call.headers({"Accept": "application/json"})
            call.answered(201)
        tracing.current_traceparent()
        with tracing.store("complete", "sqlite"):
            pass
        for _ in range(2):
            with tracing.publish("msgflash.events", "message.sent", b"{}", "e", None):
                pass
        tracing.record_outcome("succeeded")


def nothing(_tracing: Tracing, _delivery: Delivery) -> None:
    return None


def microseconds_per_command(run: Callable[[Tracing, Delivery], None], tracing: Tracing) -> float:
    delivery = Delivery()
    best = float("inf")
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for _ in range(COMMANDS):
            run(tracing, delivery)
        best = min(best, time.perf_counter() - started)
    return best / COMMANDS * 1e6


async def run(session: BenchSession) -> list[Figure]:
    baseline = microseconds_per_command(nothing, Tracing())
    off = microseconds_per_command(one_command, Tracing()) - baseline
    noop = microseconds_per_command(one_command, Tracing(NoOpTracerProvider())) - baseline
    sdk = TracerProvider(shutdown_on_exit=False)
    recording = microseconds_per_command(one_command, Tracing(sdk)) - baseline
    session.progress(SCENARIO, f"off {off:.2f} µs, no-op {noop:.2f} µs, SDK {recording:.1f} µs")
    session.details[SCENARIO] = {"off_us": off, "noop_tracer_us": noop, "sdk_us": recording}
    return [
        Figure.below(SCENARIO, "off (default): per command", off, OFF_BUDGET_MICROSECONDS, "µs"),
        Figure.info(SCENARIO, "API no-op tracer: per command", noop, "µs"),
        Figure.info(SCENARIO, "SDK, 8 spans recorded: per command", recording, "µs"),
    ]
