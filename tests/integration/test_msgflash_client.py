"""The MsgFlash client against the real sandbox on a loopback port.

Every assertion about what went over the wire reads the sandbox's request log, so a retry or a
duplicate send cannot hide behind the client's own bookkeeping.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any, TypeVar

import pytest

from service.contract.errors import (
    MsgFlashError,
    MsgFlashNoResponse,
    MsgFlashOutcomeUnknown,
    RetryClass,
)
from service.metrics import Metrics
from service.pacing import LocalRateLimiter
from service.providers.common.retry import CallFailure, RetryPolicy
from service.providers.msgflash.client import CallOutcome, MsgFlashClient
from service.providers.msgflash.sandbox.faults import FaultInjector, FaultSettings
from service.providers.msgflash.sandbox.seed import (
    INSTANCE_CONNECTING,
    INSTANCE_MAIN,
    TEMPLATE_WELCOME,
)
from tests.conftest import SandboxHandle

SEND = "/api/v1/messages/send"
MAX_ATTEMPTS = 5
TINY = RetryPolicy(
    max_attempts=MAX_ATTEMPTS,
    rate_limited=(0.001, 0.01),
    transient=(0.001, 0.01),
    max_retry_after=0.01,
)


def text_message(text: str = "Hello") -> dict[str, Any]:
    return {"instanceId": INSTANCE_MAIN, "to": "+33612345678", "type": "text", "text": text}


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


def make_client(
    sandbox: SandboxHandle,
    metrics: Metrics,
    *,
    policy: RetryPolicy = TINY,
    timeout: float = 5.0,
    rate: float = 1000.0,
    base_url: str | None = None,
) -> MsgFlashClient:
    return MsgFlashClient.create(
        base_url=base_url or sandbox.url,
        api_key=sandbox.api_key,
        limiter=LocalRateLimiter(rate),
        policy=policy,
        metrics=metrics,
        timeout=timeout,
    )


@pytest.fixture
async def client(sandbox: SandboxHandle, metrics: Metrics) -> AsyncIterator[MsgFlashClient]:
    msgflash = make_client(sandbox, metrics)
    yield msgflash
    await msgflash.close()


def seed_giving(faults: dict[str, Any], expected: list[str | None]) -> int:
    """A fault RNG seed whose first requests on SEND meet ``expected`` faults, in order."""
    for seed in range(10_000):
        injector = FaultInjector()
        injector.configure(FaultSettings(random_seed=seed, **faults))
        plans = [injector.plan_for(SEND) for _ in expected]
        if [plan.name if plan else None for plan in plans] == expected:
            return seed
    raise AssertionError(f"no seed gives {expected}")


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    """Sum of the samples called ``name`` whose labels include ``labels`` (any account)."""
    return sum(
        s.value
        for family in metrics.registry.collect()
        for s in family.samples
        if s.name == name and labels.items() <= s.labels.items()
    )


# --- success shapes ----------------------------------------------------------------------


async def test_a_send_is_one_post_with_the_api_key_header_and_returns_the_message(
    client: MsgFlashClient, sandbox: SandboxHandle, metrics: Metrics
) -> None:
    result = await client.send_message(text_message())
    assert (result.status, result.attempts, result.reconciled) == (201, 1, False)
    assert result.data["status"] == "queued" and result.data["body"] == "Hello"
    [logged] = await sandbox.requests(SEND)
    assert logged["status"] == 201 and logged["key"] == sandbox.api_key[-6:]
    assert logged["body"] == text_message()
    endpoint = "POST /api/v1/messages/send"
    assert sample(metrics, "relay_msgflash_requests_total", endpoint=endpoint, status="201") == 1
    assert sample(metrics, "relay_msgflash_request_seconds_count", endpoint=endpoint) == 1
    assert sample(metrics, "relay_rate_limiter_wait_seconds_count") == 1


async def test_a_schedule_returns_the_queued_message(client: MsgFlashClient) -> None:
    payload = {**text_message("Later"), "scheduledAt": "2030-01-01T08:00:00.000Z"}
    result = await client.schedule_message(payload)
    assert result.status == 201 and result.data["status"] == "queued"


async def test_a_campaign_create_returns_the_scheduled_campaign(client: MsgFlashClient) -> None:
    result = await client.create_campaign(
        {
            "instanceId": INSTANCE_MAIN,
            "name": "spring",
            "schedule": "2030-01-01T08:00:00.000Z",
            "recipients": {"type": "all"},
            "type": "text",
            "body": "Spring sale",
        }
    )
    assert result.status == 201 and result.data["status"] == "scheduled"


async def test_reads_return_the_data_of_their_envelopes(client: MsgFlashClient) -> None:
    instances = await client.list_instances()
    assert INSTANCE_MAIN in {instance["id"] for instance in instances}
    health = await client.instance_health(INSTANCE_MAIN)
    assert health["instanceId"] == INSTANCE_MAIN
    sent = await client.send_message(text_message())
    assert (await client.get_message(sent.data["id"]))["id"] == sent.data["id"]
    page = await client.list_messages(instance_id=INSTANCE_MAIN, limit=10)
    assert sent.data["id"] in {message["id"] for message in page["messages"]}
    elsewhere = await client.list_messages(instance_id=INSTANCE_CONNECTING)
    assert sent.data["id"] not in {message["id"] for message in elsewhere["messages"]}


async def test_a_webhook_is_registered_listed_and_deleted(client: MsgFlashClient) -> None:
    created = await client.register_webhook("http://127.0.0.1:9/hooks", ["message.delivered"])
    assert created["secret"]
    assert created["id"] in {hook["id"] for hook in await client.list_webhooks()}
    await client.delete_webhook(created["id"])
    assert created["id"] not in {hook["id"] for hook in await client.list_webhooks()}


async def test_metrics_label_routes_by_template_never_by_raw_id(
    client: MsgFlashClient, metrics: Metrics
) -> None:
    await client.instance_health(INSTANCE_MAIN)
    labels = {"endpoint": "GET /api/v1/instances/{id}/health", "status": "200"}
    assert sample(metrics, "relay_msgflash_requests_total", **labels) == 1
    assert INSTANCE_MAIN not in metrics.render().decode()


# --- errors that are not retried ---------------------------------------------------------


async def test_a_validation_error_is_parsed_with_details_and_never_retried(
    client: MsgFlashClient, sandbox: SandboxHandle
) -> None:
    outcome = await client.send_message({"instanceId": INSTANCE_MAIN, "type": "text", "text": "Hi"})
    failure, attempts = failed(outcome, MsgFlashError)
    assert (failure.code, failure.http_status, attempts) == ("VALIDATION_ERROR", 400, 1)
    assert failure.retry_class is RetryClass.PERMANENT
    assert any(problem.field == "to" for problem in failure.details)
    assert len(await sandbox.requests(SEND)) == 1


async def test_an_unknown_message_is_not_found_after_one_request(
    client: MsgFlashClient, sandbox: SandboxHandle
) -> None:
    missing = "00000000-0000-4000-8000-00000000ffff"
    with pytest.raises(MsgFlashError) as raised:
        await client.get_message(missing)
    assert (raised.value.code, raised.value.http_status) == ("NOT_FOUND", 404)
    assert len(await sandbox.requests(f"/api/v1/messages/{missing}")) == 1


async def test_a_wrong_key_is_unauthorized_and_the_error_never_shows_the_key(
    sandbox: SandboxHandle, metrics: Metrics
) -> None:
    wrong = "msgf_live_" + "ab" * 32
    msgflash = MsgFlashClient.create(
        base_url=sandbox.url,
        api_key=wrong,
        limiter=LocalRateLimiter(1000),
        policy=TINY,
        metrics=metrics,
        timeout=5,
    )
    try:
        with pytest.raises(MsgFlashError) as raised:
            await msgflash.list_instances()
    finally:
        await msgflash.close()
    assert raised.value.code == "UNAUTHORIZED"
    assert len(await sandbox.requests("/api/v1/instances")) == 1
    assert wrong not in str(raised.value) and wrong not in repr(raised.value)
    assert wrong not in repr(msgflash)


async def test_a_monthly_quota_429_is_raised_at_once(
    client: MsgFlashClient, sandbox: SandboxHandle, metrics: Metrics
) -> None:
    await sandbox.set_faults(
        force_429_count=1, force_429_code="MONTHLY_OUTBOUND_QUOTA_EXCEEDED", paths=[SEND]
    )
    failure, attempts = failed(await client.send_message(text_message()), MsgFlashError)
    assert (failure.code, attempts) == ("MONTHLY_OUTBOUND_QUOTA_EXCEEDED", 1)
    assert failure.retry_class is RetryClass.QUOTA
    assert len(await sandbox.requests(SEND)) == 1
    assert sample(metrics, "relay_msgflash_retries_total", reason=failure.code) == 0


# --- errors that are retried -------------------------------------------------------------


async def test_a_429_storm_ends_in_success_on_the_fourth_attempt(
    client: MsgFlashClient, sandbox: SandboxHandle, metrics: Metrics
) -> None:
    await sandbox.set_faults(force_429_count=3, paths=[SEND])
    result = await client.send_message(text_message())
    assert (result.status, result.attempts) == (201, 4)
    assert [entry["status"] for entry in await sandbox.requests(SEND)] == [429, 429, 429, 201]
    assert sample(metrics, "relay_msgflash_retries_total", reason="API_RATE_LIMIT_EXCEEDED") == 3


async def test_503s_then_success_is_retried_to_success(
    client: MsgFlashClient, sandbox: SandboxHandle
) -> None:
    faults = {"error_rate": 0.5, "error_statuses": [503], "paths": [SEND]}
    seed = seed_giving(faults, ["error", "error", None])
    await sandbox.set_faults(**faults, random_seed=seed)
    result = await client.send_message(text_message())
    assert result.attempts == 3
    assert [entry["status"] for entry in await sandbox.requests(SEND)] == [503, 503, 201]


async def test_exhausted_attempts_raise_the_last_error_with_the_attempt_count(
    client: MsgFlashClient, sandbox: SandboxHandle
) -> None:
    await sandbox.set_faults(error_rate=1.0, error_statuses=[503], paths=[SEND])
    failure, attempts = failed(await client.send_message(text_message()), MsgFlashError)
    assert (failure.http_status, attempts) == (503, MAX_ATTEMPTS)
    assert failure.retry_class is RetryClass.TRANSIENT
    assert len(await sandbox.requests(SEND)) == MAX_ATTEMPTS


async def test_a_refused_connection_is_unreachable_and_retried_as_never_sent(
    sandbox: SandboxHandle, metrics: Metrics
) -> None:
    with socket.socket() as bound:  # bound but not listening: connections are refused
        bound.bind(("127.0.0.1", 0))
        port = bound.getsockname()[1]
        msgflash = make_client(sandbox, metrics, base_url=f"http://127.0.0.1:{port}")
        try:
            outcome = await msgflash.send_message(text_message())
        finally:
            await msgflash.close()
    failure, attempts = failed(outcome, MsgFlashNoResponse)
    assert (failure.code, failure.http_status, attempts) == (
        "MSGFLASH_UNREACHABLE",
        None,
        MAX_ATTEMPTS,
    )
    assert not failure.request_sent
    assert "MSGFLASH_BASE_URL" in failure.message
    labels = {"endpoint": "POST /api/v1/messages/send", "status": "error"}
    assert sample(metrics, "relay_msgflash_requests_total", **labels) == MAX_ATTEMPTS
    # Never sent, so nothing to reconcile: no message listing was requested.
    assert 'endpoint="GET /api/v1/messages"' not in metrics.render().decode()


async def test_a_hanging_read_times_out_on_every_attempt(
    sandbox: SandboxHandle, metrics: Metrics
) -> None:
    await sandbox.set_faults(hang_rate=1.0, hang_seconds=5, paths=["/api/v1/instances"])
    msgflash = make_client(
        sandbox, metrics, policy=RetryPolicy(max_attempts=2, transient=(0.001, 0.01)), timeout=0.2
    )
    try:
        with pytest.raises(MsgFlashNoResponse) as raised:
            await msgflash.list_instances()
    finally:
        await msgflash.close()
    assert raised.value.code == "MSGFLASH_TIMEOUT"
    assert len(await sandbox.requests("/api/v1/instances")) == 2


async def test_a_timed_out_send_is_checked_before_every_resend(
    sandbox: SandboxHandle, metrics: Metrics
) -> None:
    await sandbox.set_faults(hang_rate=1.0, hang_seconds=5, paths=[SEND])
    policy = RetryPolicy(max_attempts=3, transient=(0.001, 0.01))
    msgflash = make_client(sandbox, metrics, policy=policy, timeout=0.2)
    try:
        outcome = await msgflash.send_message(text_message())
    finally:
        await msgflash.close()
    failure, attempts = failed(outcome, MsgFlashNoResponse)
    assert (failure.code, attempts) == ("MSGFLASH_TIMEOUT", 3)
    assert failure.request_sent
    logged = await sandbox.requests("/api/v1/messages")
    assert [(entry["method"], entry["path"]) for entry in logged] == [
        ("POST", SEND),
        ("GET", "/api/v1/messages"),
        ("POST", SEND),
        ("GET", "/api/v1/messages"),
        ("POST", SEND),
    ]


# --- unanswered sends: reconcile, never send twice ---------------------------------------


async def test_a_send_whose_answer_was_lost_is_found_and_not_sent_again(
    client: MsgFlashClient, sandbox: SandboxHandle
) -> None:
    await sandbox.set_faults(drop_after_rate=1.0, paths=[SEND])
    result = await client.send_message(text_message("Only once"))
    await sandbox.clear_faults()
    assert result.reconciled and result.attempts == 2
    [post] = await sandbox.requests(SEND)
    assert post["fault"] == "drop_after"
    page = await client.list_messages(instance_id=INSTANCE_MAIN)
    created = [m for m in page["messages"] if m["body"] == "Only once"]
    assert [m["id"] for m in created] == [result.data["id"]]


async def test_a_template_send_whose_answer_was_lost_is_found_by_template(
    client: MsgFlashClient, sandbox: SandboxHandle
) -> None:
    payload = {
        "instanceId": INSTANCE_MAIN,
        "to": "+33612345678",
        "templateId": TEMPLATE_WELCOME,
        "variables": {"firstName": "Ana"},
    }
    await sandbox.set_faults(drop_after_rate=1.0, paths=[SEND])
    result = await client.send_message(payload)
    assert result.reconciled
    assert len(await sandbox.requests(SEND)) == 1


async def test_a_send_dropped_before_processing_is_checked_then_sent_exactly_once_more(
    client: MsgFlashClient, sandbox: SandboxHandle
) -> None:
    faults = {"drop_rate": 0.5, "paths": [SEND]}
    await sandbox.set_faults(**faults, random_seed=seed_giving(faults, ["drop", None]))
    result = await client.send_message(text_message("Second try"))
    assert not result.reconciled and (result.status, result.attempts) == (201, 2)
    assert [entry["status"] for entry in await sandbox.requests(SEND)] == [None, 201]
    assert len(await sandbox.requests("/api/v1/messages", method="GET")) == 1


async def test_a_send_that_cannot_be_checked_ends_as_outcome_unknown_without_a_resend(
    client: MsgFlashClient, sandbox: SandboxHandle
) -> None:
    # Drops the send's answer, and then every answer to the check as well.
    await sandbox.set_faults(drop_after_rate=1.0, paths=["/api/v1/messages"])
    failure, _ = failed(await client.send_message(text_message()), MsgFlashOutcomeUnknown)
    assert failure.code == "OUTCOME_UNKNOWN" and failure.request_sent
    assert len(await sandbox.requests(SEND)) == 1
    # The check was retried like any read (aiohttp may add its own one retry of a GET whose
    # connection dropped), and then the call gave up rather than send blind.
    checks = await sandbox.requests("/api/v1/messages", method="GET")
    assert len(checks) >= MAX_ATTEMPTS
    assert {check["fault"] for check in checks} == {"drop_after"}


async def test_an_unanswered_campaign_create_is_looked_up_and_never_posted_twice(
    client: MsgFlashClient, sandbox: SandboxHandle
) -> None:
    # Every answer lost, the lookup's too: whether the campaign exists stays unknown.
    await sandbox.set_faults(drop_after_rate=1.0, paths=["/api/v1/campaigns"])
    outcome = await client.create_campaign(
        {
            "instanceId": INSTANCE_MAIN,
            "name": "once",
            "schedule": "2030-01-01T08:00:00.000Z",
            "recipients": {"type": "all"},
            "type": "text",
            "body": "Once",
        }
    )
    failed(outcome, MsgFlashOutcomeUnknown)
    assert len(await sandbox.requests("/api/v1/campaigns", method="POST")) == 1
    assert await sandbox.requests("/api/v1/campaigns", method="GET"), "it was looked up"


# --- pacing ------------------------------------------------------------------------------


@pytest.mark.parametrize("sandbox_config", [{"rate_limit_per_second": 10.0}])
async def test_a_paced_client_never_trips_msgflash_rate_limit(
    sandbox: SandboxHandle, metrics: Metrics
) -> None:
    msgflash = make_client(sandbox, metrics, rate=10.0, policy=RetryPolicy(max_attempts=1))
    try:
        await asyncio.gather(*(msgflash.list_instances() for _ in range(15)))
    finally:
        await msgflash.close()
    statuses = [entry["status"] for entry in await sandbox.requests("/api/v1/instances")]
    assert statuses == [200] * 15
    assert sample(metrics, "relay_rate_limiter_wait_seconds_count") == 15
    assert sample(metrics, "relay_rate_limiter_wait_seconds_sum") > 0


ErrorT = TypeVar("ErrorT", bound=MsgFlashError)


def failed(outcome: CallOutcome, kind: type[ErrorT]) -> tuple[ErrorT, int]:
    """The error and attempt count of a creating call that must have failed with ``kind``."""
    assert isinstance(outcome, CallFailure), outcome
    assert isinstance(outcome.error, kind), outcome.error
    return outcome.error, outcome.attempts
