"""`msgflash-relay sandbox` runs the simulator of the provider asked for."""

from __future__ import annotations

import pytest

from service import cli


@pytest.mark.parametrize(
    ("argv", "provider"),
    [
        (["sandbox"], "msgflash"),
        (["sandbox", "--provider", "tether", "--port", "0"], "tether"),
        (["sandbox", "--provider=tether"], "tether"),
        (["send", "--provider", "tether"], None),
    ],
)
def test_the_sandbox_command_picks_the_provider(argv: list[str], provider: str | None) -> None:
    assert cli._sandbox_provider(argv) == provider


def test_the_tether_sandbox_takes_its_own_flags() -> None:
    args = cli._parser(sandbox="tether").parse_args(
        ["sandbox", "--provider", "tether", "--daily-limit", "none", "--error-shape", "flat"]
    )
    from service.providers.tether.sandbox.server import config_from_args

    config = config_from_args(args)
    assert (config.daily_limit, config.error_shape) == (None, "flat")
