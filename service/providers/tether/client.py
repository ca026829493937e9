"""The Tether HTTP adapter: one pooled session, a kept bearer token, paced and retried calls.

Every attempt waits for the account's rate limiter, carries the current token, and turns what
came back (or did not) into data or a ``TetherError``. A 401 renews a login token once; a
refused login or a refused static token is ``TETHER_AUTH_FAILED``, never retried. Tokens and
passwords never appear in an error, a repr or a log line.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import aiohttp
import structlog

from service.contract.errors import (
    TETHER_AUTH_FAILED,
    TETHER_BAD_RESPONSE,
    TETHER_TIMEOUT,
    TETHER_UNREACHABLE,
    TetherError,
    TetherNoResponse,
    TetherOutcomeUnknown,
)
from service.logs import redact_text
from service.metrics import Metrics
from service.providers.common.endpoint import Endpoint
from service.providers.common.retry import CallFailure, Retrier, RetryPolicy, parse_retry_after
from service.providers.common.session import PooledSession
from service.providers.tether import api
from service.providers.tether.account import TetherAccount
from service.providers.tether.auth import TokenKeeper
from service.providers.tether.reconcile import campaigns_in, find_created_campaign
from service.tracing.spans import HttpCall, Tracing

if TYPE_CHECKING:
    from service.pacing import RateLimiter

log = structlog.get_logger("service.providers.tether.client")


@dataclass(frozen=True, slots=True)
class CreateResult:
    """A campaign Tether holds for a create: its object, the attempts, and whether it was found
    in the campaign list after an unanswered attempt rather than in a create answer."""

    data: dict[str, Any]
    attempts: int
    reconciled: bool = False


CreateOutcome = CreateResult | CallFailure[TetherError]


def _may_have_landed(error: TetherError) -> bool:
    return error.unanswered


def _is_outcome_unknown(error: TetherError) -> bool:
    return isinstance(error, TetherOutcomeUnknown)


class TetherClient:
    """Calls one Tether account's API over one pooled session."""

    def __init__(
        self,
        session: aiohttp.ClientSession | None,
        *,
        account: TetherAccount,
        limiter: RateLimiter,
        policy: RetryPolicy,
        metrics: Metrics,
        timeout: float | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        """``session`` None: the client makes (and owns) a pooled one on its first call."""
        timeouts = aiohttp.ClientTimeout(total=timeout) if timeout is not None else None
        self._session = PooledSession(session, pool_size=32, timeout=timeouts)
        self._tracing = tracing or Tracing()  # None: off
        self._account = account
        self._base_url = account.base_url.rstrip("/")
        self._limiter = limiter
        self._retrier = Retrier(policy, TetherError, metrics.tether_retries, "tether")
        self._metrics = metrics
        self._tokens = TokenKeeper(account.credentials, self._login)
        self._secrets = list(account.credentials.secrets)
        self.auth_failed: str | None = None  # why Tether refused the credentials, for /readyz

    @classmethod
    def create(
        cls,
        *,
        account: TetherAccount,
        limiter: RateLimiter,
        policy: RetryPolicy,
        metrics: Metrics,
        timeout: float,
        tracing: Tracing | None = None,
    ) -> TetherClient:
        """A client owning its session, made on first use (no I/O here); ``close()`` it."""
        return cls(
            None,
            account=account,
            limiter=limiter,
            policy=policy,
            metrics=metrics,
            timeout=timeout,
            tracing=tracing,
        )

    def __repr__(self) -> str:
        return f"TetherClient(account={self._account.name!r}, base_url={self._base_url!r})"

    async def close(self) -> None:
        await self._session.close()

    # --- calls ---------------------------------------------------------------------------
    async def validate_date(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return api.answer_object(
            await self._call(api.VALIDATE_DATE, json_body=body), api.VALIDATE_DATE
        )

    async def next_available_slot(self, count: int) -> dict[str, Any]:
        params = {"contactCount": str(count)}
        answer = await self._call(api.NEXT_AVAILABLE_SLOT, params=params)
        return api.answer_object(answer, api.NEXT_AVAILABLE_SLOT)

    async def auto_segment(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return api.answer_object(
            await self._call(api.AUTO_SEGMENT, json_body=body), api.AUTO_SEGMENT
        )

    async def list_campaigns(self) -> list[dict[str, Any]]:
        return campaigns_in(await self._call(api.LIST_CAMPAIGNS))

    async def find_campaign(
        self, body: Mapping[str, Any], since: datetime
    ) -> dict[str, Any] | None:
        """The campaign ``body`` created at or after ``since``, if Tether lists one."""
        found = find_created_campaign(await self.list_campaigns(), body, since)
        log.info("tether_campaign_looked_up", found=found is not None, campaignId=_id(found))
        return found

    async def create_campaign(self, body: Mapping[str, Any]) -> CreateOutcome:
        """Create, retrying; after an unanswered attempt, look in the list before resending.
        A failure is returned with its attempt count, not raised: the handler reports it."""
        landed_since: datetime | None = None

        async def once() -> tuple[dict[str, Any], bool]:
            nonlocal landed_since
            if landed_since is not None:
                found = await self._reconcile(body, landed_since)
                if found is not None:
                    return found, True
                landed_since = None
            sent_at = datetime.now(UTC)
            try:
                answer = await self._authorized(api.CREATE_CAMPAIGN, body, None)
            except TetherNoResponse as error:
                if error.request_sent:
                    landed_since = sent_at
                raise
            return api.created_campaign(answer), False

        answer, attempts = await self._retrier.run(
            once, endpoint=api.CREATE_CAMPAIGN.label, give_up=_is_outcome_unknown
        )
        if isinstance(answer, TetherError):
            return CallFailure(answer, attempts)
        data, reconciled = answer
        return CreateResult(data, attempts, reconciled)

    # --- machinery -----------------------------------------------------------------------
    async def _reconcile(self, body: Mapping[str, Any], since: datetime) -> dict[str, Any] | None:
        try:
            return await self.find_campaign(body, since)
        except TetherError as check:
            raise TetherOutcomeUnknown(
                f"creating campaign {body.get('name')!r} got no answer, and reading Tether's "
                f"campaign list to check failed too ({check.code}: {check.message}); it may "
                f"exist at Tether, so it was not sent again"
            ) from check

    async def _call(
        self,
        endpoint: Endpoint,
        *,
        json_body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> Any:
        """One lookup or check, retried: its parsed answer, or its last error raised."""

        async def once() -> Any:
            return await self._authorized(endpoint, json_body, params)

        give_up = _may_have_landed if endpoint.method == "POST" else None
        answer, _ = await self._retrier.run(once, endpoint=endpoint.label, give_up=give_up)
        if isinstance(answer, TetherError):
            raise answer
        return answer

    async def _authorized(
        self,
        endpoint: Endpoint,
        json_body: Mapping[str, Any] | None,
        params: Mapping[str, str] | None,
    ) -> Any:
        """One exchange with the current token; on a 401, one more with a renewed token."""
        token = await self._tokens.token()
        try:
            return await self._exchange(endpoint, json_body, params, token)
        except TetherError as error:
            if error.http_status != 401:
                raise
            if not self._tokens.renews:
                raise self._refused("TETHER_API_TOKEN", error) from error
            refused = error
        token = await self._tokens.refused(token)
        try:
            return await self._exchange(endpoint, json_body, params, token)
        except TetherError as error:
            if error.http_status == 401:
                raise self._refused("the fresh login token", error) from refused
            raise

    async def _login(self) -> str:
        """``POST /api/auth/login``: ``{token, user}``; a 4xx is a refusal, not an outage."""
        credentials = self._account.credentials
        body = {"email": credentials.email, "password": credentials.password}

        async def once() -> Any:
            return await self._exchange(api.LOGIN, body, None, None)

        answer, _ = await self._retrier.run(once, endpoint=api.LOGIN.label)
        if isinstance(answer, TetherError):
            if answer.http_status is not None and 400 <= answer.http_status < 500:
                raise self._refused("TETHER_EMAIL/TETHER_PASSWORD", answer) from answer
            raise answer
        token = answer.get("token") if isinstance(answer, dict) else None
        if not isinstance(token, str) or not token:
            raise TetherError(TETHER_BAD_RESPONSE, "Tether's login answer holds no `token`")
        self._secrets.append(token)
        self.auth_failed = None
        return token

    def _refused(self, what: str, error: TetherError) -> TetherError:
        reason = (
            f"Tether refused {what} for account {self._account.name!r} "
            f"(HTTP {error.http_status}: {error.message}); fix the Tether credentials "
            f"(TETHER_API_TOKEN, or TETHER_EMAIL and TETHER_PASSWORD) and replay the command"
        )
        self.auth_failed = reason
        log.warning("tether_auth_failed", account=self._account.name, httpStatus=error.http_status)
        return TetherError(TETHER_AUTH_FAILED, reason, http_status=error.http_status)

    async def _exchange(
        self,
        endpoint: Endpoint,
        json_body: Mapping[str, Any] | None,
        params: Mapping[str, str] | None,
        token: str | None,
    ) -> Any:
        """One paced HTTP exchange, measured and traced; returns the parsed answer or raises."""
        waited = await self._limiter.acquire(self._account.pacing_key)
        self._metrics.limiter_wait(self._account.name).observe(waited)
        url = self._base_url + endpoint.path()
        with self._tracing.http_call(
            endpoint.method, url, endpoint.template, waited=waited
        ) as call:
            return await self._send(endpoint, url, json_body, params, token, call)

    async def _send(
        self,
        endpoint: Endpoint,
        url: str,
        json_body: Mapping[str, Any] | None,
        params: Mapping[str, str] | None,
        token: str | None,
        call: HttpCall,
    ) -> Any:
        headers = {"Accept": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        status, started = "error", time.perf_counter()
        try:
            async with self._session.get().request(
                endpoint.method,
                url,
                json=dict(json_body) if json_body is not None else None,
                params=params,
                headers=call.headers(headers),
            ) as response:
                body = await response.read()
                status = str(response.status)
                call.answered(response.status)
                retry_after = parse_retry_after(
                    response.headers.get("Retry-After"), now=datetime.now(UTC)
                )
            return api.read_answer(
                response.status, body, retry_after=retry_after, secrets=self._secrets
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise self._no_response(endpoint, exc) from exc
        finally:
            self._metrics.tether_requests.labels(endpoint.label, status, self._account.name).inc()
            self._metrics.tether_latency.labels(endpoint.label).observe(
                time.perf_counter() - started
            )

    def _no_response(self, endpoint: Endpoint, exc: BaseException) -> TetherNoResponse:
        reason = redact_text(f"{type(exc).__name__}: {exc}".rstrip(": "), self._secrets)
        if isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError):
            return TetherNoResponse(
                TETHER_UNREACHABLE,
                f"could not connect to Tether at {self._base_url} for {endpoint.label} "
                f"({reason}); check TETHER_BASE_URL and the network",
                request_sent=False,
            )
        if isinstance(exc, TimeoutError):
            return TetherNoResponse(
                TETHER_TIMEOUT,
                f"Tether did not answer {endpoint.label} in time ({reason}); the request may "
                f"have been processed; raise RELAY_TETHER_TIMEOUT if Tether is just slow",
                request_sent=True,
            )
        return TetherNoResponse(
            TETHER_UNREACHABLE,
            f"the connection to Tether broke during {endpoint.label} ({reason}); "
            f"the request may have been processed",
            request_sent=True,
        )


def _id(campaign: Mapping[str, Any] | None) -> str | None:
    return str(campaign.get("_id")) if campaign is not None else None
