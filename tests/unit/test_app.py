"""``build(settings)`` only makes and wires components: no event loop, no socket, no file."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from service.accounts import load_accounts
from service.app import build
from service.settings import load_settings


def _refuse(*_args: object, **_kwargs: object) -> None:
    raise AssertionError("build() opened a socket")


@pytest.mark.parametrize("store", ["sqlite", "redis"])
def test_build_needs_no_loop_and_opens_no_socket_or_file(
    store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = tmp_path / "state.db"
    state_url = f"sqlite:///{database}" if store == "sqlite" else "redis://127.0.0.1:1/0"
    env = {
        "RELAY_SANDBOX": "1",  # both embedded sandboxes, and a Tether account for the relay
        "TETHER_API_TOKEN": "tk_live_" + "b2" * 16,
        "RELAY_STATE_URL": state_url,
    }
    settings = load_settings(env)
    accounts = load_accounts(settings, env)
    monkeypatch.setattr(socket.socket, "__init__", _refuse)
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()

    relay = build(settings, accounts)

    assert relay.tether is not None and set(relay.tether.accounts) == {"default"}
    assert relay.tether.sandbox is not None
    assert not database.exists() and list(tmp_path.iterdir()) == []
