"""The webhook load's deliveries: distinct, and signed as MsgFlash signs them."""

from __future__ import annotations

import json

from benchmarks.webhook_load import Tally, signed_deliveries
from service.web.credentials import WebhookVerifier


def test_every_delivery_verifies_with_the_secret_and_is_distinct() -> None:
    deliveries = signed_deliveries("s3cret", 5)
    verifier = WebhookVerifier(("s3cret",))
    assert all(verifier.verify(body, signature) for body, signature in deliveries)
    ids = {json.loads(body)["messageId"] for body, _ in deliveries}
    assert len(ids) == 5


def test_a_tally_leaves_the_warm_up_out_of_the_percentiles() -> None:
    tally = Tally()
    tally.statuses[200] = 3
    tally.timings = [(0.0, 9.0), (2.0, 0.010), (3.0, 0.020)]
    summary = tally.summary(seconds=3.0, warm_until=1.0)
    assert summary["requests"] == 3
    assert summary["requests_per_second"] == 1.0
    assert summary["p99_ms"] == 20.0
