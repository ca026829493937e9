"""Which account an API key belongs to: the sandbox's one place that reads a key.

Every key is compared in constant time, and what is kept of a request is the account's name
or a fingerprint, never the key.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable

from service.providers.msgflash.sandbox.config import SandboxAccount


class KeyRing:
    def __init__(self, accounts: Iterable[SandboxAccount]) -> None:
        self._owners = tuple(
            (key.encode(), account.name) for account in accounts for key in account.api_keys
        )

    def account_of(self, given: str | None) -> str | None:
        """The name of the account ``given`` belongs to; None for no key or an unknown one."""
        if not given:
            return None
        raw, found = given.encode(), None
        for key, name in self._owners:  # no early exit: every key is compared
            if hmac.compare_digest(raw, key):
                found = name
        return found

    def key_count(self, account: str) -> int:
        return sum(1 for _, name in self._owners if name == account)

    def __repr__(self) -> str:
        return f"KeyRing({len(self._owners)} keys)"
