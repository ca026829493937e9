"""``/api/auth``: login for a JWT, verify-token, and the Bearer check of every other route.

A login, a token and an API token each belong to one organisation's user; the request is
then served for that organisation (``context.ORGANIZATION``)."""

from __future__ import annotations

import hmac
from typing import Any

from aiohttp import web

from service.providers.tether.sandbox import tokens
from service.providers.tether.sandbox.config import SandboxUser
from service.providers.tether.sandbox.context import (
    ORGANIZATION,
    Organization,
    TetherSandbox,
    sandbox_of,
)
from service.providers.tether.sandbox.errors import ApiError, bad_request, unauthorized

PUBLIC_PATHS = frozenset({"/api/auth/login"})


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_post("/api/auth/login", login)
    router.add_get("/api/auth/verify-token", verify_token)


async def login(request: web.Request) -> web.Response:
    """A1: ``{token, user: {id, email, fullName, organizationId, accessRole}}``, no envelope."""
    sandbox = sandbox_of(request)
    try:
        body = await request.json()
    except ValueError:
        raise bad_request("The body must be JSON") from None
    email = body.get("email") if isinstance(body, dict) else None
    password = body.get("password") if isinstance(body, dict) else None
    if not isinstance(email, str) or not isinstance(password, str):
        raise bad_request("Missing required field: email and password")
    for org in sandbox.organizations.values():
        for user in org.config.users:
            if user.email == email and hmac.compare_digest(user.password, password):
                request[ORGANIZATION] = org
                return web.json_response(
                    {"token": _issue(sandbox, user.id), "user": _user(org, user)}
                )
    # G2: the failure body is undocumented; the sandbox answers 401 in its error shape.
    raise ApiError(401, "invalid_credentials", "Invalid email or password")


async def verify_token(request: web.Request) -> web.Response:
    return web.json_response({"message": "Token is good"})


def _issue(sandbox: TetherSandbox, user_id: str) -> str:
    now = sandbox.clock()
    claims = {"sub": user_id, "iat": now, "exp": now + sandbox.config.token_expiry_seconds}
    return tokens.issue(claims, sandbox.jwt_secret)


def _user(org: Organization, user: SandboxUser) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "fullName": user.full_name,
        "organizationId": org.config.id,
        "accessRole": user.access_role,
    }


def auth_kind(request: web.Request) -> str | None:
    header = request.headers.get("Authorization")
    if header is None:
        return None
    given = header.removeprefix("Bearer ").strip()
    if given.count(".") == 2:
        return "jwt"
    return "token" if given else "invalid"


def authenticate(request: web.Request) -> dict[str, Any]:
    """R2: a live JWT this sandbox issued, or a configured API token; else 401. The caller
    (the API token's organisation's first user) is returned; its organisation is set on the
    request."""
    sandbox = sandbox_of(request)
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        raise unauthorized()
    org, user = _caller(sandbox, header.removeprefix("Bearer ").strip())
    request[ORGANIZATION] = org
    return _user(org, user)


def _caller(sandbox: TetherSandbox, given: str) -> tuple[Organization, SandboxUser]:
    for org in sandbox.organizations.values():
        if any(hmac.compare_digest(given, t) for t in org.config.api_tokens):
            return org, org.config.users[0]
    claims = tokens.verify(given, sandbox.jwt_secret, now=sandbox.clock())
    if claims is None or float(claims.get("iat", 0)) < sandbox.tokens_valid_from:
        raise unauthorized()
    owner = sandbox.organization_of_user(str(claims["sub"]))
    user = owner.user(str(claims["sub"])) if owner is not None else None
    if owner is None or user is None:
        raise unauthorized()
    return owner, user
