"""In-memory stand-ins for the pipeline's edges, in the spirit of httpx's ``MockTransport``.

The pipeline and the handlers run for real; only what they talk to is replaced: the broker
(``FakeChannel`` delivers messages and records acks, ``RecordingPublisher`` records what would
be published), MsgFlash and Tether (``StubMsgFlash`` and ``StubTether`` answer from a table)
and the store (``memory://``).
``InMemoryRelay`` wires them as ``service.app`` does, and ``effects()`` sums up what a delivery
did, so a test states a whole outcome in one comparison.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, cast

from pydantic_core import to_json

from consumers.msgflash_campaigns import CampaignHandler
from consumers.msgflash_messages import MessageHandler
from consumers.outcomes import Handler
from consumers.pipeline import CommandPipeline, PipelineConfig
from consumers.results import result_failed
from consumers.tether_campaigns import TetherCampaignHandler
from service.bus.publisher import OriginalMessage, reason_headers
from service.contract.amqp import (
    ATTEMPTS_HEADER,
    DEFERRALS_HEADER,
    ERROR_CODE_HEADER,
    RECONCILE_HEADER,
)
from service.contract.commands import CommandType, idempotency_key
from service.contract.errors import BrokerUnavailable, MsgFlashError, TetherError
from service.contract.events import OutgoingEvent, decode_event
from service.metrics import Metrics
from service.providers.msgflash.client import BeforeSend, CallFailure, CallOutcome, CallResult
from service.providers.msgflash.instances import InstanceResolver
from service.providers.msgflash.quota import QuotaGate
from service.providers.msgflash.reconcile import find_created_message
from service.providers.msgflash.sandbox.seed import INSTANCE_MAIN
from service.providers.tether.client import CreateOutcome, CreateResult
from service.providers.tether.reconcile import find_created_campaign
from service.state.memory import MemoryStateStore
from service.state.store import ClaimStatus
from tests.clock import FakeClock

SOURCE = "urn:test:orders"
COMMAND_ID = "cmd-1"
KEY = idempotency_key(SOURCE, COMMAND_ID)
RECIPIENT = "+33612345678"
MESSAGE_ID = "msg-1"
CAMPAIGN_ID = "cmp-1"
LEASE_SECONDS = 120.0
RETRY_TIERS = 4
START = 1_700_000_000.0  # epoch seconds the store's clock starts at

QUOTA = MsgFlashError("MONTHLY_OUTBOUND_QUOTA_EXCEEDED", "quota", http_status=429)
TETHER_CAMPAIGN_ID = "65f1c0de00000000000000a1"
TETHER_DAY = "2030-12-01T08:00:00.000Z"
TETHER_NEXT_DAY = "2030-12-02T08:00:00.000Z"
MAIN = {"id": INSTANCE_MAIN, "name": "main", "waNumber": "+2250700000001", "status": "connected"}


# --- commands -------------------------------------------------------------------------------
def command(type_: CommandType, data: Mapping[str, Any], *, id_: str = COMMAND_ID) -> bytes:
    """A structured CloudEvents command body."""
    envelope = {"specversion": "1.0", "id": id_, "source": SOURCE, "type": type_, "data": data}
    return to_json(envelope)


def send_text(*, id_: str = COMMAND_ID, **data: Any) -> bytes:
    """``message.send`` of a text to RECIPIENT on the main instance; ``data`` overrides."""
    base = {"instanceId": INSTANCE_MAIN, "to": RECIPIENT, "message": {"type": "text", "text": "Hi"}}
    return command(CommandType.SEND_MESSAGE, {**base, **data}, id_=id_)


def schedule_text(**data: Any) -> bytes:
    """``message.schedule`` of a text to RECIPIENT on the main instance; ``data`` overrides."""
    base = {
        "instanceId": INSTANCE_MAIN,
        "to": RECIPIENT,
        "scheduledAt": "2030-12-01T08:00:00Z",
        "message": {"type": "text", "text": "Hi"},
    }
    return command(CommandType.SCHEDULE_MESSAGE, {**base, **data})


def create_campaign(**data: Any) -> bytes:
    """``campaign.create`` to everyone on the main instance; ``data`` overrides."""
    base = {
        "instanceId": INSTANCE_MAIN,
        "name": "Launch",
        "schedule": "2030-12-01T08:00:00Z",
        "recipients": {"type": "all"},
        "message": {"type": "text", "text": "Hello all"},
    }
    return command(CommandType.CREATE_CAMPAIGN, {**base, **data})


# The data of ``create_tether_campaign()``: one SMS to two new contacts.
TETHER_CAMPAIGN: dict[str, Any] = {
    "name": "Launch",
    "message": "Hello {{firstName}}",
    "scheduleDate": TETHER_DAY,
    "newContacts": [
        {"firstName": "Ada", "phoneNumber": RECIPIENT},
        {"firstName": "Alan", "phoneNumber": "+33612345679"},
    ],
}


def create_tether_campaign(**data: Any) -> bytes:
    """``tether.campaign.create`` of ``TETHER_CAMPAIGN``; ``data`` overrides."""
    return command(CommandType.TETHER_CREATE_CAMPAIGN, {**TETHER_CAMPAIGN, **data})


# --- the broker -----------------------------------------------------------------------------
@dataclass(eq=False)
class FakeIncomingMessage:
    """The parts of aio-pika's ``AbstractIncomingMessage`` the pipeline reads."""

    channel: FakeChannel
    delivery_tag: int
    body: bytes
    routing_key: str = "message.send"
    headers: dict[str, Any] = field(default_factory=dict)
    redelivered: bool = False
    content_type: str | None = "application/cloudevents+json"
    message_id: str | None = None
    type: str | None = None
    app_id: str | None = None
    correlation_id: str | None = "corr-1"
    reply_to: str | None = None
    timestamp: Any = None


