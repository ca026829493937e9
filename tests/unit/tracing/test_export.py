"""Which OTEL_* settings switch tracing on, and what is refused with the variable named."""

from __future__ import annotations

import pytest

from service.contract.errors import ConfigError
from service.tracing.export import exporter_name, tracing_from_environment

ENDPOINT = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, None),
        ({"OTEL_SERVICE_NAME": "relay"}, None),
        (ENDPOINT, "otlp"),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, "otlp"),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, "otlp"),
        ({"OTEL_TRACES_EXPORTER": "console"}, "console"),
        ({**ENDPOINT, "OTEL_TRACES_EXPORTER": "none"}, None),
        ({**ENDPOINT, "OTEL_SDK_DISABLED": "true"}, None),
        ({**ENDPOINT, "OTEL_SDK_DISABLED": "false"}, "otlp"),
    ],
)
def test_tracing_is_off_unless_an_exporter_or_endpoint_is_named(
    environ: dict[str, str], expected: str | None
) -> None:
    assert exporter_name(environ) == expected


def test_without_otel_variables_the_relay_gets_tracing_off() -> None:
    assert not tracing_from_environment({}).enabled


def test_an_otlp_endpoint_switches_the_sdk_on() -> None:
    tracing = tracing_from_environment(ENDPOINT)
    assert tracing.enabled


def test_an_unknown_exporter_is_refused_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match="OTEL_TRACES_EXPORTER: 'zipkin'"):
        exporter_name({"OTEL_TRACES_EXPORTER": "zipkin"})


@pytest.mark.parametrize(
    "variable", ["OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"]
)
def test_otlp_over_grpc_is_refused_naming_the_variable(variable: str) -> None:
    with pytest.raises(ConfigError, match=f"{variable}: 'grpc' is not supported"):
        tracing_from_environment({**ENDPOINT, variable: "grpc"})
