"""Which MsgFlash message is whose, when several identical ones match an unanswered send.

Reconciliation (``providers/msgflash/reconcile.py``) lists recent messages by content; with
many commands of the same content several match. A message already correlated to a finished
command is taken; of the others, each goes to one command only, on every replica sharing the
store, as an idempotency claim that lasts the retention period: claiming again as the same
command answers yes again, so a reply lost in an outage cannot turn "mine" into "taken".
"""

from __future__ import annotations

from dataclasses import dataclass

from service.state.store import ClaimStatus, StateStore


@dataclass(frozen=True, slots=True)
class StoreAttribution:
    store: StateStore
    retention_seconds: float

    async def take(self, message_id: str, taker: str) -> bool:
        if await self.held(message_id):
            return False
        claim = await self.store.claim(f"attributed:{message_id}", taker, self.retention_seconds)
        return claim.status is ClaimStatus.CLAIMED

    async def held(self, message_id: str) -> bool:
        """Held by a finished command. One taken but not yet finished counts as free here, so
        a recent one leaves a search undecided a little longer: waiting is the safe side."""
        return await self.store.correlation_for(message_id) is not None
