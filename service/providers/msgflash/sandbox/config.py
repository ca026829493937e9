"""How a sandbox is set up: its accounts (keys, plan, seed), limits, timing and faults, from
code or a file. Without ``accounts``, the top-level ``api_keys``, ``plan`` and ``seed`` make one
account, ``default``, as before accounts existed."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from service.accounts import ACCOUNT_NAME_PATTERN
from service.contract.errors import ConfigError
from service.providers.msgflash.sandbox.faults import FaultSettings
from service.providers.msgflash.sandbox.plans import DEFAULT_PLANS, PlanSpec
from service.providers.msgflash.sandbox.seed import SeedData
from service.settings import DEFAULT_ACCOUNT, DEFAULT_SANDBOX_API_KEY

_API_KEY = re.compile(r"^msgf_live_[0-9a-f]{64}$")


def _check_key_format(keys: tuple[str, ...]) -> tuple[str, ...]:
    for position, key in enumerate(keys):
        if not _API_KEY.match(key):
            raise ValueError(
                f"key #{position + 1} is not a MsgFlash key: expected 'msgf_live_' "
                "followed by 64 lowercase hex characters"
            )
    return keys


# Never in a repr: a config may be logged or shown in a failed assertion.
ApiKeys = Annotated[
    tuple[str, ...], Field(min_length=1, repr=False), AfterValidator(_check_key_format)
]


class SandboxAccount(BaseModel):
    """One MsgFlash account, as on the real service: its keys see its data and nobody else's."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=ACCOUNT_NAME_PATTERN)
    api_keys: ApiKeys
    plan: str | None = None  # None: the config's top-level plan
    seed: SeedData | None = None  # None: the default seed (the same fixed ids in every account)


class SandboxConfig(BaseModel):
    """Every limit of the simulator is configurable; the defaults match MsgFlash's."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    api_keys: ApiKeys = (DEFAULT_SANDBOX_API_KEY,)
    plan: str = "max"
    # Extra or replacement rows of the plan table, keyed by plan code.
    plans: Mapping[str, PlanSpec] = Field(default_factory=dict)
    rate_limit_per_second: float | None = Field(10.0, gt=0)  # None = unlimited (benchmarks)
    rate_limit_window: Literal["sliding", "fixed"] = "sliding"  # per API key, 1-second window
    lifecycle_step_seconds: float = Field(1.0, ge=0)  # queued->sent->delivered->read step
    webhook_retry_base_seconds: float = Field(1.0, ge=0)  # exponential backoff base
    webhook_max_attempts: int = Field(5, ge=1, le=20)  # MsgFlash: up to 5 attempts in all
    webhook_timeout_seconds: float = Field(10.0, gt=0)  # per delivery attempt
    allow_http_webhooks: bool = True  # real MsgFlash requires https; loopback http allowed here
    request_log_limit: int = Field(100_000, ge=0)
    # The fact sheet has no campaign list in the public API (the console has one): off, the
    # sandbox answers GET /api/v1/campaigns as MsgFlash would, 404; on, it lists campaigns.
    campaign_list: bool = False
    faults: FaultSettings | None = None  # active from the start
    seed: SeedData | None = None  # None = the default seed
    # Several accounts, each with its own keys, plan and data; empty: one account, ``default``,
    # made of the top-level api_keys, plan and seed.
    accounts: tuple[SandboxAccount, ...] = ()

    @model_validator(mode="after")
    def _accounts_hold(self) -> SandboxConfig:
        problems = [*_mixed_settings(self), *_repeats(self.accounts), *_unknown_plans(self)]
        if problems:
            raise ValueError("\n  ".join(problems))
        return self

    def plan_table(self) -> dict[str, PlanSpec]:
        return {**DEFAULT_PLANS, **self.plans}

    def sandbox_accounts(self) -> tuple[SandboxAccount, ...]:
        """Every account, each with its plan decided; the top-level settings as ``default``
        when no accounts are listed."""
        if not self.accounts:
            only = SandboxAccount(
                name=DEFAULT_ACCOUNT, api_keys=self.api_keys, plan=self.plan, seed=self.seed
            )
            return (only,)
        return tuple(
            account if account.plan else account.model_copy(update={"plan": self.plan})
            for account in self.accounts
        )

    @classmethod
    def from_file(cls, path: str | Path) -> SandboxConfig:
        """Read a JSON or YAML file (by extension; YAML otherwise, a superset of JSON)."""
        source = Path(path)
        try:
            text = source.read_text(encoding="utf-8")
            raw: Any = json.loads(text) if source.suffix == ".json" else yaml.safe_load(text)
        except (OSError, ValueError, yaml.YAMLError) as exc:
            raise ConfigError(f"sandbox config {source.name}: cannot read it: {exc}") from None
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise ConfigError(f"sandbox config {source.name}: the top level must be a mapping")
        return cls.from_mapping(raw, origin=source.name)

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any], *, origin: str = "config") -> SandboxConfig:
        try:
            return cls.model_validate(dict(raw))
        except ValidationError as exc:
            raise ConfigError(_describe(origin, exc)) from None


def _mixed_settings(config: SandboxConfig) -> list[str]:
    """With ``accounts``, keys and seed belong to each account; a top-level one would be
    silently ignored, so it is refused."""
    if not config.accounts:
        return []
    return [
        f"{name}: with accounts listed, give each account its own under accounts.N.{name} "
        f"and remove the top-level {name}"
        for name in ("api_keys", "seed")
        if name in config.model_fields_set
    ]


def _repeats(accounts: tuple[SandboxAccount, ...]) -> list[str]:
    problems: list[str] = []
    owners: dict[str, str] = {}
    names: set[str] = set()
    for position, account in enumerate(accounts):
        if account.name in names:
            problems.append(
                f"accounts.{position}.name: {account.name!r} is used twice; give each account "
                "a name of its own"
            )
        names.add(account.name)
        for index, key in enumerate(account.api_keys):
            owner = owners.setdefault(key, account.name)
            if owner != account.name:
                problems.append(
                    f"accounts.{position}.api_keys.{index}: this key already belongs to "
                    f"account {owner!r}; an API key belongs to one account, so use another key"
                )
    return problems


def _unknown_plans(config: SandboxConfig) -> list[str]:
    """Each plan named where it is named: an account's own, or the top-level one it inherits."""
    table = config.plan_table()
    named = [(f"accounts.{i}.plan", a.plan) for i, a in enumerate(config.accounts) if a.plan]
    if not config.accounts or any(a.plan is None for a in config.accounts):
        named.insert(0, ("plan", config.plan))
    known = ", ".join(sorted(table))
    return [
        f"{field}: plan {plan!r} is not in the plan table ({known}); use one of those or add it "
        "under plans"
        for field, plan in named
        if plan not in table
    ]


def _describe(origin: str, exc: ValidationError) -> str:
    """Name each setting at fault; never echo an API key or a webhook secret."""
    lines = [f"invalid sandbox config ({origin}):"]
    for error in exc.errors():
        location = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        secret = any(part in ("api_keys", "secret") for part in map(str, error["loc"]))
        # An unknown setting may be a misspelt api_keys: its value is not shown either.
        unknown = error["type"] == "extra_forbidden"
        hidden = secret or unknown or not location or isinstance(error.get("input"), dict)
        shown = "" if hidden or "input" not in error else f" (got {error['input']!r:.80})"
        # A whole-config problem names its own settings (the model validator's messages).
        lines.append(f"  {location}: {message}{shown}" if location else f"  {message}")
    return "\n".join(lines)
