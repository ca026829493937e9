"""Settings: the contract's env table, errors that name the variable, secrets kept secret."""

from __future__ import annotations

import pytest

from service.contract.errors import ConfigError
from service.settings import Settings, load_settings

KEY = "msgf_live_" + "ab" * 32


def test_contract_defaults() -> None:
    s = load_settings({"MSGFLASH_API_KEY": KEY})
    assert s.amqp_url.get_secret_value() == "amqp://guest:guest@127.0.0.1:5672/"
    assert s.msgflash_base_url == "https://srv.msgflash.com"
    assert s.msgflash_rate_limit == 10
    assert s.relay_sandbox is False
    assert (s.relay_http_host, s.relay_http_port) == ("0.0.0.0", 8080)
    assert (s.relay_admin_host, s.relay_admin_port) == ("0.0.0.0", 9090)
    assert s.relay_prefetch == 64
    assert s.relay_state_url == "sqlite:///./relay-state.db"
    assert s.relay_default_instance is None
    assert s.ingress_tokens == ()
    assert s.relay_retry_max_attempts == 5
    assert s.relay_log_format == "json"
    assert s.relay_exchange_prefix == "msgflash"


def test_api_key_is_required_unless_sandbox() -> None:
    with pytest.raises(ConfigError, match="MSGFLASH_API_KEY"):
        load_settings({})
    assert load_settings({"RELAY_SANDBOX": "1"}).relay_sandbox is True


def test_the_bus_tools_need_no_msgflash_key() -> None:
    settings = load_settings({"AMQP_URL": "amqp://u:p@broker:5672/"}, relay=False)
    assert settings.msgflash_api_key is None
    assert settings.amqp_url.get_secret_value() == "amqp://u:p@broker:5672/"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MSGFLASH_RATE_LIMIT", "0"),
        ("RELAY_HTTP_PORT", "70000"),
        ("RELAY_PREFETCH", "many"),
        ("RELAY_STATE_URL", "postgres://x"),
        ("RELAY_LOG_FORMAT", "xml"),
        ("MSGFLASH_BASE_URL", "srv.msgflash.com"),
        ("AMQP_URL", "http://broker"),
        ("RELAY_SANDBOX", "perhaps"),
        ("RELAY_RETRY_DELAYS", "10,soon"),
    ],
)
def test_invalid_values_name_the_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings({"MSGFLASH_API_KEY": KEY, variable: value})
    assert variable in raised.value.message


def test_errors_never_echo_secret_values() -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings({"MSGFLASH_API_KEY": KEY, "AMQP_URL": "http://user:hunter2@broker"})
    assert "hunter2" not in raised.value.message


def test_secrets_are_hidden_from_repr() -> None:
    s = load_settings(
        {
            "MSGFLASH_API_KEY": KEY,
            "MSGFLASH_WEBHOOK_SECRET": "old,new",
            "RELAY_INGRESS_TOKENS": "t1",
        }
    )
    assert KEY not in repr(s) and "old" not in repr(s) and "t1" not in repr(s)
    assert s.webhook_secrets == ("old", "new")
    assert s.ingress_tokens == ("t1",)


def test_field_names_are_the_lowercased_variables() -> None:
    assert all(name == name.lower() for name in Settings.model_fields)
    assert "msgflash_webhook_secret" in Settings.model_fields


def test_the_embedded_sandbox_needs_a_fixed_port_since_the_client_is_pointed_at_it_first() -> None:
    with pytest.raises(ConfigError, match="RELAY_SANDBOX_PORT must name a port"):
        load_settings({"RELAY_SANDBOX": "1", "RELAY_SANDBOX_PORT": "0"})
    assert load_settings({"RELAY_SANDBOX": "1"}).msgflash_url == "http://127.0.0.1:8090"


# --- ingress tokens bound to sources ------------------------------------------------------
def _grants(value: str) -> list[tuple[str, tuple[str, ...]]]:
    settings = load_settings({"RELAY_SANDBOX": "1", "RELAY_INGRESS_TOKENS": value})
    return [(grant.token, grant.sources) for grant in settings.ingress_grants]


def test_ingress_tokens_bind_to_source_globs_and_bare_tokens_to_any_source() -> None:
    assert _grants("tok1=urn:orders-service|urn:billing/*, tok2") == [
        ("tok1", ("urn:orders-service", "urn:billing/*")),
        ("tok2", ()),
    ]


def test_base64_padding_stays_part_of_the_token() -> None:
    assert _grants("YWJjZA==,YWJj===urn:x") == [("YWJjZA==", ()), ("YWJj==", ("urn:x",))]


def test_only_the_token_is_a_secret_the_logs_must_scrub() -> None:
    settings = load_settings({"RELAY_SANDBOX": "1", "RELAY_INGRESS_TOKENS": "tok1=urn:a|urn:b"})
    assert settings.ingress_tokens == ("tok1",)


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("s3cr3t-tok=urn:a|", "entry 1 has an empty source pattern"),
        ("ok,s3cr3t tok=urn:a", "entry 2 holds a space"),
        ("s3cr3t-tok,s3cr3t-tok=urn:a", "entry 2 repeats an earlier token"),
    ],
)
def test_a_malformed_token_list_stops_the_relay_without_echoing_a_token(
    value: str, says: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"RELAY_SANDBOX": "1", "RELAY_INGRESS_TOKENS": value})
    assert "RELAY_INGRESS_TOKENS" in str(caught.value)
    assert says in str(caught.value)
    assert "s3cr3t" not in str(caught.value)


def test_a_redis_password_from_its_own_variable_joins_the_state_url() -> None:
    env = {"RELAY_SANDBOX": "1", "RELAY_REDIS_PASSWORD": "p@ss/word"}
    redis = load_settings({**env, "RELAY_STATE_URL": "redis://redis:6379/0"})
    sqlite = load_settings({**env, "RELAY_STATE_URL": "sqlite:///./x.db"})
    assert redis.state_url == "redis://:p%40ss%2Fword@redis:6379/0"
    assert sqlite.state_url == "sqlite:///./x.db"
    assert "p@ss" not in repr(redis)


def test_tether_defaults_leave_tether_unconfigured_and_paced_at_five_per_second() -> None:
    s = load_settings({"MSGFLASH_API_KEY": KEY})
    assert (s.tether_base_url, s.tether_api_token, s.tether_email) == (None, None, None)
    assert s.tether_rate_limit == 5


def test_a_tether_login_needs_both_email_and_password() -> None:
    with pytest.raises(ConfigError, match="TETHER_PASSWORD is missing"):
        load_settings({"MSGFLASH_API_KEY": KEY, "TETHER_EMAIL": "ops@example.com"})
    with pytest.raises(ConfigError, match="TETHER_EMAIL is missing"):
        load_settings({"MSGFLASH_API_KEY": KEY, "TETHER_PASSWORD": "pw"})


def test_the_tether_base_url_must_be_http_and_no_secret_is_echoed() -> None:
    with pytest.raises(ConfigError, match="TETHER_BASE_URL") as caught:
        load_settings(
            {"MSGFLASH_API_KEY": KEY, "TETHER_BASE_URL": "crm", "TETHER_API_TOKEN": "tk_secret"}
        )
    assert "tk_secret" not in caught.value.message
