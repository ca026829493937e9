"""RELAY_STATE_URL forms: which store each opens, and errors that say what to fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.contract.errors import ConfigError
from service.state.factory import open_state_store, sqlite_path
from service.state.memory import MemoryStateStore
from service.state.redis import redis_from_state_url


async def test_memory_url_opens_the_in_process_store() -> None:
    store = await open_state_store("memory://", retention_seconds=60)

    assert isinstance(store, MemoryStateStore)
    await store.close()


@pytest.mark.parametrize("url", ["postgres://db/relay", "memory://elsewhere", "relay-state.db"])
async def test_an_unsupported_url_names_the_setting_and_the_accepted_forms(url: str) -> None:
    with pytest.raises(ConfigError) as raised:
        await open_state_store(url, retention_seconds=60)

    message = raised.value.message
    assert message.startswith("RELAY_STATE_URL:")
    assert all(form in message for form in ("sqlite:///", "sqlite:////", "redis://", "memory://"))


def test_three_slashes_give_a_relative_path_and_four_an_absolute_one() -> None:
    assert sqlite_path("sqlite:///relay-state.db") == "relay-state.db"
    assert sqlite_path("sqlite:///./relay-state.db") == "./relay-state.db"
    assert sqlite_path("sqlite:////relay-state.db") == "/relay-state.db"


@pytest.mark.parametrize("url", ["sqlite:///", "sqlite://relay-state.db"])
def test_a_sqlite_url_without_a_file_path_is_refused(url: str) -> None:
    with pytest.raises(ConfigError, match=r"^RELAY_STATE_URL: .* names no SQLite file"):
        sqlite_path(url)


async def test_a_sqlite_file_in_a_missing_directory_names_the_setting(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'missing' / 'state.db'}"

    with pytest.raises(ConfigError, match=r"^RELAY_STATE_URL: the directory .* does not exist"):
        await open_state_store(url, retention_seconds=60)


async def test_a_sqlite_file_that_cannot_be_opened_names_the_setting(tmp_path: Path) -> None:
    (tmp_path / "a-directory.db").mkdir()

    with pytest.raises(ConfigError, match=r"^RELAY_STATE_URL: cannot open SQLite file"):
        await open_state_store(f"sqlite:///{tmp_path / 'a-directory.db'}", retention_seconds=60)


async def test_the_prefix_query_parameter_is_the_relays_and_not_passed_to_redis() -> None:
    client, prefix = redis_from_state_url("redis://127.0.0.1:6379/2?prefix=relay-a")

    assert prefix == "relay-a"
    assert client.connection_pool.connection_kwargs["db"] == 2
    assert "prefix" not in client.connection_pool.connection_kwargs
    await client.aclose()


async def test_a_redis_url_without_a_prefix_leaves_the_choice_to_the_caller() -> None:
    client, prefix = redis_from_state_url("redis://127.0.0.1:6379/0")

    assert prefix is None
    await client.aclose()


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("redis://127.0.0.1:6379/0?prefix=", "must not be empty"),
        ("redis://127.0.0.1:port/0", "not a usable Redis URL"),
    ],
)
def test_a_broken_redis_url_names_the_setting(url: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=rf"^RELAY_STATE_URL: .*{problem}"):
        redis_from_state_url(url)
