"""The AMQP names of contract §2 (exchanges, queues, retry tiers) and the headers the relay sets
on the commands it parks or defers (§4). Pure names: ``service.bus`` declares and uses them."""

from __future__ import annotations

from dataclasses import dataclass

# Not "x-…": RabbitMQ's headers exchange ignores binding keys that start with "x-" when matching.
RETRY_TIER_HEADER = "relay-retry-tier"


@dataclass(frozen=True, slots=True)
class RetryTier:
    index: int
    delay_seconds: float
    queue: str


@dataclass(frozen=True, slots=True)
class Topology:
    """Every exchange and queue name the relay uses; all derived from ``prefix``."""

    prefix: str = "msgflash"
    retry_delays: tuple[float, ...] = (10.0, 60.0, 600.0, 3600.0)
    # Accounts with a queue of their own, for the commands their full lane moves aside: each
    # provider has lanes of its own, so MsgFlash accounts and Tether accounts are listed apart.
    accounts: tuple[str, ...] = ()
    tether_accounts: tuple[str, ...] = ()

    @property
    def commands_exchange(self) -> str:
        return f"{self.prefix}.commands"

    @property
    def events_exchange(self) -> str:
        return f"{self.prefix}.events"

    @property
    def messages_queue(self) -> str:
        return f"{self.prefix}.messages"

    @property
    def campaigns_queue(self) -> str:
        return f"{self.prefix}.campaigns"

    @property
    def tether_queue(self) -> str:
        return f"{self.prefix}.tether"

    @property
    def retry_exchange(self) -> str:
        return f"{self.prefix}.retry"

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.prefix}.dead-letter"

    @property
    def retry_tiers(self) -> tuple[RetryTier, ...]:
        return tuple(
            RetryTier(i, delay, f"{self.retry_exchange}.{_label(delay)}")
            for i, delay in enumerate(self.retry_delays)
        )

    def account_queue(self, account: str, provider: str = "msgflash") -> str:
        """The queue of one account's commands for one provider: MsgFlash's keeps the name
        ``<prefix>.account.<name>``, Tether's adds ``.tether`` (an account name has no dot, so
        no account's name can be another's Tether queue)."""
        queue = f"{self.prefix}.account.{account}"
        return queue if provider == "msgflash" else f"{queue}.{provider}"

    @property
    def account_lanes(self) -> tuple[tuple[str, str], ...]:
        """``(account, provider)`` of every account queue."""
        return (
            *((name, "msgflash") for name in self.accounts),
            *((name, "tether") for name in self.tether_accounts),
        )

    @property
    def account_queues(self) -> tuple[str, ...]:
        return tuple(self.account_queue(name, provider) for name, provider in self.account_lanes)

    def exchanges(self) -> tuple[str, ...]:
        return (self.commands_exchange, self.events_exchange, self.retry_exchange)

    def queues(self) -> tuple[str, ...]:
        tiers = tuple(tier.queue for tier in self.retry_tiers)
        return (
            self.messages_queue,
            self.campaigns_queue,
            self.tether_queue,
            self.dead_letter_queue,
            *tiers,
            *self.account_queues,
        )


def _label(seconds: float) -> str:
    whole = int(seconds)
    if whole == seconds and whole % 3600 == 0:
        return f"{whole // 3600}h"
    if whole == seconds and whole % 60 == 0:
        return f"{whole // 60}m"
    return f"{seconds:g}s"


CLOUDEVENTS_JSON = "application/cloudevents+json"


ERROR_CODE_HEADER = "x-relay-error-code"


ERROR_MESSAGE_HEADER = "x-relay-error-message"


ATTEMPTS_HEADER = "x-relay-attempts"


ROUTING_KEY_HEADER = "x-relay-routing-key"


FAILED_AT_HEADER = "x-relay-failed-at"


DEFERRALS_HEADER = "x-relay-deferrals"


REPLAYED_HEADER = "x-relay-replayed"


RECONCILE_HEADER = "x-relay-reconcile-since"


# On a command moved to its account's queue: the routing key it arrived under, which its
# deferred retries and dead-letter replays must keep (the move publishes under the queue's name).
MOVED_HEADER = "x-relay-moved-from"


# Epoch seconds the relay first handled a deferred command: what bounded waits count from.
FIRST_SEEN_HEADER = "x-relay-first-seen-at"


# On a command deferred because the store did not confirm its "about to call" record: the claim
# owner of that delivery, which sent nothing. A successor that finds that very owner's claim
# expired sends the command instead of looking it up and parking it as OUTCOME_UNKNOWN.
UNCALLED_HOLDER_HEADER = "x-relay-uncalled-holder"


REASON_HEADERS = (ERROR_CODE_HEADER, ERROR_MESSAGE_HEADER, ATTEMPTS_HEADER, FAILED_AT_HEADER)
