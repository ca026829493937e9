"""The environment the manifests give the relay is exactly what service.settings knows.

Every setting appears once: non-secret ones in the ConfigMap, SecretStr ones in the Secret
(through the Deployment's ``env``), and together they load into a valid Settings. Adding a
setting without deploying it, or deploying a name the relay ignores, fails here.
"""

from __future__ import annotations

import typing
from typing import Any

import pytest
from pydantic import SecretStr

from service.contract.errors import ConfigError
from service.settings import Settings, env_name, load_settings
from tests.deploy.manifests import (
    CONFIG_MAP,
    OVERLAYS,
    SECRET,
    relay_config,
    relay_container,
    secret_template,
)

# Settings the model defaults but a cluster must set: the default broker is 127.0.0.1, and
# without a webhook secret every MsgFlash webhook would be refused.
REQUIRED_IN_A_CLUSTER = {"AMQP_URL", "MSGFLASH_WEBHOOK_SECRET"}


def _all_settings() -> set[str]:
    return {env_name(name) for name in Settings.model_fields}


def _secret_settings() -> set[str]:
    return {
        env_name(name)
        for name, info in Settings.model_fields.items()
        if SecretStr in (info.annotation, *typing.get_args(info.annotation))
    }


def _secret_env(overlay: str) -> dict[str, dict[str, Any]]:
    return {e["name"]: e["valueFrom"]["secretKeyRef"] for e in relay_container(overlay)["env"]}


def _deployed_env(overlay: str) -> dict[str, str]:
    """What the pod would see, with the secret template's placeholders as secret values."""
    secrets = secret_template()["stringData"]
    return {**relay_config(overlay), **{name: secrets[name] for name in _secret_env(overlay)}}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_config_map_and_secret_together_name_every_setting_exactly_once(overlay: str) -> None:
    config, env = set(relay_config(overlay)), list(_secret_env(overlay))
    assert len(env) == len(set(env))
    assert not config & set(env), "a name in both the ConfigMap and env: env would win"
    assert config | set(env) == _all_settings()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secrets_come_only_from_the_secret_and_never_from_the_config_map(overlay: str) -> None:
    assert set(_secret_env(overlay)) == _secret_settings()
    # KEDA's trigger on the accounts' queues reads one key of the Secret that is not a setting.
    assert set(secret_template()["stringData"]) == _secret_settings() | {"RABBITMQ_MANAGEMENT_URL"}
    for name, ref in _secret_env(overlay).items():
        assert (ref["name"], ref["key"]) == (SECRET, name)
    env_from = relay_container(overlay)["envFrom"]
    assert [e["configMapRef"]["name"].rsplit("-", 1)[0] for e in env_from] == [CONFIG_MAP]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_deployed_environment_loads_into_valid_settings(overlay: str) -> None:
    settings = load_settings(_deployed_env(overlay))
    assert settings.relay_sandbox is False
    assert settings.relay_http_port == 8080
    assert settings.relay_drain_seconds == float(relay_config(overlay)["RELAY_DRAIN_SECONDS"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_secret_the_relay_cannot_start_without_is_not_optional(overlay: str) -> None:
    env = _deployed_env(overlay)
    refs = _secret_env(overlay)
    for name in refs:
        without = {k: v for k, v in env.items() if k != name}
        try:
            load_settings(without)
        except ConfigError:
            required = True
        else:
            required = name in REQUIRED_IN_A_CLUSTER
        assert refs[name].get("optional", False) is not required, name


def test_the_model_requires_the_api_key_so_the_check_above_can_fail() -> None:
    env = _deployed_env("prod")
    with pytest.raises(ConfigError, match="MSGFLASH_API_KEY"):
        load_settings({k: v for k, v in env.items() if k != "MSGFLASH_API_KEY"})
