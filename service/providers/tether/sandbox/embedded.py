"""The organisations the relay's embedded sandbox keeps: one per relay Tether account, so each
account's campaigns and daily quota stay its own, as on Tether.

An account without credentials of its own logs in with ``sandbox_login(name)``: the public
default user for ``default``, a login named after the account for the others.
"""

from __future__ import annotations

import hashlib
import secrets

from service.providers.tether.sandbox.config import (
    DEFAULT_API_TOKEN,
    DEFAULT_EMAIL,
    DEFAULT_PASSWORD,
    ORGANIZATION_ID,
    USER_ID,
    SandboxOrganization,
    SandboxUser,
)
from service.settings import DEFAULT_ACCOUNT


def sandbox_login(account: str) -> tuple[str, str]:
    """The email and password of ``account``'s sandbox user."""
    if account == DEFAULT_ACCOUNT:
        return DEFAULT_EMAIL, DEFAULT_PASSWORD
    return f"ops+{account}@tether.example", DEFAULT_PASSWORD


def _object_id(kind: str, account: str) -> str:
    """A stable 24-hex id per account, so a restarted relay's organisation keeps its id."""
    return hashlib.sha256(f"{kind}:{account}".encode()).hexdigest()[:24]


def relay_organization(
    account: str, *, api_token: str | None, email: str | None, password: str | None
) -> SandboxOrganization:
    """``account``'s organisation, opened by the account's own credentials: its token, or its
    email and password (with a token only, the user's password is random: nobody logs in).
    ``default`` keeps the fixed ids and the public default token."""
    default = account == DEFAULT_ACCOUNT
    login_email = email or sandbox_login(account)[0]
    login_password = password or (secrets.token_hex(16) if api_token else DEFAULT_PASSWORD)
    tokens = [api_token] if api_token else []
    if default and DEFAULT_API_TOKEN not in tokens:
        tokens.append(DEFAULT_API_TOKEN)
    user = SandboxUser(
        id=USER_ID if default else _object_id("user", account),
        email=login_email,
        password=login_password,
    )
    return SandboxOrganization(
        name=account,
        id=ORGANIZATION_ID if default else _object_id("organization", account),
        users=(user,),
        api_tokens=tuple(tokens),
    )
