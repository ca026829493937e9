"""What callers present: MsgFlash webhook signatures and ingress bearer tokens. Pure.

Both are compared in constant time against every configured value, without stopping at the
first match, so neither timing nor the answer tells which secret or token was close.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field

SIGNATURE_PREFIX = "sha256="


def webhook_signature(secret: str, body: bytes) -> str:
    """The ``X-MsgFlash-Signature`` value MsgFlash sends for ``body``: ``sha256=<hex>``."""
    return SIGNATURE_PREFIX + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class WebhookVerifier:
    """Checks ``X-MsgFlash-Signature`` against every configured secret (rotation: any matches).

    The whole header value is compared, prefix included: MsgFlash's portal hint shows the bare
    hex, but its delivery header and code samples carry ``sha256=``, so a bare hex is refused.
    """

    secrets: tuple[str, ...] = field(repr=False)

    @property
    def configured(self) -> bool:
        return bool(self.secrets)

    def verify(self, body: bytes, signature: str | None) -> bool:
        if signature is None:
            return False
        presented = _wire_bytes(signature)
        matched = False
        for secret in self.secrets:
            expected = webhook_signature(secret, body).encode()
            matched |= hmac.compare_digest(presented, expected)
        return matched


@dataclass(frozen=True, slots=True)
class BearerTokens:
    """The ingress tokens; an empty set means the ingress is disabled."""

    tokens: tuple[str, ...] = field(repr=False)

    @property
    def enabled(self) -> bool:
        return bool(self.tokens)

    def admit(self, authorization: str | None) -> bool:
        """True when ``Authorization: Bearer <token>`` names one of the tokens."""
        token = bearer_token(authorization)
        if token is None:
            return False
        presented = _wire_bytes(token)
        matched = False
        for candidate in self.tokens:
            matched |= hmac.compare_digest(presented, candidate.encode())
        return matched


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (scheme case-insensitive)."""
    if authorization is None:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def _wire_bytes(value: str) -> bytes:
    # Header values arrive decoded with surrogateescape; compare_digest on str only takes ASCII.
    return value.encode("utf-8", "surrogateescape")
