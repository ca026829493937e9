"""What callers present: MsgFlash webhook signatures and ingress bearer tokens. Pure.

Both are compared in constant time against every configured value, without stopping at the
first match, so neither timing nor the answer tells which secret or token was close.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass, field

from service.settings import IngressGrant

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
    """The ingress tokens and the sources each may use; none means the ingress is disabled."""

    grants: tuple[IngressGrant, ...] = field(repr=False)

    @classmethod
    def of(cls, tokens: Iterable[IngressGrant | str]) -> BearerTokens:
        """Grants as configured; a bare string is a token that may use any source."""
        return cls(tuple(t if isinstance(t, IngressGrant) else IngressGrant(t) for t in tokens))

    @property
    def enabled(self) -> bool:
        return bool(self.grants)

    @property
    def unbound(self) -> int:
        """How many tokens may use any source (warned about at start)."""
        return sum(1 for grant in self.grants if not grant.sources)

    def admit(self, authorization: str | None) -> IngressGrant | None:
        """The grant whose token ``Authorization: Bearer <token>`` names, or None."""
        token = bearer_token(authorization)
        if token is None:
            return None
        presented = _wire_bytes(token)
        admitted = None
        for grant in self.grants:
            if hmac.compare_digest(presented, grant.token.encode()):
                admitted = grant
        return admitted


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
