"""Sandbox configuration from files and the command line, and the server process itself."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

from service.contract.errors import ConfigError
from service.providers.msgflash.sandbox.config import SandboxConfig
from service.providers.msgflash.sandbox.seed import (
    INSTANCE_MAIN,
    INSTANCE_WARMING,
    TEMPLATE_WELCOME,
)
from service.providers.msgflash.sandbox.server import add_arguments, config_from_args
from service.settings import DEFAULT_SANDBOX_API_KEY

KEY = "msgf_live_" + "c" * 64
SEED = {
    "instances": [{"id": INSTANCE_MAIN, "name": "only", "waNumber": "+2250700000001",
                   "business": True}],
    "contacts": [{"id": "00000000-0000-4000-8000-0000000000c9", "name": "Zoe",
                  "phone": "+33600000000", "temperature": "warm"}],
}  # fmt: skip


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_a_json_file_configures_every_part(tmp_path: Path) -> None:
    path = tmp_path / "sandbox.json"
    path.write_text(
        json.dumps(
            {"api_keys": [KEY], "plan": "pro", "rate_limit_per_second": None,
             "faults": {"latency_ms": 5}, "seed": SEED}
        )
    )  # fmt: skip
    config = SandboxConfig.from_file(path)
    assert config.api_keys == (KEY,) and config.plan == "pro"
    assert config.rate_limit_per_second is None and config.faults is not None
    assert config.seed is not None and config.seed.instances[0].wa_number == "+2250700000001"


def test_a_yaml_file_is_read_too(tmp_path: Path) -> None:
    path = tmp_path / "sandbox.yaml"
    path.write_text("plan: free\nlifecycle_step_seconds: 0.1\nrate_limit_window: fixed\n")
    config = SandboxConfig.from_file(path)
    assert (config.plan, config.lifecycle_step_seconds, config.rate_limit_window) == (
        "free", 0.1, "fixed",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("content", "named"),
    [
        ('{"plan": "gold"}', "plan 'gold'"),
        ('{"rate_limt_per_second": 3}', "rate_limt_per_second"),
        ('{"lifecycle_step_seconds": -1}', "lifecycle_step_seconds"),
        ('{"seed": {"groups": [{"id": "g", "name": "g", "members": ["x"]}]}}', "members"),
        ("[1, 2]", "top level"),
        ("{not json", "cannot read"),
    ],
)
def test_a_bad_file_is_a_config_error_naming_the_setting(
    tmp_path: Path, content: str, named: str
) -> None:
    path = tmp_path / "sandbox.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match="sandbox config") as caught:
        SandboxConfig.from_file(path)
    assert named in caught.value.message


def test_a_bad_key_is_reported_without_echoing_it(tmp_path: Path) -> None:
    secret = "msgf_live_NOT-HEX-secret-value"
    path = tmp_path / "sandbox.json"
    path.write_text(json.dumps({"api_keys": [secret]}))
    with pytest.raises(ConfigError) as caught:
        SandboxConfig.from_file(path)
    assert "api_keys" in caught.value.message and secret not in caught.value.message


OTHER_KEY = "msgf_live_" + "d" * 64
ACCOUNTS_YAML = f"""
plan: pro
accounts:
  - name: acme
    api_keys: [{KEY}]
  - name: globex
    api_keys: [{OTHER_KEY}]
    plan: free
    seed: {{instances: [{{id: {INSTANCE_WARMING}, name: solo}}]}}
