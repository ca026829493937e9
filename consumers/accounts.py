"""The account a command names picks the handler that takes it (contract §7).

Each account has handlers of its own (its client, pacing, quota gate, instance cache), made by
the wiring; this only chooses among them. A name the command's provider has no account for
fails ``ACCOUNT_NOT_FOUND`` before anything is called: permanent, so it is dead-lettered for a
replay once the account exists.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from consumers.outcomes import Failed, Handler, HandlerContext, Outcome
from service.contract.commands import Command, CommandType
from service.contract.errors import ACCOUNT_NOT_FOUND, ErrorInfo

# How many account names a failure lists: enough to spot a typo, bounded for a large file.
NAMES_SHOWN = 10


@dataclass(frozen=True, slots=True)
class ByAccount:
    """One command type's handler: the command's account's own, or a failure."""

    provider: str
    handlers: Mapping[str, Handler]

    async def __call__(self, command: Command, context: HandlerContext) -> Outcome:
        handler = self.handlers.get(command.account)
        if handler is None:
            return Failed(account_not_found(command.account, self.provider, tuple(self.handlers)))
        return await handler(command, context)


def account_not_found(name: str, provider: str, known: tuple[str, ...]) -> ErrorInfo:
    shown = ", ".join(sorted(known)[:NAMES_SHOWN]) or "none"
    more = f" and {len(known) - NAMES_SHOWN} more" if len(known) > NAMES_SHOWN else ""
    return ErrorInfo(
        ACCOUNT_NOT_FOUND,
        f"the relay has no {provider} account named {name!r} (its {provider} accounts: "
        f"{shown}{more}): fix the command's `account` attribute, or add the account to "
        "RELAY_ACCOUNTS_FILE and replay the command",
        retryable=False,
    )


def by_account(
    provider: str, per_account: Mapping[str, Mapping[CommandType, Handler]]
) -> dict[CommandType, Handler]:
    """``{type: handler}`` for every type the accounts handle, each routing by account."""
    types = {command_type for handlers in per_account.values() for command_type in handlers}
    return {
        command_type: ByAccount(
            provider,
            {name: handlers[command_type] for name, handlers in per_account.items()},
        )
        for command_type in types
    }
