"""``POST /webhooks/msgflash``: verify a MsgFlash delivery, republish it, answer only then.

MsgFlash retries any non-2xx up to 5 times, so the answer is the relay's lever: 2xx only once
the broker confirmed the ``msgflash.webhook.<event>`` event (503 otherwise, so MsgFlash tries
again), and a repeated delivery is answered 200 without a second event.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import structlog
from aiohttp import web
from pydantic_core import from_json

from service.accounts import ACCOUNT_NAME_PATTERN
from service.bus.publisher import Publisher
from service.contract.commands import DEFAULT_ACCOUNT
from service.contract.errors import BrokerUnavailable
from service.contract.events import (
    WebhookIdentity,
    webhook_event,
    webhook_event_name,
    webhook_identity,
)
from service.metrics import Metrics
from service.state.store import StateStore
from service.tracing.spans import Tracing
from service.web import replay
from service.web.bodies import (
    WebhookDelivery,
    WebhookReceipt,
    error_reply,
    read_bounded,
    reply,
)
from service.web.credentials import WebhookVerifier
from service.web.operations import Header, Operation, Reply, RequestBody, model_schemas

log = structlog.get_logger("service.web.webhooks")

MAX_WEBHOOK_BYTES = 1024 * 1024
SIGNATURE_HEADER = "X-MsgFlash-Signature"
EVENT_HEADER = "X-MsgFlash-Event"
# Metric label when the event cannot be trusted (unsigned, unreadable): never attacker text.
UNKNOWN_EVENT = "unknown"
RETRY_AFTER_SECONDS = "5"

_SIGNATURE_HELP = (
    f"missing or invalid {SIGNATURE_HEADER}: it must be sha256=<lowercase hex HMAC-SHA256 of "
    "the raw body> with the webhook's secret (MSGFLASH_WEBHOOK_SECRET on the relay)"
)


def dedupe_key(identity: WebhookIdentity, body: bytes, account: str = DEFAULT_ACCOUNT) -> str:
    """One delivery's identity: (event, messageId, status), or the raw body when there is no
    messageId; per account, as two accounts' ids may meet. Hashed, so the key stays short
    whatever the payload holds."""
    scope = "webhook:" if account == DEFAULT_ACCOUNT else f"webhook:{account}:"
    if identity.message_id is None:
        return scope + "body:" + hashlib.sha256(body).hexdigest()
    parts = json.dumps([identity.event, identity.message_id, identity.status]).encode()
    return scope + hashlib.sha256(parts).hexdigest()


def parse_payload(body: bytes) -> dict[str, Any] | None:
    """The delivery as a JSON object, or None when it is not one (strict JSON, UTF-8)."""
    try:
        payload = from_json(body, allow_inf_nan=False)
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None


class WebhookReceiver:
    """Verifies, dedupes and republishes MsgFlash deliveries."""

    def __init__(
        self,
        *,
        publisher: Publisher,
        store: StateStore,
        metrics: Metrics,
        secrets: Callable[[str], tuple[str, ...] | None],
        dedupe_seconds: float,
        tolerance_seconds: float,
        body_timeout: float,
        require_timestamp: bool = False,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        tracing: Tracing | None = None,
    ) -> None:
        self._tracing = tracing or Tracing()  # None: off
        self._publisher = publisher
        self._store = store
        self._metrics = metrics
        self._secrets = secrets
        self._tolerance_seconds = tolerance_seconds
        self._require_timestamp = require_timestamp
        self._dedupe_seconds = replay.dedupe_seconds(dedupe_seconds, tolerance_seconds)
        self._clock = clock
        self._body_timeout = body_timeout

    async def receive(self, request: web.Request) -> web.Response:
        """``/webhooks/msgflash/{account}``, or account ``default`` without the segment."""
        with self._tracing.webhook(OPERATION.method, OPERATION.path):
            response = await self._receive(request)
            self._tracing.answered(response.status)
            return response

    async def _receive(self, request: web.Request) -> web.Response:
        account = request.match_info.get("account", DEFAULT_ACCOUNT)
        secrets = self._secrets(account)
        if secrets is None:
            message = f"the relay has no MsgFlash account named {account!r}"
            return self._reject(404, "ACCOUNT_NOT_FOUND", message, "unknown_account")
        body = await read_bounded(request, MAX_WEBHOOK_BYTES, timeout=self._body_timeout)
        if body is None:
            message = f"the body is over {MAX_WEBHOOK_BYTES} bytes, the most a delivery may be"
            return self._reject(413, "PAYLOAD_TOO_LARGE", message, "too_large")
        verifier = WebhookVerifier(secrets)
        if not verifier.configured:
            log.error(
                "webhook_secret_missing",
                hint="set MSGFLASH_WEBHOOK_SECRET to the secret MsgFlash returned when the "
                "webhook was registered; every delivery is refused until then",
            )
        if not verifier.verify(body, request.headers.get(SIGNATURE_HEADER)):
            return self._reject(401, "INVALID_SIGNATURE", _SIGNATURE_HELP, "bad_signature")
        payload = parse_payload(body)
        if payload is None:
            return self._reject(400, "INVALID_JSON", "the body must be a JSON object", "bad_json")
        stale = replay.freshness_problem(
            payload,
            self._clock(),
            self._tolerance_seconds,
            require_timestamp=self._require_timestamp,
        )
        if stale is not None:
            return self._reject(400, *stale, "stale")
        identity = webhook_identity(payload)
        name = webhook_event_name(identity.event)
        return await self._republish(payload, body, identity, name, account)

    def _reject(self, status: int, code: str, message: str, result: str) -> web.Response:
        # Nothing read from a refused request is trusted, so none of it is logged or labelled.
        self._count(UNKNOWN_EVENT, result)
        log.warning("webhook_refused", status=status, code=code)
        return error_reply(status, code, message)

    async def _republish(
        self,
        payload: Mapping[str, Any],
        body: bytes,
        identity: WebhookIdentity,
        event_name: str,
        account: str,
    ) -> web.Response:
        key = dedupe_key(identity, body, account)
        if not await self._store.first_seen(key, self._dedupe_seconds):
            self._count(event_name, "duplicate")
            log.info("webhook_duplicate", webhookEvent=event_name, messageId=identity.message_id)
            return reply(WebhookReceipt(status="duplicate"))
        correlation = None
        if identity.message_id is not None:
            correlation = await self._store.correlation_for(identity.message_id)
            self._tracing.link_command(correlation.traceparent if correlation else None)
        event = webhook_event(payload, correlation, account=account)
        try:
            await self._publisher.publish_event(event)
        except BrokerUnavailable as exc:
            await self._store.forget_seen(key)  # so MsgFlash's retry goes through
            self._count(event_name, "broker_unavailable")
            log.warning("webhook_not_republished", webhookEvent=event_name, error=exc.message)
            message = "the event bus is unavailable: the delivery was not taken, retry later"
            headers = {"Retry-After": RETRY_AFTER_SECONDS}
            return error_reply(503, exc.code, message, headers=headers)
        except BaseException:
            await self._store.forget_seen(key)  # whatever failed, the retry must not be a duplicate
            raise
        self._count(event_name, "accepted")
        log.info(
            "webhook_republished",
            webhookEvent=event_name,
            messageId=identity.message_id,
            requestId=correlation.request_id if correlation else None,
        )
        return reply(WebhookReceipt(status="accepted", event_id=event.id))

    def _count(self, event: str, result: str) -> None:
        self._metrics.webhooks.labels(event, result).inc()


OPERATION = Operation(
    method="POST",
    path="/webhooks/msgflash",
    operation_id="receiveMsgFlashWebhook",
    tag="webhooks",
    summary="Receive a MsgFlash webhook delivery",
    description=(
        "Verifies `X-MsgFlash-Signature` (`sha256=` + lowercase hex HMAC-SHA256 of the raw "
        "body, keyed with any secret in MSGFLASH_WEBHOOK_SECRET), then republishes the "
        "payload unchanged as `msgflash.webhook.<event>` (routing key `webhook.<event>`) on "
        "the events exchange. It answers 2xx only after the broker confirmed that event. "
        "Only the events MsgFlash documents keep their name; any other is published as "
        "`msgflash.webhook.unknown` with the name in `data.event`. A delivery whose payload "
        "`timestamp` is older than RELAY_WEBHOOK_TOLERANCE_SECONDS (or more than 5 minutes "
        "ahead) is refused as a possible replay. A repeated delivery (same event, messageId "
        "and status, or the same body when there is no messageId) is answered 200 and not "
        "published again; it is remembered for RELAY_WEBHOOK_DEDUPE_SECONDS, and never for "
        "less than the tolerance. A delivery without a `timestamp` (MsgFlash's nested shape "
        "has none) is taken, and that memory is its only replay protection: a capture of it "
        "sent again after RELAY_WEBHOOK_DEDUPE_SECONDS is published again, unless "
        "RELAY_WEBHOOK_REQUIRE_TIMESTAMP is on, which refuses undated deliveries. The "
        "signature must carry its `sha256=` prefix, as MsgFlash's delivery header and code "
        "samples do; the bare hex shown by the portal's hint is refused."
    ),
    headers=(
        Header(
            SIGNATURE_HEADER,
            "`sha256=<hex>`: HMAC-SHA256 of the raw body with the webhook's secret.",
            required=True,
            pattern="^sha256=[0-9a-f]{64}$",
        ),
        Header(EVENT_HEADER, "The event name, e.g. `message.delivered` (informative only)."),
    ),
    body=RequestBody(
        description="The delivery as MsgFlash sends it; any JSON object up to 1 MiB.",
        schemas=model_schemas(WebhookDelivery),
    ),
    replies=(
        Reply(
            200,
            "Republished now, or a duplicate of a delivery already republished.",
            WebhookReceipt,
        ),
        Reply(
            400,
            "The body is not a JSON object (INVALID_JSON); its `timestamp` is not an ISO 8601 "
            "date-time, or it has none while RELAY_WEBHOOK_REQUIRE_TIMESTAMP is on "
            "(INVALID_PAYLOAD); or it is too old or too far ahead to be told from a replay "
            "(STALE_DELIVERY).",
        ),
        Reply(401, "Missing or invalid signature, or no secret configured (INVALID_SIGNATURE)."),
        Reply(408, "The body did not arrive in time (REQUEST_TIMEOUT)."),
        Reply(413, "The body is over 1 MiB (PAYLOAD_TOO_LARGE)."),
        Reply(
            503,
            "The broker did not confirm the event (BROKER_UNAVAILABLE); MsgFlash retries.",
            headers=(Header("Retry-After", "Seconds to wait before retrying.", required=True),),
        ),
    ),
)


ACCOUNT_OPERATION = replace(
    OPERATION,
    path="/webhooks/msgflash/{account}",
    operation_id="receiveMsgFlashWebhookForAccount",
    summary="Receive a MsgFlash webhook delivery for one account",
    description=(
        "The same as `POST /webhooks/msgflash`, for the account named in the path (contract "
        "§7): verified with that account's secrets (`webhookSecretsEnv` in RELAY_ACCOUNTS_FILE) "
        "and republished with the CloudEvents extension attribute `account`. The path without "
        "an account is account `default`."
    ),
    headers=(
        Header(
            "account",
            "An account name of RELAY_ACCOUNTS_FILE.",
            required=True,
            pattern=ACCOUNT_NAME_PATTERN,
            where="path",
        ),
        *OPERATION.headers,
    ),
    replies=(
        *OPERATION.replies,
        Reply(404, "The relay has no MsgFlash account of that name (ACCOUNT_NOT_FOUND)."),
    ),
)


def webhook_routes(receiver: WebhookReceiver) -> list[web.RouteDef]:
    return [
        web.route(operation.method, operation.path, receiver.receive)
        for operation in (OPERATION, ACCOUNT_OPERATION)
    ]
