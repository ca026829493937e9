"""How a Tether sandbox is set up. Every answer to a fact-sheet gap is a setting here.

Defaults: one organisation, ``default``, whose admin user logs in with ``DEFAULT_EMAIL`` /
``DEFAULT_PASSWORD``, with the static API token ``DEFAULT_API_TOKEN`` and a 500-SMS daily quota
in America/Toronto; errors in the nested ``{error: {code, message}}`` shape. ``organizations``
lists several instead, each with its own users, tokens, quota and campaigns.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from service.accounts import ACCOUNT_NAME_PATTERN
from service.contract.errors import ConfigError
from service.providers.tether.sandbox.faults import FaultSettings
from service.settings import DEFAULT_ACCOUNT

DEFAULT_EMAIL = "ops@tether.example"
DEFAULT_PASSWORD = "tether-sandbox-password"
DEFAULT_API_TOKEN = "tk_live_" + "7c" * 16
ORGANIZATION_ID = "665f1a0c0e0a4b001a2c0001"
USER_ID = "665f1a0c0e0a4b001a2c0002"

ErrorShape = Literal["string", "nested", "flat"]
PhoneRule = Literal["e164", "loose"]
ListShape = Literal["data", "campaigns", "bare"]
OBJECT_ID_PATTERN = r"^[0-9a-f]{24}$"
# Each organisation's own: who logs in, its tokens, and its quota ledger.
_OWN = ("users", "organization_id", "api_tokens")
_QUOTA = ("daily_limit", "plan", "timezone")


class SandboxUser(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = USER_ID
    email: str = DEFAULT_EMAIL
    password: str = Field(DEFAULT_PASSWORD, repr=False)
    full_name: str = "Sandbox Operator"
    access_role: Literal["SUPERADMIN", "ADMIN", "DEPARTMENT_HEAD", "SALES_REP"] = "ADMIN"


class SandboxOrganization(BaseModel):
    """One Tether organisation: its users and tokens see its campaigns and quota only. Quota
    settings left out are the config's top-level ones."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=ACCOUNT_NAME_PATTERN)
    id: str = Field(pattern=OBJECT_ID_PATTERN)
    users: tuple[SandboxUser, ...] = Field(min_length=1)
    api_tokens: tuple[str, ...] = Field((), repr=False)
    daily_limit: int | None = Field(500, ge=0)
    plan: str = "growth"
    timezone: str = "America/Toronto"


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
    # G4: a create without scheduleDate: scheduled now, or refused with 400.
    missing_schedule: Literal["now", "reject"] = "now"
    # G4 / P5: the campaign list's envelope is undocumented; Tether's other lists come as
    # {success, data: [...]}, under a name of their own (M6's {conversations: [...]}) or bare.
    list_shape: ListShape = "data"
    # G7 / K4: no phone rule is published. e164: a plus, a country code, 7 to 15 digits;
    # loose: the same digits with the plus optional and the separators people type, stored
    # as E.164 (as Tether normalises Sinch's numbers).
    phone_rule: PhoneRule = "e164"
    # X12 / C11: auto-segment reads firstSegmentTime as "browser-local", a zone the server
    # cannot know: read as UTC, or in the organisation's timezone.
    segment_time: Literal["utc", "org_local"] = "utc"
    # C11: unlimited plans split this many recipients per day.
    unlimited_segment_size: int = Field(100, ge=1)
    request_log_limit: int = Field(100_000, ge=0)
    faults: FaultSettings | None = None
    # Several organisations; empty: one, ``default``, from users, organization_id, api_tokens
    # and the quota settings above.
    organizations: tuple[SandboxOrganization, ...] = ()

    @model_validator(mode="after")
    def _organizations_hold(self) -> TetherSandboxConfig:
        problems = [
            f"{name}: with organizations listed, give each its own under "
            f"organizations.N.{name} and remove the top-level {name}"
            for name in _OWN
            if self.organizations and name in self.model_fields_set
        ]
        problems += _repeats(self.organizations)
        if problems:
            raise ValueError("\n  ".join(problems))
        return self

    def sandbox_organizations(self) -> tuple[SandboxOrganization, ...]:
        """Every organisation, its quota settings decided."""
        quota = {name: getattr(self, name) for name in _QUOTA}
        if not self.organizations:
            only = SandboxOrganization(
                name=DEFAULT_ACCOUNT,
                id=self.organization_id,
                users=self.users,
                api_tokens=self.api_tokens,
                **quota,
            )
            return (only,)
        return tuple(
            org.model_copy(update={k: v for k, v in quota.items() if k not in org.model_fields_set})
            for org in self.organizations
        )

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
                where = ".".join(str(p) for p in error["loc"])
                message = error["msg"].removeprefix("Value error, ")
                # A whole-config problem names its own settings (the model validator's).
                lines.append(f"  {where}: {message}" if where else f"  {message}")
            raise ConfigError("\n".join(lines)) from None


def _repeats(organizations: tuple[SandboxOrganization, ...]) -> list[str]:
    """Names, ids, logins and tokens each belong to one organisation: a login or a token
    must say whose data it opens. Never shows a token."""
    problems: list[str] = []
    owners: dict[tuple[str, str], int] = {}
    for position, org in enumerate(organizations):
        claims = [("name", org.name, "name"), ("id", org.id, "id")]
        claims += [("email", u.email, f"users.{i}.email") for i, u in enumerate(org.users)]
        claims += [("user id", u.id, f"users.{i}.id") for i, u in enumerate(org.users)]
        claims += [("token", t, f"api_tokens.{i}") for i, t in enumerate(org.api_tokens)]
        for kind, value, where in claims:
            owner = owners.setdefault((kind, value), position)
            if owner != position:
                problems.append(
                    f"organizations.{position}.{where}: this {kind} already belongs to "
                    f"organizations.{owner} ({organizations[owner].name}); give each "
                    "organisation its own"
                )
    return problems