"""


def test_a_file_lists_accounts_each_with_its_keys_plan_and_seed(tmp_path: Path) -> None:
    path = tmp_path / "sandbox.yaml"
    path.write_text(ACCOUNTS_YAML)
    acme, globex = SandboxConfig.from_file(path).sandbox_accounts()
    assert (acme.name, acme.api_keys, acme.plan, acme.seed) == ("acme", (KEY,), "pro", None)
    assert (globex.name, globex.api_keys, globex.plan) == ("globex", (OTHER_KEY,), "free")
    assert globex.seed is not None and globex.seed.instances[0].name == "solo"


def test_the_plan_flag_is_the_plan_of_accounts_that_name_none(tmp_path: Path) -> None:
    path = tmp_path / "sandbox.yaml"
    path.write_text(ACCOUNTS_YAML)
    acme, globex = config_from_args(
        _args("--config", str(path), "--plan", "max")
    ).sandbox_accounts()
    assert (acme.plan, globex.plan) == ("max", "free")


def test_without_accounts_the_top_level_keys_plan_and_seed_are_account_default() -> None:
    (only,) = SandboxConfig(api_keys=(KEY,), plan="pro").sandbox_accounts()
    assert (only.name, only.api_keys, only.plan, only.seed) == ("default", (KEY,), "pro", None)


def _accounts(*entries: dict[str, object]) -> str:
    return json.dumps({"accounts": list(entries)})


@pytest.mark.parametrize(
    ("content", "named"),
    [
        (_accounts({"name": "a", "api_keys": [KEY]}, {"name": "a", "api_keys": [OTHER_KEY]}),
         "accounts.1.name: 'a' is used twice"),
        (_accounts({"name": "a", "api_keys": [KEY]}, {"name": "b", "api_keys": [OTHER_KEY, KEY]}),
         "accounts.1.api_keys.1: this key already belongs to account 'a'"),
        (json.dumps({"api_keys": [KEY], "accounts": [{"name": "a", "api_keys": [OTHER_KEY]}]}),
         "api_keys: with accounts listed, give each account its own under accounts.N.api_keys"),
        (_accounts({"name": "a", "api_keys": [KEY], "plan": "gold"}),
         "accounts.0.plan: plan 'gold' is not in the plan table"),
        (_accounts({"name": "Acme Corp", "api_keys": [KEY]}), "accounts.0.name"),
        (_accounts({"name": "a", "api_keys": []}), "accounts.0.api_keys"),
        (_accounts({"name": "a", "api_keys": [KEY], "keys": [KEY]}), "accounts.0.keys"),
    ],
)  # fmt: skip
def test_a_bad_account_is_a_config_error_naming_it_and_never_its_key(
    tmp_path: Path, content: str, named: str
) -> None:
    path = tmp_path / "sandbox.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match="invalid sandbox config") as caught:
        SandboxConfig.from_file(path)
    assert named in caught.value.message
    assert KEY not in caught.value.message and OTHER_KEY not in caught.value.message


def test_command_line_flags_override_the_file(tmp_path: Path) -> None:
    path = tmp_path / "sandbox.yaml"
    path.write_text("plan: free\nrate_limit_per_second: 3\n")
    config = config_from_args(
        _args("--config", str(path), "--rate-limit", "none", "--step-seconds", "0.5",
              "--faults", '{"error_rate": 0.5}')
    )  # fmt: skip
    assert (config.plan, config.rate_limit_per_second, config.lifecycle_step_seconds) == (
        "free", None, 0.5,
    )  # fmt: skip
    assert config.faults is not None and config.faults.error_rate == 0.5


def test_faults_flag_overrides_the_file_setting_by_setting(tmp_path: Path) -> None:
    path = tmp_path / "sandbox.yaml"
    path.write_text("faults: {latency_ms: 50, error_rate: 0.2, random_seed: 7}\n")
    config = config_from_args(_args("--config", str(path), "--faults", '{"error_rate": 0.5}'))
    assert config.faults is not None
    assert (config.faults.latency_ms, config.faults.error_rate, config.faults.random_seed) == (
        50, 0.5, 7,
    )  # fmt: skip


def test_faults_flag_alone_is_the_whole_block() -> None:
    config = config_from_args(_args("--faults", '{"latency_ms": 5}'))
    assert config.faults is not None and config.faults.latency_ms == 5


@pytest.mark.parametrize("port", ["99999", "-1", "http"])
def test_a_port_out_of_range_is_refused_by_the_parser(
    port: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        _args("--port", port)
    assert caught.value.code == 2
    assert "is not a port: use 0 to 65535" in capsys.readouterr().err


def test_a_bad_flag_value_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="--rate-limit"):
        config_from_args(_args("--rate-limit", "fast"))


async def test_the_server_prints_the_seeded_ids_and_serves_until_sigterm() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "service.providers.msgflash.sandbox.server",
        "--port", "0", "--step-seconds", "0.05",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        assert process.stdout is not None
        banner = [(await asyncio.wait_for(process.stdout.readline(), 30)).decode()]
        while not banner[-1].startswith("  GROUP_CUSTOMERS"):
            banner.append((await asyncio.wait_for(process.stdout.readline(), 10)).decode())
        text = "".join(banner)
        assert DEFAULT_SANDBOX_API_KEY in text and INSTANCE_WARMING in text
        url = banner[0].split()[4]
        async with aiohttp.ClientSession(headers={"x-api-key": DEFAULT_SANDBOX_API_KEY}) as http:
            body = {"instanceId": INSTANCE_MAIN, "to": "+33612345678",
                    "templateId": TEMPLATE_WELCOME, "variables": {"firstName": "Ana"}}  # fmt: skip
            async with http.post(f"{url}/api/v1/messages/send", json=body) as response:
                assert response.status == 201
                assert (await response.json())["data"]["body"] == "Hello Ana, welcome to main!"
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 30) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
