"""The spans' hooks: inert when off, W3C trace context on the wire when on."""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from service.tracing.spans import Tracing

URL = "http://msgflash.test:8080/api/v1/messages/send"
TEMPLATE = "/api/v1/messages/send"


def traced() -> tuple[Tracing, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return Tracing(provider), exporter


def test_off_every_hook_is_inert_and_headers_go_out_unchanged() -> None:
    tracing = Tracing()
    headers = {"Accept": "application/json"}
    with tracing.http_call("POST", URL, TEMPLATE) as call:
        assert call.headers(headers) == {"Accept": "application/json"}
        call.answered(500)
    with tracing.store("claim", "redis") as span:
        assert span is None
    with tracing.webhook("POST", "/webhooks/msgflash") as span:
        tracing.link_command("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
        assert span is None
    assert tracing.current_traceparent() is None


def test_a_call_sends_the_traceparent_of_its_own_client_span() -> None:
    tracing, exporter = traced()
    with tracing.http_call("POST", URL, TEMPLATE, waited=0.25) as call:
        sent = call.headers({"Accept": "application/json"})
        call.answered(201)
    [span] = exporter.get_finished_spans()
    context = span.get_span_context()
    assert sent["traceparent"].startswith(f"00-{context.trace_id:032x}-{context.span_id:016x}-")
    assert span.name == "POST /api/v1/messages/send"
    assert dict(span.attributes or {}) == {
        "http.request.method": "POST",
        "url.full": URL,
        "url.template": TEMPLATE,
        "server.address": "msgflash.test",
        "server.port": 8080,
        "msgflash_relay.pacing.wait_seconds": 0.25,
        "http.response.status_code": 201,
    }


def test_an_error_answer_marks_the_client_span_failed_with_its_status() -> None:
    tracing, exporter = traced()
    try:
        with tracing.http_call("POST", URL, TEMPLATE) as call:
            call.answered(429)
            raise RuntimeError("rate limited")
    except RuntimeError:
        pass
    [span] = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {})["error.type"] == "429"


def test_a_call_without_an_answer_names_why_as_its_error_type() -> None:
    class NoAnswer(Exception):
        code = "MSGFLASH_TIMEOUT"

    tracing, exporter = traced()
    try:
        with tracing.http_call("POST", URL, TEMPLATE):
            raise NoAnswer
    except NoAnswer:
        pass
    [span] = exporter.get_finished_spans()
    assert (span.attributes or {})["error.type"] == "MSGFLASH_TIMEOUT"


def test_a_malformed_traceparent_links_nothing() -> None:
    tracing, exporter = traced()
    with tracing.webhook("POST", "/webhooks/msgflash"):
        tracing.link_command("00-not-a-trace-01")
        tracing.link_command(None)
    [span] = exporter.get_finished_spans()
    assert span.links == ()
