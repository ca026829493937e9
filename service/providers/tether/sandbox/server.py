"""``msgflash-relay sandbox --provider tether``: the Tether simulator on its own port.

Also runnable as ``python -m service.providers.tether.sandbox.server``.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from service.contract.errors import ConfigError
from service.providers.common.sandbox_server import port_number, run_sandbox
from service.providers.tether.sandbox.app import create_tether_sandbox_app
from service.providers.tether.sandbox.config import (
    DEFAULT_API_TOKEN,
    DEFAULT_EMAIL,
    DEFAULT_PASSWORD,
    TetherSandboxConfig,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=port_number, default=8091, help="port (default 8091; 0 = any free one)"
    )
    parser.add_argument("--config", metavar="FILE", help="JSON or YAML sandbox config file")
    parser.add_argument("--daily-limit", help="daily SMS quota, or 'none' for unlimited (500)")
    parser.add_argument("--error-shape", choices=("string", "nested", "flat"), help="(nested)")
    parser.add_argument("--token-expiry-seconds", type=float, help="login token lifetime (86400)")
    parser.add_argument("--faults", metavar="JSON", help='e.g. {"error_rate": 0.1}')


def config_from_args(args: argparse.Namespace) -> TetherSandboxConfig:
    base = TetherSandboxConfig.from_file(args.config) if args.config else TetherSandboxConfig()
    overrides: dict[str, Any] = {}
    if args.daily_limit is not None:
        limit = args.daily_limit.strip().lower()
        overrides["daily_limit"] = None if limit in ("none", "unlimited") else limit
    if args.error_shape is not None:
        overrides["error_shape"] = args.error_shape
    if args.token_expiry_seconds is not None:
        overrides["token_expiry_seconds"] = args.token_expiry_seconds
    if args.faults is not None:
        try:
            overrides["faults"] = json.loads(args.faults)
        except ValueError as exc:
            raise ConfigError(f"--faults: not JSON ({exc})") from None
    merged = {**base.model_dump(exclude_unset=True), **overrides}
    return TetherSandboxConfig.from_mapping(merged, origin="command line")


def describe(config: TetherSandboxConfig, url: str) -> str:
    lines = [f"Tether sandbox listening on {url}  (admin: {url}/_sandbox/requests)"]
    for org in config.sandbox_organizations():
        limit = "unlimited" if org.daily_limit is None else f"{org.daily_limit}/day"
        lines.append(
            f"organisation {org.name} ({org.id}): daily SMS quota {limit} ({org.timezone})"
        )
        if any(u.email == DEFAULT_EMAIL and u.password == DEFAULT_PASSWORD for u in org.users):
            lines.append(f"  login (public sandbox default): {DEFAULT_EMAIL} / {DEFAULT_PASSWORD}")
        if DEFAULT_API_TOKEN in org.api_tokens:
            lines.append(f"  API token (public sandbox default): {DEFAULT_API_TOKEN}")
        others = [u.email for u in org.users if u.email != DEFAULT_EMAIL]
        if others:
            lines.append(f"  logins from the config: {', '.join(others)}")
    lines.append(f"errors in the {config.error_shape} shape")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    return run_sandbox(args, config_from_args, create_tether_sandbox_app, describe)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tether-sandbox", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
