"""Login tokens as real HS256 JWTs (so a client can read ``exp``), and 24-hex ObjectIds."""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import os
import time
from typing import Any

_counter = itertools.count(int.from_bytes(os.urandom(3), "big"))


def object_id(now: float | None = None) -> str:
    """A MongoDB-style ObjectId: 4 bytes of seconds, 5 random bytes, a 3-byte counter."""
    seconds = int(now if now is not None else time.time()) & 0xFFFFFFFF
    counter = next(_counter) & 0xFFFFFF
    return f"{seconds:08x}{os.urandom(5).hex()}{counter:06x}"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def issue(claims: dict[str, Any], secret: bytes) -> str:
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
    signature = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(signature)}"


def verify(token: str, secret: bytes, *, now: float) -> dict[str, Any] | None:
    """The claims of a token this sandbox signed and that has not expired; else None."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    expected = hmac.new(secret, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
    try:
        if not hmac.compare_digest(expected, _unb64(parts[2])):
            return None
        claims = json.loads(_unb64(parts[1]))
    except ValueError:
        return None
    if not isinstance(claims, dict) or not isinstance(claims.get("exp"), int | float):
        return None
    return claims if now < claims["exp"] else None
