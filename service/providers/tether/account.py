"""One Tether account: where it lives, how the relay authenticates, how fast it may call.

Kept in one small object so that several accounts (Tether organisations) can later be a map
of these; the client receives one and knows nothing of where it came from.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class TetherCredentials:
    """A static API token, or an email and password to log in for a JWT. Never in a repr."""

    api_token: str | None = field(default=None, repr=False)
    email: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.api_token is None and (self.email is None or self.password is None):
            raise ValueError(
                "Tether credentials need TETHER_API_TOKEN, or TETHER_EMAIL and TETHER_PASSWORD"
            )

    @property
    def uses_login(self) -> bool:
        return self.api_token is None

    @property
    def secrets(self) -> tuple[str, ...]:
        """What must never appear in a log line or an error message."""
        return tuple(s for s in (self.api_token, self.password) if s)


@dataclass(frozen=True, slots=True)
class TetherAccount:
    name: str
    base_url: str
    credentials: TetherCredentials
    rate_limit: float = 5.0

    @property
    def pacing_key(self) -> str:
        """The rate limiter's key: per account, never a credential (the limiter may log it)."""
        digest = hashlib.sha256(f"{self.base_url}|{self.name}".encode()).hexdigest()[:16]
        return f"tether:{self.name}:{digest}"
