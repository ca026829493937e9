"""The contract's environment table as one model: the only place that reads ``os.environ``.

Field names are the lower-cased variable names, so ``MSGFLASH_RATE_LIMIT`` is
``Settings.msgflash_rate_limit`` and the README table can be checked against the model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.contract.errors import ConfigError

DEFAULT_SANDBOX_API_KEY = "msgf_live_" + "5a" * 32


class Settings(BaseSettings):
    """Every knob of the relay. Contract §1 first, then the relay's own (documented in README)."""

    model_config = SettingsConfigDict(
        case_sensitive=False, extra="ignore", frozen=True, env_ignore_empty=True
    )

    # --- contract §1 -----------------------------------------------------------------
    amqp_url: SecretStr = Field(
        SecretStr("amqp://guest:guest@127.0.0.1:5672/"), description="broker"
    )
    msgflash_base_url: str = Field(
        "https://srv.msgflash.com",
        description="MsgFlash API root (the sandbox's URL in tests)",
    )
    msgflash_api_key: SecretStr | None = Field(
        None, description="required unless RELAY_SANDBOX=1; never logged"
    )
    msgflash_webhook_secret: SecretStr | None = Field(
        None,
        description="HMAC secret(s) for incoming webhooks; comma-separated to allow rotation",
    )
    msgflash_rate_limit: float = Field(
        10.0,
        gt=0,
        le=100_000,
        description="requests/second per API key that the relay allows itself",
    )
    relay_sandbox: bool = Field(
        False,
        description="1: start the embedded MsgFlash and Tether sandboxes in-process and point "
        "the clients at them",
    )
    relay_http_host: str = Field(
        "0.0.0.0", description="bind address of the webhook, ingress, health and metrics server"
    )
    relay_http_port: int = Field(
        8080, ge=0, le=65535, description="port of the webhook, ingress, health and metrics server"
    )
    tether_base_url: str | None = Field(
        None,
        description="Tether API root (per-instance host); Tether commands fail with "
        "PROVIDER_NOT_CONFIGURED if unset and not sandboxed",
    )
    tether_api_token: SecretStr | None = Field(
        None,
        description="static bearer token (an API key); or TETHER_EMAIL + TETHER_PASSWORD to log "
        "in for a JWT (the token wins when both are set); never logged",
    )
    tether_email: SecretStr | None = Field(
        None, description="login email for a Tether JWT (with TETHER_PASSWORD); never logged"
    )
    tether_password: SecretStr | None = Field(
        None, description="login password for a Tether JWT (with TETHER_EMAIL); never logged"
    )
    tether_rate_limit: float = Field(
        5.0,
        gt=0,
        le=100_000,
        description="requests/second the relay allows itself per Tether account",
    )
    relay_prefetch: int = Field(
        64, ge=1, le=65535, description="AMQP prefetch per consumer (bounds in-flight commands)"
    )
    relay_state_url: str = Field(
        "sqlite:///./relay-state.db",
        description="idempotency + correlation store: sqlite:///PATH, redis://..., memory://",
    )
    relay_default_instance: str | None = Field(
        None, description="instance id or name used when a command names none"
    )
    relay_ingress_tokens: SecretStr | None = Field(
        None,
        description="comma-separated bearer tokens for the HTTP ingress; ingress disabled if unset",
    )
    relay_retry_max_attempts: int = Field(
        5, ge=1, le=50, description="in-process attempts per MsgFlash call (tenacity)"
    )
    relay_log_format: Literal["json", "console"] = Field("json", description="json or console")
    relay_exchange_prefix: str = Field(
        "msgflash",
        pattern=r"^[A-Za-z0-9_.-]{1,100}$",
        description="common prefix of every exchange and queue name",
    )

    # --- the relay's own (README "Further settings") ---------------------------------
    relay_log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="minimum log level"
    )
    relay_campaign_prefetch: int = Field(
        8, ge=1, le=65535, description="AMQP prefetch of the campaign consumer"
    )
    relay_tether_prefetch: int = Field(
        8, ge=1, le=65535, description="AMQP prefetch of the Tether consumer"
    )
    relay_tether_timeout: float = Field(
        10.0, gt=0, le=300, description="seconds before one Tether HTTP call is abandoned"
    )
    relay_max_body_bytes: int = Field(
        256 * 1024, ge=1024, description="largest command body accepted; larger is INVALID_EVENT"
    )
    relay_msgflash_timeout: float = Field(
        10.0, gt=0, le=300, description="seconds before one MsgFlash HTTP call is abandoned"
    )
    relay_instance_cache_ttl: float = Field(
        30.0, ge=0, description="seconds the instance list is cached for name resolution"
    )
    relay_campaign_preflight: bool = Field(
        True, description="read instance health before creating a campaign on a new/warming one"
    )
    relay_retry_delays: str = Field(
        "10,60,600,3600",
        pattern=r"^\s*\d+(\.\d+)?(\s*,\s*\d+(\.\d+)?)*\s*$",
        description="seconds of each deferred-retry tier (msgflash.retry queues), comma-separated",
    )
    relay_lease_seconds: float = Field(
        120.0, gt=0, description="idempotency claim lease; a holder silent longer is presumed dead"
    )
    relay_state_retention_seconds: float = Field(
        7 * 24 * 3600.0, gt=0, description="how long command outcomes and correlations are kept"
    )
    relay_outcome_unknown_policy: Literal["fail", "resend"] = Field(
        "fail",
        description="expired lease with no trace at MsgFlash: fail (OUTCOME_UNKNOWN) or resend",
    )
    relay_quota_probe_seconds: float = Field(
        300.0, gt=0, description="how often a quota-gated API key is probed again"
    )
    relay_drain_seconds: float = Field(
        25.0, ge=0, le=600, description="bound on finishing in-flight commands after SIGTERM"
    )
    relay_webhook_dedupe_seconds: float = Field(
        3600.0, ge=0, description="window in which a repeated webhook delivery is published once"
    )
    relay_sandbox_port: int = Field(
        8090, ge=0, le=65535, description="port of the embedded sandbox when RELAY_SANDBOX=1"
    )
    relay_tether_sandbox_port: int = Field(
        8091,
        ge=0,
        le=65535,
        description="port of the embedded Tether sandbox when RELAY_SANDBOX=1",
    )

    @field_validator("msgflash_base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an http(s) URL such as https://srv.msgflash.com")
        return value.rstrip("/")

    @field_validator("tether_base_url")
    @classmethod
    def _tether_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an http(s) URL such as https://crm.example.com")
        return value.rstrip("/")

    @field_validator("amqp_url")
    @classmethod
    def _amqp_url(cls, value: SecretStr) -> SecretStr:
        if urlsplit(value.get_secret_value()).scheme not in ("amqp", "amqps"):
            raise ValueError("must be an amqp:// or amqps:// URL")
        return value

    @field_validator("relay_state_url")
    @classmethod
    def _state_url(cls, value: str) -> str:
        if value == "memory://" or value.startswith(("sqlite:///", "redis://", "rediss://")):
            return value
        raise ValueError("must be sqlite:///PATH, redis://HOST:PORT/DB or memory://")

    @model_validator(mode="after")
    def _api_key_unless_sandbox(self) -> Settings:
        if self.msgflash_api_key is None and not self.relay_sandbox:
            raise ValueError(
                "MSGFLASH_API_KEY is required: set it to your MsgFlash API key "
                "(or set RELAY_SANDBOX=1 to run against the embedded sandbox)"
            )
        return self

    @model_validator(mode="after")
    def _fixed_sandbox_port(self) -> Settings:
        if self.relay_sandbox and self.relay_sandbox_port == 0:
            raise ValueError(
                "RELAY_SANDBOX_PORT must name a port when RELAY_SANDBOX=1 (the client is pointed "
                "at the embedded sandbox before it listens): set a free port such as 8090"
            )
        if self.relay_sandbox and self.relay_tether_sandbox_port == 0:
            raise ValueError(
                "RELAY_TETHER_SANDBOX_PORT must name a port when RELAY_SANDBOX=1 (the Tether "
                "client is pointed at it before it listens): set a free port such as 8091"
            )
        return self

    @model_validator(mode="after")
    def _one_tether_credential(self) -> Settings:
        login = (self.tether_email is not None, self.tether_password is not None)
        if self.tether_api_token is None and login[0] != login[1]:
            missing = "TETHER_PASSWORD" if login[0] else "TETHER_EMAIL"
            raise ValueError(
                f"{missing} is missing: TETHER_EMAIL and TETHER_PASSWORD go together "
                "(or set TETHER_API_TOKEN alone)"
            )
        return self

    # --- derived views -----------------------------------------------------------------
    @property
    def api_key(self) -> str:
        """The key the client sends; the sandbox's default key when running embedded."""
        if self.msgflash_api_key is not None:
            return self.msgflash_api_key.get_secret_value()
        return DEFAULT_SANDBOX_API_KEY

    @property
    def webhook_secrets(self) -> tuple[str, ...]:
        return _split_secret(self.msgflash_webhook_secret)

    @property
    def ingress_tokens(self) -> tuple[str, ...]:
        return _split_secret(self.relay_ingress_tokens)

    @property
    def msgflash_url(self) -> str:
        """Where the client calls: the embedded sandbox when RELAY_SANDBOX=1."""
        if self.relay_sandbox:
            return f"http://127.0.0.1:{self.relay_sandbox_port}"
        return self.msgflash_base_url

    @property
    def tether_url(self) -> str | None:
        """Where the Tether client calls: TETHER_BASE_URL, else the embedded Tether sandbox when
        RELAY_SANDBOX=1; None when Tether is not configured."""
        if self.tether_base_url is not None:
            return self.tether_base_url
        if self.relay_sandbox:
            return f"http://127.0.0.1:{self.relay_tether_sandbox_port}"
        return None

    @property
    def retry_delays(self) -> tuple[float, ...]:
        return tuple(float(part) for part in self.relay_retry_delays.split(","))


def _split_secret(value: SecretStr | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return tuple(part.strip() for part in value.get_secret_value().split(",") if part.strip())


def env_name(field: str) -> str:
    return field.upper()


def load_settings(env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Build Settings from the environment (or ``env``), turning errors into a ConfigError.

    The message names each variable at fault and what to do, and never echoes a secret.
    """
    try:
        if env is None:
            return Settings(**overrides)  # type: ignore[arg-type]
        lowered = {key.lower(): value for key, value in env.items() if value != ""}
        known = {name: lowered[name] for name in Settings.model_fields if name in lowered}
        return Settings.model_validate({**known, **overrides})
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    lines = ["invalid configuration:"]
    for error in exc.errors():
        location = [str(part) for part in error["loc"]]
        message = error["msg"].removeprefix("Value error, ")
        if location:
            name = env_name(location[0])
            secret = Settings.model_fields[location[0]].annotation in (SecretStr, SecretStr | None)
            shown = "" if secret or "input" not in error else f" (got {error['input']!r})"
            lines.append(f"  {name}: {message}{shown}")
        else:
            lines.append(f"  {message}")
    return "\n".join(lines)