class FakeChannel:
    """An aiormq consumer channel as far as ``service.bus.acks`` goes: delivers messages with
    consecutive tags, records every ``basic.ack`` frame, and can be closed."""

    def __init__(self) -> None:
        self.is_closed = False
        self.frames: list[tuple[int, bool]] = []  # (delivery_tag, multiple)
        self._tags = itertools.count(1)

    def deliver(self, body: bytes, **properties: Any) -> FakeIncomingMessage:
        return FakeIncomingMessage(self, next(self._tags), body, **properties)

    async def basic_ack(self, delivery_tag: int, multiple: bool = False, wait: bool = True) -> None:
        self.frames.append((delivery_tag, multiple))

    @property
    def acked(self) -> set[int]:
        """Every tag an ack frame covered (a multiple ack covers all tags up to its own)."""
        tags: set[int] = set()
        for tag, multiple in self.frames:
            tags.update(range(1, tag + 1) if multiple else (tag,))
        return tags


@dataclass(frozen=True)
class PublishedEvent:
    event: OutgoingEvent
    correlation_id: str | None
    reply_to: str | None


@dataclass(frozen=True)
class DeadLetter:
    original: OriginalMessage
    headers: dict[str, Any]  # the reason headers the real publisher adds


@dataclass(frozen=True)
class Deferral:
    original: OriginalMessage
    tier: int
    headers: Mapping[str, Any]  # as the pipeline passed them

    @property
    def message_headers(self) -> dict[str, Any]:
        """The headers the deferred message carries back: its own, updated by the pipeline's."""
        return {**self.original.headers, **self.headers}

    @property
    def retried(self) -> Retried:
        headers = self.message_headers
        since = headers.get(RECONCILE_HEADER)  # travels as text, so it keeps every digit
        return Retried(
            self.tier,
            headers[ATTEMPTS_HEADER],
            headers[DEFERRALS_HEADER],
            None if since is None else float(since),
        )


class RecordingPublisher:
    """Stands in for ``service.bus.publisher.Publisher``: records instead of publishing. With
    ``broker_down`` every publish raises ``BrokerUnavailable``, as an unconfirmed one does."""

    def __init__(self) -> None:
        self.events: list[PublishedEvent] = []
        self.dead_letters: list[DeadLetter] = []
        self.deferrals: list[Deferral] = []
        self.broker_down = False

    async def publish_event(
        self,
        event: OutgoingEvent,
        *,
        correlation_id: str | None = None,
        reply_to: str | None = None,
    ) -> None:
        self._check()
        self.events.append(PublishedEvent(event, correlation_id, reply_to))

    async def dead_letter(
        self,
        original: OriginalMessage,
        *,
        code: str,
        message: str,
        attempts: int,
        failed_at: str,
        account: str,
    ) -> None:
        self._check()
        headers = reason_headers(
            original, code=code, message=message, attempts=attempts, failed_at=failed_at
        )
        self.dead_letters.append(DeadLetter(original, headers))

    async def defer(
        self, original: OriginalMessage, *, tier: int, headers: Mapping[str, Any]
    ) -> None:
        self._check()
        self.deferrals.append(Deferral(original, tier, dict(headers)))

    def _check(self) -> None:
        if self.broker_down:
            raise BrokerUnavailable("the broker did not confirm (test)")


