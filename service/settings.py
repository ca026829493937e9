"""The contract's environment table as one model: the only place that reads ``os.environ``.

Field names are the lower-cased variable names, so ``MSGFLASH_RATE_LIMIT`` is
``Settings.msgflash_rate_limit`` and the README table can be checked against the model.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Literal
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.contract.amqp import Topology

# The one account built from the MSGFLASH_* variables (contract §7), re-exported for the wiring.
from service.contract.commands import DEFAULT_ACCOUNT as DEFAULT_ACCOUNT
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
        "0.0.0.0", description="public server: webhooks and ingress (bind address)"
    )
    relay_http_port: int = Field(
        8080, ge=0, le=65535, description="public server: webhooks and ingress (port)"
    )
    relay_admin_host: str = Field(
        "0.0.0.0", description="admin server: /healthz, /readyz, /metrics (bind address)"
    )
    relay_admin_port: int = Field(
        9090,
        ge=0,
        le=65535,
        description="admin server: /healthz, /readyz, /metrics; never exposed with the public port",
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
    relay_accounts_file: str | None = Field(
        None,
        description="YAML or JSON file of accounts (contract §7); unset: one account 'default' "
        "from the MSGFLASH_* variables",
    )
    relay_default_instance: str | None = Field(
        None, description="instance id or name used when a command names none"
    )
    relay_ingress_tokens: SecretStr | None = Field(
        None,
        description="comma-separated bearer tokens for the HTTP ingress, each TOKEN or "
        "TOKEN=PATTERN|PATTERN (the CloudEvents sources it may use, shell-style globs); "
        "ingress disabled if unset",
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
    relay_account_in_flight: int = Field(
        16,
        ge=0,
        le=65535,
        description="commands of one account in flight at once, per provider (its lanes; a "
        "Tether lane is at most half RELAY_TETHER_PREFETCH); more are moved to its own queue; 0 "
        "turns lanes off",
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
    relay_amqp_heartbeat_seconds: int = Field(
        5,
        ge=1,
        le=600,
        description="AMQP heartbeat interval; a silent broker link is dropped within two",
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
        15.0,
        gt=0,
        description="idempotency claim lease, renewed by its live holder every third of it; a "
        "holder silent longer is presumed dead and its commands are taken over",
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
    relay_quota_max_wait_seconds: float = Field(
        900.0,
        ge=0,
        description="how long a message.send waits for a used-up monthly quota before it fails "
        "with MsgFlash's code and is dead-lettered (a schedule or campaign waits until its start "
        "time instead, or as a send once replayed past it)",
    )
    relay_drain_seconds: float = Field(
        25.0, ge=0, le=600, description="bound on finishing in-flight commands after SIGTERM"
    )
    relay_webhook_dedupe_seconds: float = Field(
        3600.0,
        ge=0,
        description="window in which a repeated webhook delivery is published once; "
        "never shorter than RELAY_WEBHOOK_TOLERANCE_SECONDS plus 5 minutes",
    )
    relay_webhook_tolerance_seconds: float = Field(
        21600.0,
        gt=0,
        description="oldest webhook payload timestamp accepted; older deliveries are refused "
        "as replays (MsgFlash's 5 attempts end well within it)",
    )
    relay_webhook_require_timestamp: bool = Field(
        False,
        description="refuse webhook deliveries without a payload timestamp; off, they are "
        "taken and guarded against replays by the dedupe window only",
    )
    relay_http_header_timeout: float = Field(
        10.0,
        gt=0,
        le=300,
        description="public and admin servers: seconds a client has to send its headers",
    )
    relay_http_body_timeout: float = Field(
        30.0, gt=0, le=600, description="public server: seconds a client has to send its body"
    )
    relay_http_max_connections: int = Field(
        1024,
        ge=1,
        le=65535,
        description="public and admin servers, each: open connections at most; more are closed",
    )
    relay_redis_password: SecretStr | None = Field(
        None, description="password for a redis:// RELAY_STATE_URL, kept out of the URL"
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

    @field_validator("relay_ingress_tokens")
    @classmethod
    def _ingress_grammar(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parse_ingress_tokens(value.get_secret_value())
        return value

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
    def ingress_grants(self) -> tuple[IngressGrant, ...]:
        if self.relay_ingress_tokens is None:
            return ()
        return parse_ingress_tokens(self.relay_ingress_tokens.get_secret_value())

    @property
    def ingress_tokens(self) -> tuple[str, ...]:
        return tuple(grant.token for grant in self.ingress_grants)

    @property
    def state_url(self) -> str:
        """RELAY_STATE_URL with RELAY_REDIS_PASSWORD in it, when both are redis and set."""
        return with_password(self.relay_state_url, self.relay_redis_password)

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

    @property
    def topology(self) -> Topology:
        """Every exchange and queue name, from RELAY_EXCHANGE_PREFIX and the retry tiers."""
        return Topology(prefix=self.relay_exchange_prefix, retry_delays=self.retry_delays)


@dataclass(frozen=True, slots=True)
class IngressGrant:
    """One ingress token and the CloudEvents sources it may use (empty: any source)."""

    token: str = field(repr=False)
    sources: tuple[str, ...] = ()

    def allows(self, source: str) -> bool:
        return not self.sources or any(fnmatchcase(source, glob) for glob in self.sources)


# TOKEN=PATTERN|PATTERN; a token's trailing "=" (base64 padding) stays part of the token.
_GRANT = re.compile(r"([^=]+=*)=([^=].*)", re.DOTALL)


def parse_ingress_tokens(text: str) -> tuple[IngressGrant, ...]:
    """RELAY_INGRESS_TOKENS as grants. Errors name entries by position, never by content."""
    grants: list[IngressGrant] = []
    entries = [entry.strip() for entry in text.split(",") if entry.strip()]
    for number, entry in enumerate(entries, start=1):
        match = _GRANT.fullmatch(entry)
        token, patterns = (match.group(1), match.group(2)) if match else (entry, "")
        sources = tuple(glob.strip() for glob in patterns.split("|")) if patterns else ()
        if any(char.isspace() for char in token):
            raise ValueError(f"entry {number} holds a space in its token: write TOKEN=PATTERN")
        if "" in sources:
            raise ValueError(
                f"entry {number} has an empty source pattern: write TOKEN=PATTERN|PATTERN"
            )
        if token in (grant.token for grant in grants):
            raise ValueError(f"entry {number} repeats an earlier token: give each token once")
        grants.append(IngressGrant(token, sources))
    return tuple(grants)


def with_password(url: str, password: SecretStr | None) -> str:
    parts = urlsplit(url)
    if password is None or parts.scheme not in ("redis", "rediss") or parts.password:
        return url
    secret = quote(password.get_secret_value(), safe="")
    netloc = f"{parts.username or ''}:{secret}@{parts.netloc.rpartition('@')[2]}"
    return urlunsplit(parts._replace(netloc=netloc))


def _split_secret(value: SecretStr | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return tuple(part.strip() for part in value.get_secret_value().split(",") if part.strip())


def env_name(field: str) -> str:
    return field.upper()


def load_settings(
    env: Mapping[str, str] | None = None, *, relay: bool = True, **overrides: object
) -> Settings:
    """Build Settings from the environment (or ``env``), turning errors into a ConfigError.

    The message names each variable at fault and what to do, and never echoes a secret.
    ``relay=False`` is for the producer and operator tools (send, dlq, topology): they only
    talk to the broker, so they do not ask for MsgFlash credentials.
    """
    try:
        if env is None:
            settings = Settings(**overrides)  # type: ignore[arg-type]
        else:
            lowered = {key.lower(): value for key, value in env.items() if value != ""}
            known = {name: lowered[name] for name in Settings.model_fields if name in lowered}
            settings = Settings.model_validate({**known, **overrides})
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
    if relay and settings.msgflash_api_key is None and not settings.relay_sandbox:
        raise ConfigError(
            "invalid configuration:\n  MSGFLASH_API_KEY is required to run the relay: set it "
            "to your MsgFlash API key (or RELAY_SANDBOX=1 for the embedded sandbox)"
        )
    return settings


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
