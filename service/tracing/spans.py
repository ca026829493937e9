"""OpenTelemetry spans of the relay: one consumer span per command, and under it the state
store, each MsgFlash HTTP call and each publish; one server span per webhook, linked to the
command that created the message; one server span per command sent over the HTTP ingress.

``Tracing()`` (the default) is off: every method returns at its first line, so a relay without
``OTEL_*`` pays nothing for the instrumentation. Attributes follow OpenTelemetry's messaging,
HTTP and database semantic conventions; the SDK is wired in ``service.tracing.export``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode, Tracer, TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import Attributes

if TYPE_CHECKING:
    from aio_pika.abc import AbstractIncomingMessage

    from service.contract.commands import CommandIdentity

INSTRUMENTATION_NAME = "msgflash-relay"
MESSAGING_SYSTEM = "rabbitmq"
# RabbitMQ's nameless default exchange, as the messaging conventions name it.
DEFAULT_EXCHANGE = "amq.default"
OUTCOME_ATTRIBUTE = "msgflash_relay.command.outcome"

_PROPAGATOR = TraceContextTextMapPropagator()
_OFF: AbstractContextManager[None] = nullcontext()


class SpanExport(Protocol):
    """The SDK side: started with the relay, flushed and stopped with it."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


class HttpCall:
    """One provider HTTP exchange: the headers to send (W3C ``traceparent`` added when traced)
    and where its answer is recorded."""

    __slots__ = ("_span", "status_recorded")

    def __init__(self, span: Span | None) -> None:
        self._span = span
        self.status_recorded = False

    def headers(self, base: dict[str, str]) -> dict[str, str]:
        if self._span is None:
            return base
        _PROPAGATOR.inject(base, context=trace.set_span_in_context(self._span))
        return base

    def answered(self, status: int) -> None:
        if self._span is None:
            return
        self.status_recorded = True
        self._span.set_attribute("http.response.status_code", status)
        if status >= 400:
            self._span.set_attribute("error.type", str(status))
            self._span.set_status(Status(StatusCode.ERROR))


_UNTRACED_CALL = HttpCall(None)


