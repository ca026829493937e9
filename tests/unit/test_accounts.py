"""The accounts file (contract §7): what it accepts, and how each mistake stops the relay."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.accounts import load_accounts, parse_accounts
from service.contract.errors import ConfigError
from service.settings import DEFAULT_ACCOUNT, Settings, load_settings

ACME_KEY = "msgf_live_" + "a" * 64
ENV = {
    "MSGFLASH_KEY_ACME": ACME_KEY,
    "MSGFLASH_WEBHOOK_SECRET_ACME": "whsec-1, whsec-2",
    "TETHER_TOKEN_CRM": "tether-token-crm",
}
CONTRACT_EXAMPLE = """
accounts:
  - name: acme                      # MsgFlash account
    provider: msgflash
    apiKeyEnv: MSGFLASH_KEY_ACME    # env var holding the API key
    webhookSecretsEnv: MSGFLASH_WEBHOOK_SECRET_ACME
    rateLimit: 10
    defaultInstance: main
    baseUrl: https://msgflash.example
  - name: crm                       # Tether organisation
    provider: tether
    baseUrl: https://crm.example
    tokenEnv: TETHER_TOKEN_CRM
    rateLimit: 5
"""


def settings(**env: str) -> Settings:
    return load_settings({"MSGFLASH_API_KEY": "msgf_live_" + "d" * 64, **env})


def parse(text: str, env: dict[str, str] | None = None) -> object:
    return parse_accounts(text, source="accounts.yaml", settings=settings(), env=env or ENV)


def test_the_contract_example_reads_as_one_msgflash_and_one_tether_account() -> None:
    accounts = parse_accounts(CONTRACT_EXAMPLE, source="a.yaml", settings=settings(), env=ENV)

    acme, crm = accounts.msgflash["acme"], accounts.tether["crm"]
    assert (acme.api_key, acme.webhook_secrets) == (ACME_KEY, ("whsec-1", "whsec-2"))
    assert (acme.rate_limit, acme.default_instance, acme.base_url) == (
        10,
        "main",
        "https://msgflash.example",
    )
    assert (crm.api_token, crm.base_url, crm.rate_limit) == (
        "tether-token-crm",
        "https://crm.example",
        5,
    )
    assert ACME_KEY not in repr(accounts) and "tether-token-crm" not in repr(accounts)
    assert set(accounts.secrets()) == {ACME_KEY, "whsec-1", "whsec-2", "tether-token-crm"}


def test_the_same_file_as_json_reads_the_same() -> None:
    text = (
        '{"accounts": [{"name": "acme", "provider": "msgflash", "apiKeyEnv": "MSGFLASH_KEY_ACME"}]}'
    )
    accounts = parse_accounts(text, source="a.json", settings=settings(), env=ENV)
    assert accounts.msgflash["acme"].api_key == ACME_KEY
    # Unset optionals fall back to the v1 settings.
    assert accounts.msgflash["acme"].rate_limit == 10
    assert accounts.msgflash["acme"].base_url == "https://srv.msgflash.com"


def test_without_a_file_there_is_one_account_default_from_the_v1_variables() -> None:
    accounts = load_accounts(settings(MSGFLASH_WEBHOOK_SECRET="s1"), {})
    assert accounts.names() == (DEFAULT_ACCOUNT,)
    assert accounts.msgflash[DEFAULT_ACCOUNT].webhook_secrets == ("s1",)


def test_the_v1_default_also_holds_the_tether_organisation_of_the_tether_variables() -> None:
    accounts = load_accounts(
        settings(TETHER_BASE_URL="https://crm.example", TETHER_API_TOKEN="t"), {}
    )
    assert accounts.names() == (DEFAULT_ACCOUNT,)
    assert accounts.tether[DEFAULT_ACCOUNT].api_token == "t"
    assert accounts.tether[DEFAULT_ACCOUNT].base_url == "https://crm.example"


def test_a_file_keeps_the_v1_default_unless_it_names_its_own(tmp_path: Path) -> None:
    path = tmp_path / "accounts.yaml"
    path.write_text(CONTRACT_EXAMPLE)
    assert load_accounts(settings(RELAY_ACCOUNTS_FILE=str(path)), ENV).names() == (
        "default",
        "acme",
        "crm",
    )
    path.write_text(CONTRACT_EXAMPLE.replace("name: acme", "name: default"))
    accounts = load_accounts(settings(RELAY_ACCOUNTS_FILE=str(path)), ENV)
    assert accounts.msgflash[DEFAULT_ACCOUNT].api_key == ACME_KEY


@pytest.mark.parametrize(
    ("text", "env", "says"),
    [
        pytest.param("accounts: [", ENV, r"not valid YAML or JSON at line \d", id="unparsable"),
        pytest.param(
            CONTRACT_EXAMPLE.replace("defaultInstance", "defaultInstanse"),
            ENV,
            "account 'acme': key 'defaultInstanse': unknown key",
            id="unknown-key",
        ),
        pytest.param(
            CONTRACT_EXAMPLE,
            {k: v for k, v in ENV.items() if k != "MSGFLASH_KEY_ACME"},
            "account 'acme': key 'apiKeyEnv' names MSGFLASH_KEY_ACME, which is not set",
            id="unset-variable",
        ),
        pytest.param(
            CONTRACT_EXAMPLE.replace("name: crm", "name: acme"),
            ENV,
            "account 'acme': key 'name': appears more than once",
            id="duplicate-name",
        ),
        pytest.param(
            CONTRACT_EXAMPLE.replace("name: acme", "name: Acme_Corp"),
            ENV,
            "account 'Acme_Corp': key 'name': must be 1 to 32 lowercase",
            id="bad-name",
        ),
        pytest.param(
            CONTRACT_EXAMPLE.replace("provider: tether", "provider: sms"),
            ENV,
            "account 'crm': key 'provider': provider must be 'msgflash' or 'tether'",
            id="unknown-provider",
        ),
        pytest.param(
            CONTRACT_EXAMPLE.replace("    tokenEnv: TETHER_TOKEN_CRM\n", ""),
            ENV,
            "account 'crm': key 'tokenEnv': a Tether account needs tokenEnv",
            id="tether-without-credentials",
        ),
    ],
)
def test_each_mistake_stops_the_relay_naming_the_account_and_key(
    text: str, env: dict[str, str], says: str
) -> None:
    with pytest.raises(ConfigError, match=says) as raised:
        parse(text, env)
    assert ACME_KEY not in raised.value.message
    assert "RELAY_ACCOUNTS_FILE (accounts.yaml)" in raised.value.message


def test_a_missing_file_names_the_setting(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=r"RELAY_ACCOUNTS_FILE: cannot read .*nope.yaml"):
        load_accounts(settings(RELAY_ACCOUNTS_FILE=str(missing)), ENV)
