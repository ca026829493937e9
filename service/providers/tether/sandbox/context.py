"""What one running Tether sandbox holds: config, each organisation's campaigns and quota
usage, tokens, log, faults; and the organisation a request was admitted for."""

from __future__ import annotations

import asyncio
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from service.providers.tether.sandbox.config import (
    SandboxOrganization,
    SandboxUser,
    TetherSandboxConfig,
)
from service.providers.tether.sandbox.faults import FaultInjector
from service.providers.tether.sandbox.ledger import Ledger, reservations_of


@dataclass
class LoggedRequest:
    seq: int
    at: float
    method: str
    path: str
    query: dict[str, str]
    auth: str | None  # "jwt", "token", "invalid" or None (no header)
    body: Any
    organization: str | None = None  # the name of the organisation whose credentials it bore
    status: int | None = None  # None until answered; stays None when the answer was lost
    code: str | None = None
    fault: str | None = None
    # W3C trace context only (traceparent, tracestate): never a credential.
    headers: dict[str, str] = field(default_factory=dict)

    def as_api(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Organization:
    """One organisation's own data: its campaigns and SMS sent, read through its ledger."""

    config: SandboxOrganization
    campaigns: dict[str, dict[str, Any]] = field(default_factory=dict)
    sent: dict[date, int] = field(default_factory=dict)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.config.timezone)

    def ledger(self) -> Ledger:
        return Ledger(
            self.config.daily_limit,
            self.zone,
            reservations_of(self.campaigns.values(), self.zone),
            dict(self.sent),
        )

    def user(self, user_id: str) -> SandboxUser | None:
        return next((u for u in self.config.users if u.id == user_id), None)


def organizations_of(config: TetherSandboxConfig) -> dict[str, Organization]:
    """Every organisation, empty, by name in the config's order."""
    return {org.name: Organization(org) for org in config.sandbox_organizations()}


@dataclass
class TetherSandbox:
    config: TetherSandboxConfig
    faults: FaultInjector = field(default_factory=FaultInjector)
    clock: Callable[[], float] = time.time
    organizations: dict[str, Organization] = field(default_factory=dict)
    error_shape: str = ""
    jwt_secret: bytes = field(default_factory=lambda: os.urandom(32))
    tokens_valid_from: float = 0.0  # tokens issued before this are refused (admin "expire")
    log: deque[LoggedRequest] = field(default_factory=deque)
    closing: asyncio.Event = field(default_factory=asyncio.Event)
    _seq: int = 0

    def __post_init__(self) -> None:
        self.log = deque(maxlen=self.config.request_log_limit)
        self.error_shape = self.error_shape or self.config.error_shape
        self.faults.configure(self.config.faults)
        self.organizations = organizations_of(self.config)

    def organization_of_user(self, user_id: str) -> Organization | None:
        return next((o for o in self.organizations.values() if o.user(user_id)), None)

    def open_entry(self, **fields: Any) -> LoggedRequest:
        self._seq += 1
        entry = LoggedRequest(seq=self._seq, at=self.clock(), **fields)
        self.log.append(entry)
        return entry

    def reset(self) -> None:
        self.organizations = organizations_of(self.config)
        self.log.clear()
        self.error_shape = self.config.error_shape
        self.faults.configure(self.config.faults)
        self.tokens_valid_from = 0.0


SANDBOX: web.AppKey[TetherSandbox] = web.AppKey("tether_sandbox", TetherSandbox)
ORGANIZATION = web.RequestKey("tether_organization", Organization)


def sandbox_of(request: web.Request) -> TetherSandbox:
    return request.app[SANDBOX]


def organization_of(request: web.Request) -> Organization:
    """The organisation whose credentials the request bore (set once it is authenticated)."""
    return request[ORGANIZATION]
