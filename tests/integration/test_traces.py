"""The spans of one command and of one webhook, against the real broker and the sandbox.

The relay is given an SDK tracer provider whose spans land in the SDK's in-memory exporter; the
producer's span is made with the same provider, as a producer service would with its own.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from service.contract.amqp import Topology
from service.tracing.spans import OUTCOME_ATTRIBUTE, Tracing
from service.wiring.relay import Relay
from tests.conftest import EventTap, Producer, RelayFactory, SandboxHandle, text_command
from tests.integration.test_webhooks import SECRET, about, deliver, delivery

Spans = Callable[[Callable[[ReadableSpan], bool]], "asyncio.Future[ReadableSpan]"]


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


@pytest.fixture
async def relay(relay_factory: RelayFactory, provider: TracerProvider) -> Relay:
    return await relay_factory(Tracing(provider), msgflash_webhook_secret=SECRET)


async def finished(
    exporter: InMemorySpanExporter, predicate: Callable[[ReadableSpan], bool], timeout: float = 15
) -> ReadableSpan:
    """The first finished span matching ``predicate``, once it has ended."""
    async with asyncio.timeout(timeout):
        while True:
            found = [span for span in exporter.get_finished_spans() if predicate(span)]
            if found:
                return found[0]
            await asyncio.sleep(0.02)


def attribute(name: str, value: Any) -> Callable[[ReadableSpan], bool]:
    return lambda span: (span.attributes or {}).get(name) == value


def attributes(span: ReadableSpan, expected: dict[str, Any]) -> bool:
    """Whether ``span`` has these attributes; fails showing the ones it has instead."""
    actual = {name: (span.attributes or {}).get(name) for name in expected}
    assert actual == expected
    return True


def children(exporter: InMemorySpanExporter, parent: ReadableSpan) -> list[ReadableSpan]:
    span_id = parent.context.span_id
    return [s for s in exporter.get_finished_spans() if s.parent and s.parent.span_id == span_id]


async def send_traced_command(
    provider: TracerProvider, producer: Producer, text: str
) -> tuple[dict[str, Any], trace.SpanContext]:
    """Publish a command from inside a producer span, its traceparent in the CloudEvent."""
    body = text_command(text)
    with provider.get_tracer("tests.producer").start_as_current_span(
        "publish orders", kind=SpanKind.PRODUCER
    ) as span:
        context = span.get_span_context()
        body["traceparent"] = f"00-{context.trace_id:032x}-{context.span_id:016x}-01"
        await producer.publish(body)
    return body, context


async def test_one_command_is_one_trace_from_the_producer_to_msgflash_and_the_events(
    relay: Relay,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    producer: Producer,
    events: EventTap,
    sandbox: SandboxHandle,
    declared: Topology,
) -> None:
    body, producer_span = await send_traced_command(provider, producer, "traced send")
    [result] = await events.wait_for(lambda e: e["data"].get("requestId") == body["id"])
    consumer = await finished(exporter, attribute("cloudevents.event_id", body["id"]))

    # The consumer span continues the producer's trace, and links to it.
    assert consumer.kind is SpanKind.CONSUMER
    assert consumer.name == f"process {declared.commands_exchange}"
    assert consumer.context.trace_id == producer_span.trace_id
    assert consumer.parent is not None and consumer.parent.span_id == producer_span.span_id
    assert [link.context.span_id for link in consumer.links] == [producer_span.span_id]
    assert attributes(
        consumer,
        {
            "messaging.system": "rabbitmq",
            "messaging.operation.type": "process",
            "messaging.destination.name": declared.commands_exchange,
            "messaging.rabbitmq.destination.routing_key": "message.send",
            "cloudevents.event_type": "msgflash.message.send",
            OUTCOME_ATTRIBUTE: "succeeded",
        },
    )

    under = children(exporter, consumer)
    [call] = [s for s in under if s.kind is SpanKind.CLIENT and s.name.startswith("POST")]
    assert call.name == "POST /api/v1/messages/send"
    assert attributes(
        call,
        {
            "http.request.method": "POST",
            "url.template": "/api/v1/messages/send",
            "http.response.status_code": 201,
            "server.address": "127.0.0.1",
        },
    )
    # What MsgFlash received names the client span, in the command's trace.
    [received] = [r for r in await sandbox.requests("/api/v1/messages/send") if r["status"] == 201]
    sent = f"00-{call.context.trace_id:032x}-{call.context.span_id:016x}-01"
    assert received["headers"]["traceparent"] == sent

    assert {"state claim", "state complete"} <= {s.name for s in under}
    [publish] = [s for s in under if s.kind is SpanKind.PRODUCER]
    assert publish.name == f"publish {declared.events_exchange}"
    assert attributes(
        publish,
        {
            "messaging.operation.type": "send",
            "messaging.rabbitmq.destination.routing_key": "message.sent",
            "messaging.message.id": result["id"],
        },
    )
    # The contract is unchanged: events carry the producer's traceparent.
    assert result["traceparent"] == body["traceparent"]


async def test_a_webhook_starts_its_own_trace_linked_to_the_command_that_sent_the_message(
    relay: Relay,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    producer: Producer,
    events: EventTap,
    declared: Topology,
) -> None:
    body, _ = await send_traced_command(provider, producer, "traced webhook")
    [result] = await events.wait_for(lambda e: e["data"].get("requestId") == body["id"])
    consumer = await finished(exporter, attribute("cloudevents.event_id", body["id"]))

    payload = delivery("message.delivered", messageId=result["data"]["messageId"])
    assert await deliver(relay, payload, SECRET) == 200
    await events.wait_for(about(payload["messageId"]))
    webhook = await finished(exporter, lambda span: span.kind is SpanKind.SERVER)

    assert webhook.name == "POST /webhooks/msgflash"
    assert webhook.parent is None and webhook.context.trace_id != consumer.context.trace_id
    assert [(link.context.trace_id, link.context.span_id) for link in webhook.links] == [
        (consumer.context.trace_id, consumer.context.span_id)
    ]
    assert attributes(
        webhook,
        {
            "http.request.method": "POST",
            "http.route": "/webhooks/msgflash",
            "http.response.status_code": 200,
        },
    )
    under = children(exporter, webhook)
    assert {"state first_seen", "state correlation_for"} <= {s.name for s in under}
    [publish] = [s for s in under if s.kind is SpanKind.PRODUCER]
    assert attributes(
        publish, {"messaging.rabbitmq.destination.routing_key": "webhook.message.delivered"}
    )


async def test_a_command_over_http_continues_the_producers_trace_through_its_publish(
    relay_factory: RelayFactory,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    events: EventTap,
    declared: Topology,
) -> None:
    token = "trace-token"
    relay = await relay_factory(Tracing(provider), relay_ingress_tokens=token)
    body = text_command("traced over http")
    with provider.get_tracer("tests.producer").start_as_current_span(
        "POST relay", kind=SpanKind.CLIENT
    ) as span:
        caller = span.get_span_context()
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/cloudevents+json",
        "traceparent": f"00-{caller.trace_id:032x}-{caller.span_id:016x}-01",
    }
    url = f"http://127.0.0.1:{relay.http_port}/v1/commands"
    async with aiohttp.ClientSession() as session:
        async with session.post(url, data=json.dumps(body), headers=headers) as response:
            assert response.status == 202
        async with session.post(url, data=b"{", headers=headers) as response:
            assert response.status == 422
    await events.wait_for(lambda e: e["data"].get("requestId") == body["id"])

    accepted = await finished(exporter, attribute("http.response.status_code", 202))
    assert accepted.kind is SpanKind.SERVER and accepted.name == "POST /v1/commands"
    assert accepted.context.trace_id == caller.trace_id
    assert accepted.parent is not None and accepted.parent.span_id == caller.span_id
    [publish] = [s for s in children(exporter, accepted) if s.kind is SpanKind.PRODUCER]
    assert publish.name == f"publish {declared.commands_exchange}"
    assert attributes(publish, {"messaging.message.id": body["id"]})
    refused = await finished(exporter, attribute("http.response.status_code", 422))
    assert refused.kind is SpanKind.SERVER and not children(exporter, refused)


async def test_a_relay_started_with_an_otlp_endpoint_exports_its_spans_when_it_stops(
    relay_processes: Any, producer: Producer, events: EventTap
) -> None:
    from aiohttp import web
    from aiohttp.test_utils import TestServer
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    exports: list[ExportTraceServiceRequest] = []

    async def collect(request: web.Request) -> web.Response:
        exports.append(ExportTraceServiceRequest.FromString(await request.read()))
        return web.Response(content_type="application/x-protobuf", body=b"")

    collector = web.Application()
    collector.router.add_post("/v1/traces", collect)
    server = TestServer(collector, host="127.0.0.1")
    await server.start_server()
    try:
        relay = relay_processes(otel_exporter_otlp_endpoint=str(server.make_url("")))
        await relay.start()
        body = text_command("exported")
        await producer.publish(body)
        await events.wait_for(lambda e: e["data"].get("requestId") == body["id"])
        relay.signal(signal.SIGTERM)
        assert await relay.wait(30) == 0, relay.tail()
    finally:
        await server.close()

    resources = [r for export in exports for r in export.resource_spans]
    names = {
        attribute.value.string_value
        for resource in resources
        for attribute in resource.resource.attributes
        if attribute.key == "service.name"
    }
    spans = [s for r in resources for scope in r.scope_spans for s in scope.spans]
    assert names == {"msgflash-relay"}
    assert any(s.name.startswith("process ") for s in spans)
    assert any(s.name == "POST /api/v1/messages/send" for s in spans)
