"""Prometheus collectors, created on a registry that the runtime owns and passes around.

No module-level collectors: two relays in one test process must not share counters.
"""

from __future__ import annotations

import functools

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    """Every metric the relay exposes, on one registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.commands = Counter(
            "relay_commands_total",
            "Commands handled, by command type, outcome and account.",
            ["type", "outcome", "account"],
            registry=r,
        )
        self.in_flight = Gauge(
            "relay_commands_in_flight", "Commands being processed right now.", registry=r
        )
        self.ready = Gauge(
            "relay_ready",
            "1 while /readyz answers 200, 0 otherwise (the state store as of the last probe).",
            registry=r,
        )
        self.dead_lettered = Counter(
            "relay_dead_lettered_total",
            "Commands parked in the dead-letter queue, by error code and account.",
            ["code", "account"],
            registry=r,
        )
        self.deferred = Counter(
            "relay_deferred_total",
            "Commands sent to a deferred-retry tier, by reason and account.",
            ["reason", "account"],
            registry=r,
        )
        self.msgflash_requests = Counter(
            "relay_msgflash_requests_total",
            "MsgFlash HTTP calls, by endpoint, status code ('error' when no response) and account.",
            ["endpoint", "status", "account"],
            registry=r,
        )
        self.msgflash_latency = Histogram(
            "relay_msgflash_request_seconds",
            "MsgFlash HTTP call latency, by endpoint.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.retries = Counter(
            "relay_msgflash_retries_total",
            "In-process retries of MsgFlash calls, by reason (error code or class).",
            ["reason"],
            registry=r,
        )
        self.rate_limiter_wait = Histogram(
            "relay_rate_limiter_wait_seconds",
            "Time spent waiting for an account's rate limiter, by account.",
            ["account"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.webhooks = Counter(
            "relay_webhooks_total",
            "Incoming MsgFlash webhooks, by event and verification result.",
            ["event", "result"],
            registry=r,
        )
        self.quota_gate_closed = Gauge(
            "relay_quota_gate_closed",
            "1 while MsgFlash calls for an account are suspended after a monthly quota error.",
            ["account"],
            registry=r,
        )
        self.events_published = Counter(
            "relay_events_published_total",
            "Events published to the bus, by routing key.",
            ["routing_key"],
            registry=r,
        )
        self.events_unroutable = Counter(
            "relay_events_unroutable_total",
            "Events published while no queue was bound for their routing key, by routing key.",
            ["routing_key"],
            registry=r,
        )
        self.tether_requests = Counter(
            "relay_tether_requests_total",
            "Tether HTTP calls, by endpoint, status code ('error' when no response) and account.",
            ["endpoint", "status", "account"],
            registry=r,
        )
        self.tether_latency = Histogram(
            "relay_tether_request_seconds",
            "Tether HTTP call latency, by endpoint.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.tether_retries = Counter(
            "relay_tether_retries_total",
            "In-process retries of Tether calls, by reason (error code).",
            ["reason"],
            registry=r,
        )
        self.account_in_flight = Gauge(
            "relay_account_in_flight",
            "Commands of an account being processed right now (its lane), by account and provider.",
            ["account", "provider"],
            registry=r,
        )
        self.account_moved = Counter(
            "relay_account_moved_total",
            "Commands moved to their account's own queue because its lane was full, by account "
            "and provider.",
            ["account", "provider"],
            registry=r,
        )
        # ``labels()`` validates, locks and hashes on every call; the per-command paths look
        # their children up here instead (label values come from small fixed sets).
        self.command_outcome = functools.cache(self.commands.labels)
        self.msgflash_request = functools.cache(self.msgflash_requests.labels)
        self.msgflash_endpoint_latency = functools.cache(self.msgflash_latency.labels)
        self.event_published = functools.cache(self.events_published.labels)
        self.event_unroutable = functools.cache(self.events_unroutable.labels)
        self.limiter_wait = functools.cache(self.rate_limiter_wait.labels)

    def render(self) -> bytes:
        return generate_latest(self.registry)
