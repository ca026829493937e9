"""docker-compose.yml is a valid Compose file whose relay is wired to the stack's services."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema  # type: ignore[import-untyped]
import pytest
import yaml

from service.settings import DEFAULT_SANDBOX_API_KEY, Settings, env_name, load_settings
from service.tracing.export import DOCUMENTED_VARIABLES
from tests.deploy.manifests import COMPOSE_FILE

COMPOSE_SCHEMA = Path(__file__).parent / "schemas" / "compose-spec.json"
# ${NAME:-default} with the default applied, as compose does when NAME is unset; $$ escapes.
INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*):-(?P<default>[^}]*)\}")


def _compose_schema() -> dict[str, Any]:
    """The vendored schema; its "$schema" (draft-07 without "#") is not one jsonschema knows
    by that spelling, so the draft is named explicitly."""
    schema: dict[str, Any] = json.loads(COMPOSE_SCHEMA.read_text(encoding="utf-8"))
    assert schema["$schema"].startswith("https://json-schema.org/draft-07/")
    return schema


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    return loaded


def _services() -> dict[str, Any]:
    services: dict[str, Any] = _compose()["services"]
    return services


def _with_defaults(value: str) -> str:
    resolved = INTERPOLATION.sub(lambda m: m["default"], value)
    assert "${" not in resolved, f"{value!r} needs a variable from the shell: give it a default"
    return resolved.replace("$$", "$")


def _relay_env() -> dict[str, str]:
    return {k: _with_defaults(str(v)) for k, v in _services()["relay"]["environment"].items()}


def test_compose_file_matches_the_compose_specification_schema() -> None:
    schema = _compose_schema()
    jsonschema.Draft7Validator.check_schema(schema)
    errors = list(jsonschema.Draft7Validator(schema).iter_errors(_compose()))
    assert not errors, "; ".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def test_the_schema_check_rejects_a_misspelt_service_field() -> None:
    compose = _compose()
    compose["services"]["relay"]["depend_on"] = ["rabbitmq"]
    with pytest.raises(jsonschema.ValidationError, match="depend_on"):
        jsonschema.Draft7Validator(_compose_schema()).validate(compose)


def test_relay_environment_uses_only_settings_the_relay_knows() -> None:
    known = {env_name(name) for name in Settings.model_fields} | set(DOCUMENTED_VARIABLES)
    assert set(_relay_env()) <= known


def test_relay_environment_loads_into_valid_settings_without_any_shell_variable() -> None:
    settings = load_settings(_relay_env())
    assert settings.relay_sandbox is False
    assert settings.api_key == DEFAULT_SANDBOX_API_KEY


def test_relay_talks_to_the_stacks_broker_redis_and_sandbox() -> None:
    env, services = _relay_env(), _services()
    hosts = {
        "AMQP_URL": ("rabbitmq", 5672),
        "RELAY_STATE_URL": ("redis", 6379),
        "MSGFLASH_BASE_URL": ("sandbox", 8090),
    }
    for variable, (service, port) in hosts.items():
        url = urlsplit(env[variable])
        assert (url.hostname, url.port) == (service, port), variable
        assert service in services
    sandbox_command = services["sandbox"]["command"]
    assert sandbox_command == ["sandbox", "--host", "0.0.0.0", "--port", "8090"]


def test_relay_and_sandbox_run_the_same_locally_built_image() -> None:
    relay, sandbox = _services()["relay"], _services()["sandbox"]
    assert relay["image"] == sandbox["image"]
    assert relay["build"] == sandbox["build"] == {"context": "."}
    assert relay["command"] == ["run"]


@pytest.mark.parametrize(
    ("service", "probe"),
    [
        ("rabbitmq", ["CMD", "rabbitmq-diagnostics", "-q", "ping"]),
        ("redis", ["CMD", "redis-cli", "ping"]),
    ],
)
def test_infrastructure_services_have_their_native_healthchecks(
    service: str, probe: list[str]
) -> None:
    assert _services()[service]["healthcheck"]["test"] == probe


@pytest.mark.parametrize(
    ("service", "path"), [("sandbox", "/_sandbox/requests"), ("relay", "/readyz")]
)
def test_relay_and_sandbox_healthchecks_probe_their_own_http_endpoint(
    service: str, path: str
) -> None:
    test = _services()[service]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    port = 8090 if service == "sandbox" else int(_relay_env()["RELAY_ADMIN_PORT"])
    assert f"http://127.0.0.1:{port}{path}" in test[3]


def test_relay_starts_only_once_its_dependencies_are_healthy() -> None:
    depends_on = _services()["relay"]["depends_on"]
    assert depends_on == {
        name: {"condition": "service_healthy"} for name in ("rabbitmq", "redis", "sandbox")
    }


def test_compose_gives_the_relay_time_to_drain_before_killing_it() -> None:
    grace = _services()["relay"]["stop_grace_period"]
    assert grace.endswith("s")
    assert float(grace.removesuffix("s")) > Settings.model_fields["relay_drain_seconds"].default


def test_every_published_port_binds_to_loopback_only() -> None:
    """guest/guest RabbitMQ, a password-less Redis and the sandbox's unauthenticated admin
    routes must not be reachable from the network the developer's machine is on."""
    published = [
        (name, str(port))
        for name, service in _services().items()
        for port in service.get("ports", [])
    ]
    assert published
    for name, port in published:
        assert port.startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"


def test_the_relays_admin_port_is_published_apart_from_the_public_one() -> None:
    env = _relay_env()
    ports = [str(p).split(" ")[0] for p in _services()["relay"]["ports"]]
    assert ports == [
        f"127.0.0.1:{env['RELAY_HTTP_PORT']}:{env['RELAY_HTTP_PORT']}",
        f"127.0.0.1:{env['RELAY_ADMIN_PORT']}:{env['RELAY_ADMIN_PORT']}",
    ]
