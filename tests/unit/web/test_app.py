"""Building the web apps: what an operator is told at start about the ingress tokens."""

from __future__ import annotations

from structlog.testing import capture_logs

from service.bus.publisher import Publisher
from service.contract.amqp import Topology
from service.metrics import Metrics
from service.settings import IngressGrant
from service.state.memory import MemoryStateStore
from service.web.app import WebDeps, create_web_app


def _deps(*grants: IngressGrant) -> WebDeps:
    metrics = Metrics()
    return WebDeps(
        metrics=metrics,
        publisher=Publisher(Topology(prefix="t"), metrics),
        store=MemoryStateStore(retention_seconds=60),
        webhook_secrets=lambda account: (),
        ingress_tokens=grants,
        max_body_bytes=1024,
        webhook_dedupe_seconds=60,
        webhook_tolerance_seconds=60,
        body_timeout=1,
    )


def test_a_token_that_may_use_any_source_is_warned_about_at_start_without_showing_it() -> None:
    with capture_logs() as logs:
        create_web_app(_deps(IngressGrant("s3cr3t-bare"), IngressGrant("s3cr3t-b", ("urn:b",))))
    [warning] = [entry for entry in logs if entry["event"] == "ingress_tokens_unbound"]
    assert warning["log_level"] == "warning"
    assert warning["count"] == 1
    assert "s3cr3t" not in repr(logs)


def test_bound_tokens_alone_are_not_warned_about() -> None:
    with capture_logs() as logs:
        create_web_app(_deps(IngressGrant("tok", ("urn:a",))))
    assert not [entry for entry in logs if entry["event"] == "ingress_tokens_unbound"]
