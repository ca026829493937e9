"""How a sandbox is set up: keys, plan, limits, timing, faults and seed, from code or a file."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from service.contract.errors import ConfigError
from service.providers.msgflash.sandbox.faults import FaultSettings
from service.providers.msgflash.sandbox.plans import DEFAULT_PLANS, PlanSpec
from service.providers.msgflash.sandbox.seed import SeedData
from service.settings import DEFAULT_SANDBOX_API_KEY

_API_KEY = re.compile(r"^msgf_live_[0-9a-f]{64}$")


class SandboxConfig(BaseModel):
    """Every limit of the simulator is configurable; the defaults match MsgFlash's."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    api_keys: tuple[str, ...] = Field((DEFAULT_SANDBOX_API_KEY,), min_length=1)
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

    @field_validator("api_keys")
    @classmethod
    def _key_format(cls, keys: tuple[str, ...]) -> tuple[str, ...]:
        for position, key in enumerate(keys):
            if not _API_KEY.match(key):
                raise ValueError(
                    f"key #{position + 1} is not a MsgFlash key: expected 'msgf_live_' "
                    "followed by 64 lowercase hex characters"
                )
        return keys

    @model_validator(mode="after")
    def _plan_exists(self) -> SandboxConfig:
        if self.plan not in self.plan_table():
            known = ", ".join(sorted(self.plan_table()))
            raise ValueError(f"plan {self.plan!r} is not in the plan table ({known})")
        return self

    def plan_table(self) -> dict[str, PlanSpec]:
        return {**DEFAULT_PLANS, **self.plans}

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


def _describe(origin: str, exc: ValidationError) -> str:
    """Name each setting at fault; never echo an API key or a webhook secret."""
    lines = [f"invalid sandbox config ({origin}):"]
    for error in exc.errors():
        location = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        secret = any(part in ("api_keys", "secret") for part in map(str, error["loc"]))
        hidden = secret or not location or isinstance(error.get("input"), dict)
        shown = "" if hidden or "input" not in error else f" (got {error['input']!r:.80})"
        location = location or "(top level)"
        lines.append(f"  {location}: {message}{shown}")
    return "\n".join(lines)