# --- MsgFlash -------------------------------------------------------------------------------
# One answer per method, given on every call: data to return, or an exception to raise.
Answer = dict[str, Any] | list[dict[str, Any]] | Exception

DEFAULT_ANSWERS: Mapping[str, Answer] = {
    "send_message": {"id": MESSAGE_ID, "status": "queued"},
    "schedule_message": {"id": MESSAGE_ID, "status": "scheduled"},
    "create_campaign": {"id": CAMPAIGN_ID, "status": "scheduled"},
    "list_instances": [MAIN],
    "instance_health": {"safetyState": "stable"},
    "get_message": {"id": MESSAGE_ID, "status": "sent"},
    "list_messages": {"messages": [], "hasMore": False},
    "list_campaigns": {"campaigns": [], "hasMore": False},
}


@dataclass(frozen=True)
class Call:
    method: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)


if TYPE_CHECKING:
    from service.providers.msgflash.client import MsgFlashClient


class AnswerTable:
    """A provider client's stand-in: answers each method from a table (``defaults``, then the
    test's ``answers``), records each call."""

    defaults: Mapping[str, Answer] = {}

    def __init__(self, answers: Mapping[str, Answer] | None = None) -> None:
        unknown = set(answers or {}) - set(self.defaults)
        assert not unknown, f"{type(self).__name__} has no method {unknown}"
        self.answers = {**self.defaults, **(answers or {})}
        self.calls: list[Call] = []

    @property
    def called(self) -> tuple[str, ...]:
        return tuple(call.method for call in self.calls)

    def _answer(self, method: str, *args: Any, **kwargs: Any) -> Any:
        self.calls.append(Call(method, args, kwargs))
        answer = self.answers[method]
        if isinstance(answer, Exception):
            raise answer
        return answer


class StubMsgFlash(AnswerTable):
    """Stands in for ``MsgFlashClient``: answers each method from a table, records each call.

    Lookups raise the answer's exception; creating calls return a ``MsgFlashError`` as a
    ``CallFailure``, as the client does."""

    defaults = DEFAULT_ANSWERS
    key_fingerprint = "stub"

    async def send_message(
        self,
        payload: Mapping[str, Any],
        *,
        before_send: BeforeSend | None = None,
        caller: str = "",
    ) -> CallOutcome:
        if before_send is not None:  # as the client does, once paced
            await before_send()
        return self._outcome("send_message", payload)

    async def schedule_message(
        self,
        payload: Mapping[str, Any],
        *,
        before_send: BeforeSend | None = None,
        caller: str = "",
    ) -> CallOutcome:
        if before_send is not None:  # as the client does, once paced
            await before_send()
        return self._outcome("schedule_message", payload)

    async def create_campaign(
        self, payload: Mapping[str, Any], *, before_send: BeforeSend | None = None
    ) -> CallOutcome:
        if before_send is not None:  # as the client does, once paced
            await before_send()
        return self._outcome("create_campaign", payload)

    async def list_instances(self) -> list[dict[str, Any]]:
        return self._answer("list_instances")

    async def instance_health(self, instance_id: str) -> dict[str, Any]:
        return self._answer("instance_health", instance_id)

    async def get_message(self, message_id: str) -> dict[str, Any]:
        return self._answer("get_message", message_id)

    async def list_messages(self, **query: Any) -> dict[str, Any]:
        return self._answer("list_messages", **query)

    async def find_sent_message(
        self, payload: Mapping[str, Any], since: datetime, caller: str = ""
    ) -> dict[str, Any] | None:
        """As the client without an attribution: the lone match in the message list."""
        return await find_created_message(cast("MsgFlashClient", self), payload, since=since)

    async def list_campaigns(self, **query: Any) -> dict[str, Any]:
        return self._answer("list_campaigns", **query)

    def _outcome(self, method: str, payload: Mapping[str, Any]) -> CallOutcome:
        """A creating call returns its failure as data, after one attempt; any other exception
        (a bug) is raised."""
        try:
            return CallResult(self._answer(method, payload), attempts=1, status=201)
        except MsgFlashError as error:
            return CallFailure(error, attempts=1)


