"""The OpenTelemetry SDK, switched on by the standard ``OTEL_*`` variables and off without them.

On when an OTLP endpoint is set (``OTEL_EXPORTER_OTLP_ENDPOINT`` or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) or ``OTEL_TRACES_EXPORTER`` names an exporter;
``OTEL_SDK_DISABLED=true`` keeps it off whatever else is set. The SDK reads everything else
itself (``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER``,
``OTEL_EXPORTER_OTLP_HEADERS``, ``OTEL_BSP_*``). The SDK and the OTLP exporter are the
``otel`` extra, imported only when switched on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from service.contract.errors import ConfigError
from service.tracing.spans import Tracing

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

DEFAULT_SERVICE_NAME = "msgflash-relay"
# The standard variables the README documents for the relay (the SDK reads more).
DOCUMENTED_VARIABLES = (
    "OTEL_SDK_DISABLED",
    "OTEL_TRACES_EXPORTER",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
)
OTLP_PROTOCOL = "http/protobuf"
_ENDPOINTS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
_PROTOCOLS = ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
_EXTRA_HINT = "install the relay with its `otel` extra: pip install 'msgflash-relay[otel]'"


def exporter_name(environ: Mapping[str, str]) -> str | None:
    """Which exporter the variables ask for (``otlp`` or ``console``); None: tracing off."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    named = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if named == "none":
        return None
    if named:
        if named not in ("otlp", "console"):
            raise ConfigError(
                f"OTEL_TRACES_EXPORTER: {named!r} is not supported: use otlp, console or none"
            )
        return named
    return "otlp" if any(environ.get(name) for name in _ENDPOINTS) else None


def tracing_from_environment(environ: Mapping[str, str]) -> Tracing:
    """The relay's ``Tracing`` as the variables ask: off, or an SDK provider whose export
    starts with the relay (building it does no I/O and starts no thread)."""
    name = exporter_name(environ)
    if name is None:
        return Tracing()
    provider = _provider()
    exporter = _console_exporter() if name == "console" else _otlp_exporter(environ)
    return Tracing(provider, export=BatchExport(provider, exporter))


@dataclass(frozen=True, slots=True)
class BatchExport:
    """Spans batched on the SDK's thread, off the event loop; flushed when the relay stops."""

    provider: TracerProvider
    exporter: SpanExporter

    def start(self) -> None:
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        self.provider.add_span_processor(BatchSpanProcessor(self.exporter))

    def stop(self) -> None:
        self.provider.shutdown()


def _provider() -> TracerProvider:
    try:
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
    except ImportError:
        raise ConfigError(
            f"OTEL_*: tracing is switched on but the SDK is missing; {_EXTRA_HINT}"
        ) from None
    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
    # The sampler comes from OTEL_TRACES_SAMPLER (parent-based always-on by default).
    return TracerProvider(resource=resource, shutdown_on_exit=False)


def _otlp_exporter(environ: Mapping[str, str]) -> SpanExporter:
    for variable in _PROTOCOLS:
        protocol = environ.get(variable, "").strip()
        if protocol and protocol != OTLP_PROTOCOL:
            raise ConfigError(
                f"{variable}: {protocol!r} is not supported: the relay exports OTLP over "
                f"{OTLP_PROTOCOL} (port 4318 on most collectors)"
            )
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        raise ConfigError(
            f"{_named_endpoint(environ)}: OTLP export is asked for but its exporter is "
            f"missing; {_EXTRA_HINT}"
        ) from None
    return OTLPSpanExporter()


def _console_exporter() -> SpanExporter:
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    return ConsoleSpanExporter()


def _named_endpoint(environ: Mapping[str, str]) -> str:
    return next((name for name in _ENDPOINTS if environ.get(name)), "OTEL_TRACES_EXPORTER")
