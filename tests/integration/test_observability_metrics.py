"""Every metric the dashboard and the alert rules name is on ``/metrics`` of a running relay:
no panel or alert watches a metric that is not exported."""

from __future__ import annotations

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from service.wiring.relay import Relay
from tests.deploy.promql import EXTERNAL_METRICS, SAMPLE_SUFFIXES, every_query, metric_names


async def exported_names(relay: Relay) -> set[str]:
    """The sample names ``/metrics`` announces, labelled metrics without samples yet included."""
    url = f"http://127.0.0.1:{relay.admin_port}/metrics"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        text = await response.text()
    return {
        family.name + suffix
        for family in text_string_to_metric_families(text)
        for suffix in SAMPLE_SUFFIXES.get(family.type, ("",))
    }


async def test_every_metric_of_the_dashboard_and_the_rules_is_exported(relay: Relay) -> None:
    exported = await exported_names(relay)
    named = {name for query in every_query() for name in metric_names(query)}
    assert named - EXTERNAL_METRICS, "no relay metric found in the queries"
    assert sorted(named - EXTERNAL_METRICS - exported) == []


async def test_the_check_would_catch_a_metric_that_is_not_exported(relay: Relay) -> None:
    exported = await exported_names(relay)
    assert "relay_commands_total" in exported
    assert "relay_msgflash_request_seconds_bucket" in exported
    assert "relay_dashboard_only_total" not in exported