# --- Tether ---------------------------------------------------------------------------------
TETHER_DEFAULT_ANSWERS: Mapping[str, Answer] = {
    "validate_date": {"available": True, "remaining": 500, "limit": 500},
    "next_available_slot": {"nextAvailableDate": TETHER_NEXT_DAY},
    "auto_segment": {"segments": [{"contactCount": 2, "scheduledDate": TETHER_DAY}]},
    "list_campaigns": [],
    "create_campaign": {"_id": TETHER_CAMPAIGN_ID, "status": "scheduled"},
}


class StubTether(AnswerTable):
    """Stands in for ``TetherClient``: answers each method from a table, records each call.

    Checks and lookups raise the answer's exception; a create returns a ``TetherError`` as a
    ``CallFailure``, as the client does."""

    defaults = TETHER_DEFAULT_ANSWERS

    async def validate_date(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return self._answer("validate_date", body)

    async def next_available_slot(self, count: int) -> dict[str, Any]:
        return self._answer("next_available_slot", count)

    async def auto_segment(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return self._answer("auto_segment", body)

    async def list_campaigns(self) -> list[dict[str, Any]]:
        return self._answer("list_campaigns")

    async def find_campaign(
        self, body: Mapping[str, Any], since: datetime
    ) -> dict[str, Any] | None:
        """As the client: the match in the campaign list."""
        return find_created_campaign(await self.list_campaigns(), body, since)

    async def create_campaign(self, body: Mapping[str, Any]) -> CreateOutcome:
        """A failure is returned as data, after one attempt; any other exception (a bug) is
        raised."""
        try:
            return CreateResult(self._answer("create_campaign", body), attempts=1)
        except TetherError as error:
            return CallFailure(error, attempts=1)


# --- the relay, wired in memory -------------------------------------------------------------
ClaimState = Literal["free", "held", "succeeded", "failed"]


@dataclass(frozen=True)
class Parked:
    """A dead-letter, by its reason headers."""

    code: str
    attempts: int


class _SomeTime:
    """Equal to any epoch time: for a value taken from the wall clock, which tests cannot set."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, float | int) and not isinstance(other, bool)

    def __repr__(self) -> str:
        return "SOME_TIME"


SOME_TIME: Any = _SomeTime()


@dataclass(frozen=True)
class Retried:
    """A deferral: the retry tier it went to and the counting headers it carries."""

    tier: int
    attempts: int
    deferrals: int
    reconcile_since: float | None = None


@dataclass(frozen=True)
class Effects:
    """Everything one delivery did, as data: compare it whole with what a case expects."""

    calls: tuple[str, ...] = ()
    events: tuple[str, ...] = ()  # routing keys, failures followed by their error code
    parked: tuple[Parked, ...] = ()
    retried: tuple[Retried, ...] = ()
    deferred_for: tuple[str, ...] = ()  # the reasons relay_deferred_total counted, sorted
    acked: bool = True
    claim: ClaimState = "succeeded"


@dataclass
class InMemoryRelay:
    """The pipeline and the handlers over the fakes, wired the way ``service.app`` wires them."""

    client: StubMsgFlash
    tether: StubTether | None = None  # None: the relay has no Tether account
    publisher: RecordingPublisher = field(default_factory=RecordingPublisher)
    channel: FakeChannel = field(default_factory=FakeChannel)
    clock: FakeClock = field(default_factory=lambda: FakeClock(START))
    outcome_unknown_policy: Literal["fail", "resend"] = "fail"
    shared_store: MemoryStateStore | None = None  # another replica's, to share it
    metrics: Metrics = field(init=False)
    store: MemoryStateStore = field(init=False)
    quota: QuotaGate = field(init=False)
    pipeline: CommandPipeline = field(init=False)

    def __post_init__(self) -> None:
        self.metrics = metrics = Metrics()
        self.store = self.shared_store or MemoryStateStore(
            retention_seconds=86_400, clock=self.clock
        )
        self.quota = QuotaGate(
            key_fingerprint="stub",
            account="default",
            probe_seconds=60,
            metrics=metrics,
            clock=self.clock,
        )
        client = self.client  # duck-typed, as are the publisher and the channel below
        resolver = InstanceResolver(client, ttl_seconds=60, default_instance=None, clock=self.clock)
        messages = MessageHandler(
            client, resolver, self.store, self.quota, self.outcome_unknown_policy
        )
        tether = TetherCampaignHandler(self.tether, clock=self.clock)
        handlers: dict[CommandType, Handler] = {
            CommandType.SEND_MESSAGE: messages,
            CommandType.SCHEDULE_MESSAGE: messages,
            CommandType.CREATE_CAMPAIGN: CampaignHandler(client, resolver, self.quota),
            CommandType.TETHER_CREATE_CAMPAIGN: tether,
        }
        self.pipeline = CommandPipeline(
            handlers=handlers,
            publisher=self.publisher,
            store=self.store,
            metrics=metrics,
            config=PipelineConfig(
                owner="test", lease_seconds=LEASE_SECONDS, retry_tiers=RETRY_TIERS
            ),
        )

    async def deliver(self, body: bytes, **properties: Any) -> FakeIncomingMessage:
        """Deliver one message and wait until the pipeline is done with it, acks sent."""
        message = self.channel.deliver(body, **properties)
        await self.pipeline.on_message(message)
        assert await self.pipeline.wait_idle(timeout=10), "the pipeline did not finish"
        return message

    async def effects(self) -> Effects:
        """What happened so far. Call it once, last: it reads the claim of KEY by claiming it
        as another owner."""
        return Effects(
            calls=self.client.called + (self.tether.called if self.tether else ()),
            events=tuple(_summary(published.event) for published in self.publisher.events),
            parked=tuple(
                Parked(letter.headers[ERROR_CODE_HEADER], letter.headers[ATTEMPTS_HEADER])
                for letter in self.publisher.dead_letters
            ),
            retried=tuple(deferral.retried for deferral in self.publisher.deferrals),
            deferred_for=self._deferred_reasons(),
            acked=bool(self.channel.acked),
            claim=await self._claim_state(),
        )

    def _deferred_reasons(self) -> tuple[str, ...]:
        reasons: list[str] = []
        for metric in self.metrics.deferred.collect():
            for sample in metric.samples:
                if sample.name == "relay_deferred_total":
                    reasons += [sample.labels["reason"]] * int(sample.value)
        return tuple(sorted(reasons))

    async def _claim_state(self) -> ClaimState:
        claim = await self.store.claim(KEY, "observer", LEASE_SECONDS)
        if claim.status is ClaimStatus.DONE:
            return "failed" if result_failed(claim.result) else "succeeded"
        if claim.status in (ClaimStatus.BUSY, ClaimStatus.EXPIRED):
            return "held"
        await self.store.release(KEY, "observer")
        return "free"


# --- table cases ----------------------------------------------------------------------------
Given = Callable[[InMemoryRelay], Awaitable[None]]


async def nothing_stored(relay: InMemoryRelay) -> None:
    """A command seen for the first time."""


async def quota_gate_closed(relay: InMemoryRelay) -> None:
    await relay.quota.observe(QUOTA)


async def held_by_a_replica_that_died(relay: InMemoryRelay) -> None:
    """Mid-call: the request may have reached MsgFlash."""
    await relay.store.claim(KEY, "dead:0", LEASE_SECONDS)
    await relay.store.mark_called(KEY, "dead:0")
    relay.clock.advance(LEASE_SECONDS + 1)


async def held_by_a_replica_that_died_before_calling(relay: InMemoryRelay) -> None:
    """Waiting for its pacing slot: nothing reached MsgFlash."""
    await relay.store.claim(KEY, "dead:0", LEASE_SECONDS)
    relay.clock.advance(LEASE_SECONDS + 1)


@dataclass(frozen=True)
class Case:
    """One delivery: the state it meets (``given``, its headers, MsgFlash's and Tether's
    answers) and everything it must do (``expected``). ``id`` names the behaviour."""

    id: str
    expected: Effects
    given: Given = nothing_stored
    headers: Mapping[str, Any] = field(default_factory=dict)
    answers: Mapping[str, Answer] = field(default_factory=dict)
    # None: the relay has no Tether account.
    tether_answers: Mapping[str, Answer] | None = field(default_factory=dict)
    body: bytes = field(default_factory=send_text)
    outcome_unknown_policy: Literal["fail", "resend"] = "fail"

    async def run(self) -> Effects:
        tether = StubTether(self.tether_answers) if self.tether_answers is not None else None
        relay = InMemoryRelay(
            StubMsgFlash(self.answers),
            tether=tether,
            outcome_unknown_policy=self.outcome_unknown_policy,
        )
        await self.given(relay)
        await relay.deliver(self.body, headers=dict(self.headers))
        return await relay.effects()


def _summary(event: OutgoingEvent) -> str:
    error = decode_event(event.body)["data"].get("error")
    return f"{event.routing_key} {error['code']}" if error else event.routing_key
