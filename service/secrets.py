"""Naming a secret without showing it: one stable, non-reversible fingerprint for API keys and
tokens, used wherever a key must be told apart from another (Redis keys, logs, reprs)."""

from __future__ import annotations

import hashlib


def fingerprint(secret: str) -> str:
    """A SHA-256 prefix of ``secret``: the same key always gets the same name, and the name
    reveals none of its characters."""
    return hashlib.sha256(secret.encode()).hexdigest()[:32]
