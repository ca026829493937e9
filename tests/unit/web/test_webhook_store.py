"""What a webhook delivery asks of the state store: one commit's wait, not two."""

from __future__ import annotations

from pathlib import Path

from service.contract.events import Correlation
from service.state.sqlite import SqliteStateStore
from service.state.store import RememberedMessage
from service.web.webhooks import first_seen_and_correlation

WINDOW = 60.0


async def _opened(path: Path) -> SqliteStateStore:
    store = SqliteStateStore(str(path), retention_seconds=600)
    await store.open()
    return store


async def test_the_dedupe_record_and_the_correlation_lookup_share_one_commit(
    tmp_path: Path,
) -> None:
    store = await _opened(tmp_path / "state.db")
    try:
        await store.claim("k1", "owner", 60)
        correlation = Correlation("cmd-1", "urn:test", None)
        await store.complete("k1", "owner", b"{}", message=RememberedMessage("msg-1", correlation))
        before = store.batches_committed

        answer = await first_seen_and_correlation(store, "webhook:a", WINDOW, "msg-1")

        assert answer == (True, correlation)
        assert store.batches_committed == before + 1
    finally:
        await store.close()


async def test_a_repeat_is_not_first_seen_and_a_delivery_without_message_id_looks_nothing_up(
    tmp_path: Path,
) -> None:
    store = await _opened(tmp_path / "state.db")
    try:
        assert await first_seen_and_correlation(store, "webhook:b", WINDOW, None) == (True, None)
        assert await first_seen_and_correlation(store, "webhook:b", WINDOW, None) == (False, None)
        assert await first_seen_and_correlation(store, "webhook:c", WINDOW, "unknown") == (
            True,
            None,
        )
    finally:
        await store.close()
