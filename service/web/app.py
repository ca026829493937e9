"""The relay's two aiohttp applications.

The public one (webhooks, ingress, its OpenAPI) faces MsgFlash and producers; the admin one
(liveness, readiness, metrics) is for the orchestrator and the scraper only, on a port of its
own so that exposing the first never exposes the second.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import structlog
from aiohttp import web

from service.bus.publisher import Publisher
from service.metrics import Metrics
from service.settings import IngressGrant
from service.state.store import StateStore
from service.tracing.spans import Tracing
from service.web.credentials import BearerTokens
from service.web.health import ReadinessChecks, health_routes
from service.web.ingress import CommandIngress, ingress_routes
from service.web.openapi import openapi_routes
from service.web.webhooks import MAX_WEBHOOK_BYTES, WebhookReceiver, webhook_routes

log = structlog.get_logger("service.web.app")


@dataclass(frozen=True, slots=True)
class WebDeps:
    """Everything the public routes need, built by the runtime."""

    metrics: Metrics
    publisher: Publisher
    store: StateStore
    # An account's webhook secrets, None for an unknown account. A callable: the runtime adds
    # the embedded sandbox's secret after registering with it.
    webhook_secrets: Callable[[str], tuple[str, ...] | None]
    ingress_tokens: tuple[IngressGrant, ...]  # empty: ingress disabled (404)
    max_body_bytes: int  # RELAY_MAX_BODY_BYTES, for ingress commands
    webhook_dedupe_seconds: float  # RELAY_WEBHOOK_DEDUPE_SECONDS
    webhook_tolerance_seconds: float  # RELAY_WEBHOOK_TOLERANCE_SECONDS
    body_timeout: float  # RELAY_HTTP_BODY_TIMEOUT
    webhook_require_timestamp: bool = False  # RELAY_WEBHOOK_REQUIRE_TIMESTAMP
    tracing: Tracing | None = None  # None: off


def create_web_app(deps: WebDeps) -> web.Application:
    """The public application: webhooks, ingress and the OpenAPI document."""
    # Bodies are read with an explicit bound by each route; this only caps the unexpected.
    app = web.Application(client_max_size=max(deps.max_body_bytes, MAX_WEBHOOK_BYTES))
    receiver = WebhookReceiver(
        publisher=deps.publisher,
        store=deps.store,
        metrics=deps.metrics,
        secrets=deps.webhook_secrets,
        dedupe_seconds=deps.webhook_dedupe_seconds,
        tolerance_seconds=deps.webhook_tolerance_seconds,
        body_timeout=deps.body_timeout,
        require_timestamp=deps.webhook_require_timestamp,
        tracing=deps.tracing,
    )
    tokens = BearerTokens.of(deps.ingress_tokens)
    if tokens.unbound:
        log.warning(
            "ingress_tokens_unbound",
            count=tokens.unbound,
            hint="a bare token may publish commands for any source, and so claim another "
            "producer's (source, id): bind each as TOKEN=PATTERN in RELAY_INGRESS_TOKENS",
        )
    ingress = CommandIngress(
        publisher=deps.publisher,
        tokens=tokens,
        max_body_bytes=deps.max_body_bytes,
        body_timeout=deps.body_timeout,
        tracing=deps.tracing,
    )
    app.add_routes(webhook_routes(receiver))
    app.add_routes(ingress_routes(ingress))
    app.add_routes(openapi_routes())
    return app


def create_admin_app(
    readiness: ReadinessChecks,
    metrics: Metrics,
    warnings: Callable[[], tuple[str, ...]] = tuple,
) -> web.Application:
    """The admin application: ``/healthz``, ``/readyz`` and ``/metrics``; nothing else.

    ``warnings`` are shown on ``/readyz`` without failing it (refused provider credentials).
    """
    app = web.Application()
    app.add_routes(health_routes(readiness, metrics, warnings))
    return app
