"""The relay's one aiohttp application: webhooks, ingress, health, metrics and its OpenAPI."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from service.bus.publisher import Publisher
from service.metrics import Metrics
from service.state.store import StateStore
from service.web.credentials import BearerTokens
from service.web.health import ReadinessChecks, health_routes
from service.web.ingress import CommandIngress, ingress_routes
from service.web.openapi import openapi_routes
from service.web.webhooks import MAX_WEBHOOK_BYTES, WebhookReceiver, webhook_routes


@dataclass(frozen=True, slots=True)
class WebDeps:
    """Everything the routes need, built by the runtime."""

    metrics: Metrics
    readiness: ReadinessChecks  # all True = ready (broker, consumers, not draining, store)
    publisher: Publisher
    store: StateStore
    # A callable: the runtime adds the embedded sandbox's secret after registering with it.
    webhook_secrets: Callable[[], tuple[str, ...]]
    ingress_tokens: tuple[str, ...]  # empty: ingress disabled (404)
    max_body_bytes: int  # RELAY_MAX_BODY_BYTES, for ingress commands
    webhook_dedupe_seconds: float  # RELAY_WEBHOOK_DEDUPE_SECONDS
    # Shown on /readyz without failing it: refused provider credentials.
    readiness_warnings: Callable[[], tuple[str, ...]] = tuple


def create_web_app(deps: WebDeps) -> web.Application:
    # Bodies are read with an explicit bound by each route; this only caps the unexpected.
    app = web.Application(client_max_size=max(deps.max_body_bytes, MAX_WEBHOOK_BYTES))
    receiver = WebhookReceiver(
        publisher=deps.publisher,
        store=deps.store,
        metrics=deps.metrics,
        secrets=deps.webhook_secrets,
        dedupe_seconds=deps.webhook_dedupe_seconds,
    )
    ingress = CommandIngress(
        publisher=deps.publisher,
        tokens=BearerTokens(deps.ingress_tokens),
        max_body_bytes=deps.max_body_bytes,
    )
    app.add_routes(webhook_routes(receiver))
    app.add_routes(ingress_routes(ingress))
    app.add_routes(health_routes(deps.readiness, deps.metrics, deps.readiness_warnings))
    app.add_routes(openapi_routes())
    return app
