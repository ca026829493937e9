"""The MsgFlash HTTP adapter: one pooled aiohttp session, paced and retried calls, typed errors.

Every attempt waits for the rate limiter first, sends ``x-api-key`` (MsgFlash refuses Bearer),
and turns whatever came back (or did not) into data or a ``MsgFlashError``. The API key never
appears in an error, a repr or a log line: only ``key_fingerprint`` does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import aiohttp
import structlog
from pydantic_core import to_json

from service.contract.commands import DEFAULT_ACCOUNT
from service.contract.errors import (
    MSGFLASH_BAD_RESPONSE,
    MSGFLASH_TIMEOUT,
    MSGFLASH_UNREACHABLE,
    MsgFlashError,
    MsgFlashNoResponse,
    MsgFlashOutcomeUnknown,
    RetryClass,
)
from service.logs import redact_text
from service.metrics import Metrics
from service.providers.common.endpoint import Endpoint
from service.providers.common.retry import CallFailure, Retrier, RetryPolicy, parse_retry_after
from service.providers.common.session import PooledSession
from service.providers.msgflash.api import (
    CREATE_CAMPAIGN,
    DELETE_WEBHOOK,
    GET_MESSAGE,
    INSTANCE_HEALTH,
    LIST_CAMPAIGNS,
    LIST_INSTANCES,
    LIST_MESSAGES,
    LIST_WEBHOOKS,
    REGISTER_WEBHOOK,
    SCHEDULE_MESSAGE,
    SEND_MESSAGE,
    key_fingerprint,
    read_envelope,
)
from service.providers.msgflash.reconcile import (
    Attribution,
    ReconcileUndecided,
    find_created_campaign,
    find_created_message,
)
from service.tracing.spans import HttpCall, Tracing

if TYPE_CHECKING:
    from service.pacing import RateLimiter

log = structlog.get_logger(__name__)

_T = TypeVar("_T")

# Awaited right before a creating request leaves, after pacing (the caller records that what it
# creates may now exist); raising stops the request.
BeforeSend = Callable[[], Awaitable[None]]
# Looks for what an unanswered create may have made since a time: the lookup before a resend.
Finder = Callable[["MsgFlashClient", Mapping[str, Any], datetime], Awaitable[dict[str, Any] | None]]
# How long after its answer was due an answered send is surely recorded as done (its caller
# stores the outcome right after the answer); see ``reconcile``'s settled matches.
SETTLE_MARGIN_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class CallResult:
    """A successful creating call: the ``data`` MsgFlash returned and how many attempts it took.

    ``reconciled`` is true when an unanswered attempt turned out to have created the message and
    ``data`` is that message as listed by MsgFlash (``status`` is then the listing's status).
    """

    data: dict[str, Any]
    attempts: int
    status: int
    reconciled: bool = False


CallOutcome = CallResult | CallFailure[MsgFlashError]


def _may_have_landed(error: MsgFlashError) -> bool:
    return isinstance(error, MsgFlashNoResponse) and error.request_sent


def _is_outcome_unknown(error: MsgFlashError) -> bool:
    return isinstance(error, MsgFlashOutcomeUnknown)


class MsgFlashClient:
    """Calls the MsgFlash public API with one API key over one pooled session."""

    def __init__(
        self,
        session: aiohttp.ClientSession | None,
        *,
        base_url: str,
        api_key: str,
        limiter: RateLimiter,
        policy: RetryPolicy,
        metrics: Metrics,
        timeout: float | None = None,
        pool_size: int = 100,
        tracing: Tracing | None = None,
        account: str = DEFAULT_ACCOUNT,
        attribution: Attribution | None = None,
    ) -> None:
        """``session`` None: the client makes (and owns) a pooled one on its first call.

        ``attribution`` tells an unanswered send which of several identical listed messages it
        may take as its own (``reconcile``); without it only a lone match counts.
        """
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._account = account  # the metrics' label: a name, never key material
        self._limiter = limiter
        self._retrier = Retrier(policy, MsgFlashError, metrics.retries, "msgflash")
        self._metrics = metrics
        self._tracing = tracing or Tracing()  # None: off
        self.attribution = attribution
        # A call answered within its deadline has recorded its message this long after.
        self._answer_window = timedelta(seconds=(timeout or 300.0) + SETTLE_MARGIN_SECONDS)
        # None: the session's own ClientTimeout applies.
        self._timeout = aiohttp.ClientTimeout(total=timeout) if timeout is not None else None
        self._session = PooledSession(
            session, pool_size=pool_size, timeout=self._timeout, json_serialize=_json_text
        )

    @classmethod
    def create(
        cls,
        *,
        base_url: str,
        api_key: str,
        limiter: RateLimiter,
        policy: RetryPolicy,
        metrics: Metrics,
        timeout: float,
        pool_size: int = 100,
        tracing: Tracing | None = None,
        account: str = DEFAULT_ACCOUNT,
        attribution: Attribution | None = None,
    ) -> MsgFlashClient:
        """A client owning its session, made on first use (no I/O here); ``close()`` it."""
        return cls(
            None,
            base_url=base_url,
            api_key=api_key,
            limiter=limiter,
            policy=policy,
            metrics=metrics,
            timeout=timeout,
            pool_size=pool_size,
            tracing=tracing,
            account=account,
            attribution=attribution,
        )

    @property
    def key_fingerprint(self) -> str:
        return key_fingerprint(self._api_key)

    def __repr__(self) -> str:
        return f"MsgFlashClient(base_url={self._base_url!r}, key={self.key_fingerprint!r})"

    async def close(self) -> None:
        await self._session.close()

    # --- creating calls ------------------------------------------------------------------
    async def send_message(
        self,
        payload: Mapping[str, Any],
        *,
        before_send: BeforeSend | None = None,
        caller: str = "",
    ) -> CallOutcome:
        """``caller`` names the command, so a lost answer's lookup takes one message for it."""
        find = _message_finder(caller)
        return await self._create_once(SEND_MESSAGE, payload, find, before_send)

    async def schedule_message(
        self,
        payload: Mapping[str, Any],
        *,
        before_send: BeforeSend | None = None,
        caller: str = "",
    ) -> CallOutcome:
        find = _message_finder(caller)
        return await self._create_once(SCHEDULE_MESSAGE, payload, find, before_send)

    async def create_campaign(
        self, payload: Mapping[str, Any], *, before_send: BeforeSend | None = None
    ) -> CallOutcome:
        return await self._create_once(CREATE_CAMPAIGN, payload, _find_campaign, before_send)

    async def register_webhook(self, url: str, events: Sequence[str]) -> dict[str, Any]:
        """Create a webhook endpoint; the returned ``secret`` is shown once, never logged."""
        body = {"url": url, "events": list(events)}
        data, status = await self._call(REGISTER_WEBHOOK, json_body=body, give_up=_may_have_landed)
        return _as_dict(data, REGISTER_WEBHOOK, status)

    # --- reads and deletes ---------------------------------------------------------------
    async def list_instances(self) -> list[dict[str, Any]]:
        data, status = await self._call(LIST_INSTANCES)
        return _as_list(data, LIST_INSTANCES, status)

    async def instance_health(self, instance_id: str) -> dict[str, Any]:
        data, status = await self._call(INSTANCE_HEALTH, path=INSTANCE_HEALTH.path(id=instance_id))
        return _as_dict(data, INSTANCE_HEALTH, status)

    async def get_message(self, message_id: str) -> dict[str, Any]:
        data, status = await self._call(GET_MESSAGE, path=GET_MESSAGE.path(id=message_id))
        return _as_dict(data, GET_MESSAGE, status)

    async def list_messages(
        self,
        *,
        instance_id: str | None = None,
        status: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        """One page, newest first: ``{messages, nextCursor, hasMore}``."""
        query = {"instanceId": instance_id, "status": status, "limit": str(limit), "cursor": cursor}
        params = {name: value for name, value in query.items() if value is not None}
        data, http_status = await self._call(LIST_MESSAGES, params=params)
        return _as_dict(data, LIST_MESSAGES, http_status)

    async def list_campaigns(
        self, *, instance_id: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> dict[str, Any]:
        """One page, newest first: ``{campaigns, nextCursor, hasMore}``."""
        query = {"instanceId": instance_id, "limit": str(limit), "cursor": cursor}
        params = {name: value for name, value in query.items() if value is not None}
        data, http_status = await self._call(LIST_CAMPAIGNS, params=params)
        return _as_dict(data, LIST_CAMPAIGNS, http_status)

    async def list_webhooks(self) -> list[dict[str, Any]]:
        data, status = await self._call(LIST_WEBHOOKS)
        return _as_list(data, LIST_WEBHOOKS, status)

    async def delete_webhook(self, webhook_id: str) -> None:
        await self._call(DELETE_WEBHOOK, path=DELETE_WEBHOOK.path(id=webhook_id))

    # --- machinery -----------------------------------------------------------------------
    async def _create_once(
        self,
        endpoint: Endpoint,
        payload: Mapping[str, Any],
        find: Finder,
        before_send: BeforeSend | None,
    ) -> CallOutcome:
        """Create, retrying; an unanswered attempt is looked up before anything is sent again."""
        landed_since: datetime | None = None  # set while an unanswered create may have landed

        async def once() -> tuple[Any, int, bool]:
            nonlocal landed_since
            if landed_since is not None:
                found = await self._reconcile(endpoint, payload, landed_since, find)
                if found is not None:
                    return found, 200, True
                landed_since = None
            sent_at = datetime.now(UTC)
            try:
                data, status = await self._attempt(
                    endpoint, endpoint.template, payload, None, before_send
                )
            except MsgFlashNoResponse as error:
                if error.request_sent:
                    landed_since = sent_at
                raise
            return data, status, False

        answer, attempts = await self._retried(endpoint, once, give_up=_is_outcome_unknown)
        if isinstance(answer, MsgFlashError):
            return CallFailure(answer, attempts)
        data, status, reconciled = answer
        return CallResult(_as_dict(data, endpoint, status), attempts, status, reconciled)

    async def _reconcile(
        self, endpoint: Endpoint, payload: Mapping[str, Any], since: datetime, find: Finder
    ) -> dict[str, Any] | None:
        """Look for what an unanswered attempt may have created.

        If the check itself fails the outcome stays unknown, and sending again could duplicate
        it: the call ends with ``MsgFlashOutcomeUnknown`` instead.
        """
        try:
            found = await find(self, payload, since)
        except ReconcileUndecided as undecided:
            raise MsgFlashOutcomeUnknown(
                f"{endpoint.label} got no answer, and MsgFlash lists messages of the same "
                f"content that cannot be told apart yet ({undecided}); not sent again, to be "
                f"looked up again later"
            ) from undecided
        except MsgFlashError as check:
            raise MsgFlashOutcomeUnknown(
                f"{endpoint.label} got no answer, and asking MsgFlash whether it was created "
                f"failed too ({check.code}: {check.message}); it may exist at MsgFlash, "
                f"so it was not sent again"
            ) from check
        log.info(
            "msgflash_send_reconciled",
            endpoint=endpoint.label,
            found=found is not None,
            messageId=found.get("id") if found is not None else None,
        )
        return found

    async def find_sent_message(
        self, payload: Mapping[str, Any], since: datetime, caller: str = ""
    ) -> dict[str, Any] | None:
        """The message a send of ``payload`` made at ``since`` created, if MsgFlash lists it.

        With an attribution, waits first until a message created by that send is settled,
        so that a match cannot belong to an answered call that has not recorded it yet.
        Raises ``MsgFlashError`` when MsgFlash cannot be asked and ``ReconcileUndecided``
        when recent matches cannot be told apart yet.
        """
        if self.attribution is None:
            return await find_created_message(self, payload, since=since)
        settled_at = since + 2 * self._answer_window
        wait = (settled_at - datetime.now(UTC)).total_seconds()
        if wait > 0:
            await asyncio.sleep(wait)
        return await find_created_message(
            self,
            payload,
            since=since,
            attribution=self.attribution,
            settled_before=datetime.now(UTC) - self._answer_window,
            taker=caller,
        )

    async def _call(
        self,
        endpoint: Endpoint,
        *,
        path: str | None = None,
        json_body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        give_up: Callable[[MsgFlashError], bool] | None = None,
    ) -> tuple[Any, int]:
        """One logical call, retried by the policy: ``(data, http status)``, or its last error
        raised."""

        async def once() -> tuple[Any, int]:
            return await self._attempt(endpoint, path or endpoint.template, json_body, params)

        answer, _ = await self._retried(endpoint, once, give_up=give_up)
        if isinstance(answer, MsgFlashError):
            raise answer
        return answer

    async def _retried(
        self,
        endpoint: Endpoint,
        once: Callable[[], Awaitable[_T]],
        *,
        give_up: Callable[[MsgFlashError], bool] | None,
    ) -> tuple[_T | MsgFlashError, int]:
        """Run ``once`` under the retry policy: its answer, or the error that ended the call,
        with the number of attempts made."""
        return await self._retrier.run(once, endpoint=endpoint.label, give_up=give_up)

    async def _attempt(
        self,
        endpoint: Endpoint,
        path: str,
        json_body: Mapping[str, Any] | None,
        params: Mapping[str, str] | None,
        before_send: BeforeSend | None = None,
    ) -> tuple[Any, int]:
        """One paced HTTP exchange, measured and traced; returns ``(data, status)`` or raises.
        Its answer steers the pacing of the key: a rate-limit 429 slows it, an accepted request
        lets it recover."""
        waited = await self._limiter.acquire(self._api_key)
        self._metrics.limiter_wait(self._account).observe(waited)
        if before_send is not None:
            await before_send()
        url = self._base_url + path
        traced = self._tracing.http_call(endpoint.method, url, endpoint.template, waited=waited)
        with traced as call:
            return await self._exchange(endpoint, url, json_body, params, call)

    async def _exchange(
        self,
        endpoint: Endpoint,
        url: str,
        json_body: Mapping[str, Any] | None,
        params: Mapping[str, str] | None,
        call: HttpCall,
    ) -> tuple[Any, int]:
        status = "error"
        started = time.perf_counter()
        try:
            async with self._session.get().request(
                endpoint.method,
                url,
                json=dict(json_body) if json_body is not None else None,
                params=params,
                headers=call.headers({"x-api-key": self._api_key, "Accept": "application/json"}),
                timeout=self._timeout,
            ) as response:
                body = await response.read()
                status = str(response.status)  # only once the whole answer is in
                call.answered(response.status)
                retry_after = parse_retry_after(
                    response.headers.get("Retry-After"), now=datetime.now(UTC)
                )
            data = await self._paced_answer(response.status, body, retry_after)
            return data, response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise self._no_response(endpoint, exc) from exc
        finally:
            self._metrics.msgflash_request(endpoint.label, status, self._account).inc()
            self._metrics.msgflash_endpoint_latency(endpoint.label).observe(
                time.perf_counter() - started
            )

    async def _paced_answer(self, status: int, body: bytes, retry_after: float | None) -> Any:
        try:
            data = read_envelope(status, body, retry_after=retry_after, secrets=(self._api_key,))
        except MsgFlashError as error:
            if error.retry_class is RetryClass.RATE_LIMITED:
                await self._limiter.slow_down(self._api_key, error.retry_after)
            raise
        await self._limiter.recovered(self._api_key)
        return data

    def _no_response(self, endpoint: Endpoint, exc: BaseException) -> MsgFlashNoResponse:
        """Name the failure, and whether the request may already have reached MsgFlash."""
        reason = redact_text(f"{type(exc).__name__}: {exc}".rstrip(": "), (self._api_key,))
        if isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError):
            return MsgFlashNoResponse(
                MSGFLASH_UNREACHABLE,
                f"could not connect to MsgFlash at {self._base_url} for {endpoint.label} "
                f"({reason}); check MSGFLASH_BASE_URL and the network",
                request_sent=False,
            )
        if isinstance(exc, TimeoutError):
            return MsgFlashNoResponse(
                MSGFLASH_TIMEOUT,
                f"MsgFlash did not answer {endpoint.label} in time ({reason}); the request may "
                f"have been processed; raise RELAY_MSGFLASH_TIMEOUT if MsgFlash is just slow",
                request_sent=True,
            )
        return MsgFlashNoResponse(
            MSGFLASH_UNREACHABLE,
            f"the connection to MsgFlash broke during {endpoint.label} ({reason}); "
            f"the request may have been processed",
            request_sent=True,
        )


def _message_finder(caller: str) -> Finder:
    async def find(
        client: MsgFlashClient, payload: Mapping[str, Any], since: datetime
    ) -> dict[str, Any] | None:
        return await client.find_sent_message(payload, since, caller)

    return find


async def _find_campaign(
    client: MsgFlashClient, payload: Mapping[str, Any], since: datetime
) -> dict[str, Any] | None:
    return await find_created_campaign(client, payload, since=since)


def _json_text(value: Any) -> str:
    """Request bodies through pydantic-core's serializer, several times faster than json."""
    return to_json(value).decode()


def _as_dict(data: Any, endpoint: Endpoint, status: int) -> dict[str, Any]:
    if isinstance(data, dict):
        return data
    raise MsgFlashError(
        MSGFLASH_BAD_RESPONSE,
        f"MsgFlash answered {endpoint.label} with data of type {type(data).__name__}, "
        f"expected an object",
        http_status=status,
    )


def _as_list(data: Any, endpoint: Endpoint, status: int) -> list[dict[str, Any]]:
    if isinstance(data, list) and all(isinstance(item, dict) for item in data):
        return data
    raise MsgFlashError(
        MSGFLASH_BAD_RESPONSE,
        f"MsgFlash answered {endpoint.label} with data of type {type(data).__name__}, "
        f"expected a list of objects",
        http_status=status,
    )