class Tracing:
    """The relay's tracer, passed to the components that make spans (``build`` wires it)."""

    def __init__(
        self, provider: TracerProvider | None = None, *, export: SpanExport | None = None
    ) -> None:
        self._tracer: Tracer | None = None
        if provider is not None:
            self._tracer = provider.get_tracer(INSTRUMENTATION_NAME)
        self._export = export

    @property
    def enabled(self) -> bool:
        return self._tracer is not None

    def start(self) -> None:
        if self._export is not None:
            self._export.start()

    def stop(self) -> None:
        """Flush what is buffered and stop exporting (blocking: run it off the loop)."""
        if self._export is not None:
            self._export.stop()

    # --- commands -------------------------------------------------------------------------
    def consume(
        self,
        message: AbstractIncomingMessage,
        identity: CommandIdentity,
        traceparent: str | None,
    ) -> AbstractContextManager[Span | None]:
        """The span of one command, from its decoding to its ack.

        The producer's ``traceparent`` is its parent, so one trace follows the message from
        the producer through the relay; it is also the span's link, the creation context the
        messaging conventions ask for.
        """
        if self._tracer is None:
            return _OFF
        producer = _extract(traceparent)
        links = [Link(producer)] if producer is not None else []
        parent = Context()  # a root span when the producer sent no trace context
        if producer is not None:
            parent = trace.set_span_in_context(trace.NonRecordingSpan(producer), parent)
        exchange = message.exchange or DEFAULT_EXCHANGE
        attributes: Attributes = {
            "messaging.system": MESSAGING_SYSTEM,
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.destination.name": exchange,
            "messaging.rabbitmq.destination.routing_key": message.routing_key or "",
            "messaging.message.body.size": len(message.body),
            "messaging.rabbitmq.message.delivery_tag": message.delivery_tag or 0,
            **_present(
                {
                    "messaging.message.id": message.message_id,
                    "messaging.message.conversation_id": message.correlation_id,
                    "cloudevents.event_id": identity.id,
                    "cloudevents.event_source": identity.source,
                    "cloudevents.event_type": identity.type,
                }
            ),
        }
        return self._tracer.start_as_current_span(
            f"process {exchange}",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes=attributes,
            links=links,
        )

    def record_outcome(self, outcome: str) -> None:
        """Name the command's outcome on its span (succeeded, failed, deferred, ...)."""
        if self._tracer is not None:
            trace.get_current_span().set_attribute(OUTCOME_ATTRIBUTE, outcome)

    def current_traceparent(self) -> str | None:
        """The active span as a W3C ``traceparent`` (what a webhook later links to)."""
        if self._tracer is None:
            return None
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier)
        return carrier.get("traceparent")

    # --- what a command does --------------------------------------------------------------
    def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        message_id: str | None,
        correlation_id: str | None,
    ) -> AbstractContextManager[Span | None]:
        """A producer span per publish, until the broker confirmed it."""
        if self._tracer is None:
            return _OFF
        destination = exchange or DEFAULT_EXCHANGE
        attributes: Attributes = {
            "messaging.system": MESSAGING_SYSTEM,
            "messaging.operation.type": "send",
            "messaging.operation.name": "publish",
            "messaging.destination.name": destination,
            "messaging.rabbitmq.destination.routing_key": routing_key,
            "messaging.message.body.size": len(body),
            **_present(
                {
                    "messaging.message.id": message_id,
                    "messaging.message.conversation_id": correlation_id,
                }
            ),
        }
        return self._tracer.start_as_current_span(
            f"publish {destination}", kind=SpanKind.PRODUCER, attributes=attributes
        )

    def http_call(
        self, method: str, url: str, template: str, *, waited: float = 0.0
    ) -> AbstractContextManager[HttpCall]:
        """A client span per HTTP exchange with a provider; ``waited`` is the pacing wait that
        came before it (not part of the span)."""
        if self._tracer is None:
            return nullcontext(_UNTRACED_CALL)
        return self._http_span(self._tracer, method, url, template, waited)

    def store(self, operation: str, system: str | None) -> AbstractContextManager[Span | None]:
        """A span per state store operation (claim, complete, correlation_for, ...)."""
        if self._tracer is None:
            return _OFF
        attributes = {"db.operation.name": operation, **_present({"db.system.name": system})}
        kind = SpanKind.CLIENT if system is not None else SpanKind.INTERNAL
        return self._tracer.start_as_current_span(
            f"state {operation}", kind=kind, attributes=attributes
        )

    # --- webhooks -------------------------------------------------------------------------
    def webhook(self, method: str, route: str) -> AbstractContextManager[Span | None]:
        """A server span per webhook delivery: a trace of its own (MsgFlash's trace headers,
        if any, are not trusted), linked to the command by ``link_command``."""
        if self._tracer is None:
            return _OFF
        return self._server_span(self._tracer, method, route, Context())

    def ingress(
        self, method: str, route: str, traceparent: str | None
    ) -> AbstractContextManager[Span | None]:
        """A server span per command sent over HTTP, continuing the producer's trace when the
        request carries a W3C ``traceparent`` header: unlike MsgFlash, an authenticated producer
        is part of the same system, so its context is trusted."""
        if self._tracer is None:
            return _OFF
        carrier = {"traceparent": traceparent} if traceparent else {}
        context = _PROPAGATOR.extract(carrier, context=Context())  # malformed: a trace of its own
        return self._server_span(self._tracer, method, route, context)

    @staticmethod
    def _server_span(
        tracer: Tracer, method: str, route: str, context: Context
    ) -> AbstractContextManager[Span]:
        attributes = {"http.request.method": method, "http.route": route, "url.path": route}
        return tracer.start_as_current_span(
            f"{method} {route}", context=context, kind=SpanKind.SERVER, attributes=attributes
        )

    def answered(self, status: int) -> None:
        """The status of an answer, on its server span (5xx is the server's error)."""
        if self._tracer is None:
            return
        span = trace.get_current_span()
        span.set_attribute("http.response.status_code", status)
        if status >= 500:
            span.set_attribute("error.type", str(status))
            span.set_status(Status(StatusCode.ERROR))

    def link_command(self, traceparent: str | None) -> None:
        """Link the active span to the command whose span ``traceparent`` names."""
        if self._tracer is None:
            return
        command = _extract(traceparent)
        if command is not None:
            trace.get_current_span().add_link(command, {"msgflash_relay.link": "command"})

    @contextmanager
    def _http_span(
        self, tracer: Tracer, method: str, url: str, template: str, waited: float
    ) -> Iterator[HttpCall]:
        parts = urlsplit(url)
        attributes: Attributes = {
            "http.request.method": method,
            "url.full": url,
            "url.template": template,
            "server.address": parts.hostname or "",
            "server.port": parts.port or (443 if parts.scheme == "https" else 80),
            "msgflash_relay.pacing.wait_seconds": waited,
        }
        with tracer.start_as_current_span(
            f"{method} {template}", kind=SpanKind.CLIENT, attributes=attributes
        ) as span:
            call = HttpCall(span)
            try:
                yield call
            except Exception as exc:
                if not call.status_recorded:  # no answer at all: name why
                    span.set_attribute(
                        "error.type",
                        str(getattr(exc, "code", None) or "") or type(exc).__qualname__,
                    )
                raise


def _extract(traceparent: str | None) -> trace.SpanContext | None:
    """The span context a W3C ``traceparent`` names; None when absent or malformed."""
    if not traceparent:
        return None
    context = _PROPAGATOR.extract({"traceparent": traceparent})
    span_context = trace.get_current_span(context).get_span_context()
    return span_context if span_context.is_valid else None


def _present(values: Mapping[str, str | None]) -> dict[str, str]:
    return {name: value for name, value in values.items() if value is not None}
