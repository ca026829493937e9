"""How a Tether sandbox is set up. Every answer to a fact-sheet gap is a setting here.

Defaults: one admin user who logs in with ``DEFAULT_EMAIL`` / ``DEFAULT_PASSWORD``, the static
API token ``DEFAULT_API_TOKEN``, a 500-SMS daily quota in America/Toronto, errors in the nested
``{error: {code, message}}`` shape.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from service.contract.errors import ConfigError
from service.providers.tether.sandbox.faults import FaultSettings

DEFAULT_EMAIL = "ops@tether.example"
DEFAULT_PASSWORD = "tether-sandbox-password"
DEFAULT_API_TOKEN = "tk_live_" + "7c" * 16
ORGANIZATION_ID = "665f1a0c0e0a4b001a2c0001"
USER_ID = "665f1a0c0e0a4b001a2c0002"

ErrorShape = Literal["string", "nested", "flat"]


class SandboxUser(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = USER_ID
    email: str = DEFAULT_EMAIL
    password: str = Field(DEFAULT_PASSWORD, repr=False)
    full_name: str = "Sandbox Operator"
    access_role: Literal["SUPERADMIN", "ADMIN", "DEPARTMENT_HEAD", "SALES_REP"] = "ADMIN"


class TetherSandboxConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    users: tuple[SandboxUser, ...] = Field((SandboxUser(),), min_length=1)
    organization_id: str = ORGANIZATION_ID
    # G1: whether a static API token works on campaign routes (the docs never say).
    api_tokens: tuple[str, ...] = Field((DEFAULT_API_TOKEN,), repr=False)
    # G2 / A3: login token lifetime (Tether's tokenExpiryHours; no default is documented).
    token_expiry_seconds: float = Field(24 * 3600.0, gt=0)
    # X1 / R5: the one error-body shape this sandbox answers with (401s on a bad token always
    # use A5's documented {"error": "Invalid or expired token"}).
    error_shape: ErrorShape = "nested"
    # X11: the create route file declares 200, the seed says 201.
    create_status: Literal[200, 201] = 200
    # C8 / R8: the daily SMS quota ledger. None = unlimited plan.
    daily_limit: int | None = Field(500, ge=0)
    plan: str = "growth"
    timezone: str = "America/Toronto"
    # G4: a create that does not fit its day's quota: refused with 400, or allowed.
    over_quota_create: Literal["reject", "allow"] = "reject"
    # C11: unlimited plans split this many recipients per day.
    unlimited_segment_size: int = Field(100, ge=1)
    request_log_limit: int = Field(100_000, ge=0)
    faults: FaultSettings | None = None

    @classmethod
    def from_file(cls, path: str | Path) -> TetherSandboxConfig:
        source = Path(path)
        try:
            text = source.read_text(encoding="utf-8")
            raw: Any = json.loads(text) if source.suffix == ".json" else yaml.safe_load(text)
        except (OSError, ValueError, yaml.YAMLError) as exc:
            raise ConfigError(
                f"tether sandbox config {source.name}: cannot read it: {exc}"
            ) from None
        return cls.from_mapping(raw or {}, origin=source.name)

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any], *, origin: str = "config") -> TetherSandboxConfig:
        try:
            return cls.model_validate(dict(raw))
        except ValidationError as exc:
            lines = [f"invalid tether sandbox config ({origin}):"]
            for error in exc.errors():
                where = ".".join(str(p) for p in error["loc"]) or "(top level)"
                lines.append(f"  {where}: {error['msg'].removeprefix('Value error, ')}")
            raise ConfigError("\n".join(lines)) from None
