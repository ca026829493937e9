"""``msgflash-relay sandbox``: the simulator on its own port until SIGINT or SIGTERM.

Also runnable as ``python -m service.providers.msgflash.sandbox.server``.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from service.contract.errors import ConfigError
from service.providers.common.sandbox_server import port_number, run_sandbox
from service.providers.msgflash.sandbox import seed
from service.providers.msgflash.sandbox.app import create_sandbox_app
from service.providers.msgflash.sandbox.config import SandboxAccount, SandboxConfig
from service.settings import DEFAULT_SANDBOX_API_KEY

SEEDED_IDS = (
    "INSTANCE_MAIN",
    "INSTANCE_WARMING",
    "INSTANCE_NEW",
    "INSTANCE_CONNECTING",
    "INSTANCE_OFFLINE",
    "TEMPLATE_WELCOME",
    "TEMPLATE_PROMO",
    "CONTACT_ANA",
    "CONTACT_BRUNO",
    "CONTACT_CHEN",
    "GROUP_CUSTOMERS",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=port_number, default=8090, help="port (default 8090; 0 = any free one)"
    )
    parser.add_argument("--config", metavar="FILE", help="JSON or YAML sandbox config file")
    parser.add_argument(
        "--rate-limit",
        metavar="N",
        help="requests/second per API key, or 'none' for no limit (default 10)",
    )
    parser.add_argument(
        "--rate-limit-window", choices=("sliding", "fixed"), help="limiter window (sliding)"
    )
    parser.add_argument(
        "--plan",
        help="plan: free, starter, pro, plus, max, unlimited (max); with accounts in the "
        "config, the plan of those that name none",
    )
    parser.add_argument(
        "--step-seconds", type=float, help="seconds between queued/sent/delivered/read (1)"
    )
    parser.add_argument(
        "--webhook-retry-base", type=float, help="webhook retry backoff base, seconds (1)"
    )
    parser.add_argument(
        "--faults", metavar="JSON", help='faults active from the start, e.g. {"error_rate": 0.1}'
    )


def config_from_args(args: argparse.Namespace) -> SandboxConfig:
    """The config file (if any) with the command-line flags laid over it."""
    base = SandboxConfig.from_file(args.config) if args.config else SandboxConfig()
    overrides: dict[str, Any] = {}
    if args.rate_limit is not None:
        overrides["rate_limit_per_second"] = _rate_limit(args.rate_limit)
    for flag, setting in (
        ("rate_limit_window", "rate_limit_window"),
        ("plan", "plan"),
        ("step_seconds", "lifecycle_step_seconds"),
        ("webhook_retry_base", "webhook_retry_base_seconds"),
    ):
        if getattr(args, flag) is not None:
            overrides[setting] = getattr(args, flag)
    merged = {**base.model_dump(exclude_unset=True), **overrides}
    if args.faults is not None:
        merged["faults"] = merge_faults(merged.get("faults"), _faults_flag(args.faults))
    return SandboxConfig.from_mapping(merged, origin="command line")


def merge_faults(from_file: object, from_flag: object) -> object:
    """The flag's fault settings laid over the file's, one setting at a time."""
    if isinstance(from_file, dict) and isinstance(from_flag, dict):
        return {**from_file, **from_flag}
    return from_flag


def _faults_flag(raw: str) -> object:
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ConfigError(
            f"--faults: not JSON ({exc}); quote it, e.g. --faults '{{\"error_rate\": 0.1}}'"
        ) from None


def _rate_limit(raw: str) -> float | None:
    if raw.strip().lower() in ("none", "off", "0"):
        return None
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"--rate-limit: expected a number or 'none', got {raw!r}") from None


def describe(config: SandboxConfig, url: str) -> str:
    """The start banner: where it listens, which key to use, and the seeded ids."""
    lines = [f"MsgFlash sandbox listening on {url}  (admin: {url}/_sandbox/requests)"]
    accounts = config.sandbox_accounts()
    for account in accounts:
        lines += _account_lines(account, named=len(accounts) > 1)
    limit = config.rate_limit_per_second
    lines.append(
        f"rate limit {'none' if limit is None else f'{limit:g}/s'} per key; "
        f"lifecycle step {config.lifecycle_step_seconds:g}s"
    )
    if any(account.seed is None for account in accounts):
        lines.append("seeded ids (of every account seeded by default):")
        lines += [f"  {name:<20} {getattr(seed, name)}" for name in SEEDED_IDS]
    return "\n".join(lines)


def _account_lines(account: SandboxAccount, *, named: bool) -> list[str]:
    """The public default key in full (it is public); of any other key, its last 4 characters."""
    indent = "  " if named else ""
    lines = [f"account {account.name}: plan {account.plan}"] if named else []
    if DEFAULT_SANDBOX_API_KEY in account.api_keys:
        lines.append(f"{indent}API key (public sandbox default): {DEFAULT_SANDBOX_API_KEY}")
    others = [key for key in account.api_keys if key != DEFAULT_SANDBOX_API_KEY]
    if others:
        hints = ", ".join(f"...{key[-4:]}" for key in others)
        lines.append(f"{indent}API keys from the config: {len(others)} ({hints})")
    if not named:
        lines.append(f"plan {account.plan}")
    if account.seed is not None:
        lines.append(f"{indent}seeded from the config file's seed section")
    return lines


def run(args: argparse.Namespace) -> int:
    return run_sandbox(args, config_from_args, create_sandbox_app, describe)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="msgflash-sandbox", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
