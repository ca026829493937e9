"""Liveness, readiness and Prometheus metrics: what an orchestrator and a scraper ask."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from service.metrics import Metrics
from service.web.bodies import Liveness, Readiness, reply
from service.web.operations import Operation, Reply

ReadinessChecks = Callable[[], Awaitable[dict[str, bool]]]
ReadinessWarnings = Callable[[], tuple[str, ...]]


def _none() -> tuple[str, ...]:
    return ()


def health_routes(
    readiness: ReadinessChecks, metrics: Metrics, warnings: ReadinessWarnings = _none
) -> list[web.RouteDef]:
    async def healthz(_request: web.Request) -> web.Response:
        return reply(Liveness(status="ok"))

    async def readyz(_request: web.Request) -> web.Response:
        checks = await readiness()
        ready = all(checks.values())
        status = "ready" if ready else "not ready"
        body = Readiness(status=status, checks=checks, warnings=warnings())
        return reply(body, 200 if ready else 503)

    async def metrics_text(_request: web.Request) -> web.Response:
        return web.Response(
            body=metrics.render(), headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4}
        )

    return [
        web.route(LIVENESS.method, LIVENESS.path, healthz),
        web.route(READINESS.method, READINESS.path, readyz),
        web.route(METRICS.method, METRICS.path, metrics_text),
    ]


LIVENESS = Operation(
    method="GET",
    path="/healthz",
    operation_id="liveness",
    tag="operations",
    summary="Liveness",
    description="200 while the process's event loop runs; nothing else is checked.",
    replies=(Reply(200, "Alive.", Liveness),),
)

READINESS = Operation(
    method="GET",
    path="/readyz",
    operation_id="readiness",
    tag="operations",
    summary="Readiness",
    description=(
        "200 only when every check holds: connected to the broker, every consumer active, "
        "not draining for shutdown, and the state store answers; 503 with the failing checks "
        "otherwise."
    ),
    replies=(
        Reply(200, "Ready to take commands.", Readiness),
        Reply(503, "Not ready; `checks` says why.", Readiness),
    ),
)

METRICS = Operation(
    method="GET",
    path="/metrics",
    operation_id="metrics",
    tag="operations",
    summary="Prometheus metrics",
    description="Every relay_* metric, in the Prometheus text exposition format.",
    replies=(Reply(200, "Prometheus text format 0.0.4.", None, media_type="text/plain"),),
)
