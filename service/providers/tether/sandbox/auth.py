"""``/api/auth``: login for a JWT, verify-token, and the Bearer check of every other route."""

from __future__ import annotations

import hmac
from typing import Any

from aiohttp import web

from service.providers.tether.sandbox import tokens
from service.providers.tether.sandbox.context import TetherSandbox, sandbox_of
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
    for user in sandbox.config.users:
        if user.email == email and hmac.compare_digest(user.password, password):
            return web.json_response(
                {"token": _issue(sandbox, user.id), "user": _user(sandbox, user.id)}
            )
    # G2: the failure body is undocumented; the sandbox answers 401 in its error shape.
    raise ApiError(401, "invalid_credentials", "Invalid email or password")


async def verify_token(request: web.Request) -> web.Response:
    return web.json_response({"message": "Token is good"})


def _issue(sandbox: TetherSandbox, user_id: str) -> str:
    now = sandbox.clock()
    claims = {"sub": user_id, "iat": now, "exp": now + sandbox.config.token_expiry_seconds}
    return tokens.issue(claims, sandbox.jwt_secret)


def _user(sandbox: TetherSandbox, user_id: str) -> dict[str, Any]:
    user = next(u for u in sandbox.config.users if u.id == user_id)
    return {
        "id": user.id,
        "email": user.email,
        "fullName": user.full_name,
        "organizationId": sandbox.config.organization_id,
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
    """R2: a live JWT this sandbox issued, or a configured API token; else 401."""
    sandbox = sandbox_of(request)
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        raise unauthorized()
    given = header.removeprefix("Bearer ").strip()
    if any(hmac.compare_digest(given, t) for t in sandbox.config.api_tokens):
        return _user(sandbox, sandbox.config.users[0].id)
    claims = tokens.verify(given, sandbox.jwt_secret, now=sandbox.clock())
    if claims is None or float(claims.get("iat", 0)) < sandbox.tokens_valid_from:
        raise unauthorized()
    return _user(sandbox, str(claims["sub"]))
