"""The client's pure parts: reading envelopes into data or errors, and keeping the key secret."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from service.contract.errors import (
    MSGFLASH_BAD_RESPONSE,
    FieldProblem,
    MsgFlashError,
    MsgFlashNoResponse,
    MsgFlashOutcomeUnknown,
    RetryClass,
)
from service.metrics import Metrics
from service.providers.common.retry import RetryPolicy
from service.providers.msgflash.api import (
    GET_MESSAGE,
    INSTANCE_HEALTH,
    key_fingerprint,
    read_envelope,
)
from service.providers.msgflash.client import MsgFlashClient
from service.secrets import fingerprint

KEY = "msgf_live_" + "0123456789abcdef" * 3 + "0123456789a1b2c3"


def body(document: Any) -> bytes:
    return json.dumps(document).encode()


def test_fingerprint_keeps_the_key_kind_and_a_hash_never_a_character_of_the_key() -> None:
    live, team = KEY, "msgf_team_" + "f" * 58 + "abcdef"
    assert key_fingerprint(live) == "msgf_live_…" + fingerprint(live)[:6]
    assert key_fingerprint(team).startswith("msgf_team_…")
    assert key_fingerprint(live) != key_fingerprint(team)
    assert live[-6:] not in key_fingerprint(live) and "abcdef" not in key_fingerprint(team)


def test_fingerprint_of_a_foreign_key_has_no_kind() -> None:
    assert key_fingerprint("x" * 40 + "123456") == "…" + fingerprint("x" * 40 + "123456")[:6]


def test_a_success_envelope_yields_its_data() -> None:
    assert read_envelope(201, body({"data": {"id": "m1"}}), retry_after=None) == {"id": "m1"}
    assert read_envelope(200, body({"data": [1, 2]}), retry_after=None) == [1, 2]


def test_a_success_without_a_data_envelope_is_a_bad_response_that_says_what_came_back() -> None:
    with pytest.raises(MsgFlashError) as raised:
        read_envelope(201, body({"id": "m1"}), retry_after=None)
    assert raised.value.code == MSGFLASH_BAD_RESPONSE
    assert raised.value.http_status == 201
    assert "unexpected JSON body" in raised.value.message and '"id"' in raised.value.message
    assert raised.value.retry_class is RetryClass.PERMANENT


def test_a_success_with_a_non_json_body_is_a_bad_response() -> None:
    with pytest.raises(MsgFlashError) as raised:
        read_envelope(200, b"<html>ok</html>", retry_after=None)
    assert raised.value.code == MSGFLASH_BAD_RESPONSE
    assert "non-JSON body" in raised.value.message and "<html>" in raised.value.message


def test_an_error_envelope_becomes_a_msgflash_error_with_its_details() -> None:
    details = [{"field": "to", "message": "must be E.164"}]
    document = {
        "error": {"code": "VALIDATION_ERROR", "message": "Invalid request data", "details": details}
    }
    with pytest.raises(MsgFlashError) as raised:
        read_envelope(400, body(document), retry_after=None)
    failure = raised.value
    assert (failure.code, failure.message, failure.http_status) == (
        "VALIDATION_ERROR",
        "Invalid request data",
        400,
    )
    assert failure.details == (FieldProblem("to", "must be E.164"),)
    assert failure.retry_class is RetryClass.PERMANENT


def test_an_error_envelope_carries_the_retry_after_it_came_with() -> None:
    document = {"error": {"code": "API_RATE_LIMIT_EXCEEDED", "message": "Too many API requests"}}
    with pytest.raises(MsgFlashError) as raised:
        read_envelope(429, body(document), retry_after=2.0)
    assert raised.value.retry_after == 2.0
    assert raised.value.details == ()
    assert raised.value.retry_class is RetryClass.RATE_LIMITED


@pytest.mark.parametrize(
    ("raw", "described"),
    [
        (b"Bad Gateway", "non-JSON body: 'Bad Gateway'"),
        (b"", "an empty body"),
        (b'{"message": "nope"}', "unexpected JSON body"),
        (b'{"error": "nope"}', "unexpected JSON body"),
    ],
)
def test_an_unexpected_error_body_is_named_by_its_status(raw: bytes, described: str) -> None:
    with pytest.raises(MsgFlashError) as raised:
        read_envelope(502, raw, retry_after=None)
    assert raised.value.code == "HTTP_502"
    assert raised.value.http_status == 502
    assert described in raised.value.message
    assert raised.value.retry_class is RetryClass.TRANSIENT


def test_a_long_unexpected_body_is_cut_short_in_the_message() -> None:
    with pytest.raises(MsgFlashError) as raised:
        read_envelope(500, b"x" * 10_000, retry_after=None)
    assert len(raised.value.message) < 300


def test_a_key_echoed_in_a_body_never_reaches_the_error_message() -> None:
    echoes = [
        (401, body({"error": {"code": "UNAUTHORIZED", "message": f"bad key {KEY}"}})),
        (500, f"proxy error for {KEY}".encode()),
        (200, body({"echo": KEY})),
    ]
    for status, raw in echoes:
        with pytest.raises(MsgFlashError) as raised:
            read_envelope(status, raw, retry_after=None, secrets=(KEY,))
        assert KEY not in str(raised.value)
        assert KEY not in repr(raised.value)


def test_unanswered_requests_say_whether_they_may_have_landed() -> None:
    refused = MsgFlashNoResponse("MSGFLASH_UNREACHABLE", "refused", request_sent=False)
    dropped = MsgFlashNoResponse("MSGFLASH_UNREACHABLE", "dropped", request_sent=True)
    assert not refused.request_sent and dropped.request_sent
    assert refused.retry_class is RetryClass.TRANSIENT


def test_an_unknown_outcome_is_one_that_may_have_landed() -> None:
    unknown = MsgFlashOutcomeUnknown("no answer, no check")
    assert unknown.code == "OUTCOME_UNKNOWN"
    assert unknown.request_sent
    assert isinstance(unknown, MsgFlashError)


def test_route_labels_never_contain_ids_but_paths_quote_them() -> None:
    assert INSTANCE_HEALTH.label == "GET /api/v1/instances/{id}/health"
    assert GET_MESSAGE.path(id="a/b?c") == "/api/v1/messages/a%2Fb%3Fc"


class NoLimit:
    async def acquire(self, key: str) -> float:
        return 0.0

    async def close(self) -> None:
        return None


async def test_the_client_repr_shows_the_fingerprint_never_the_key() -> None:
    async with aiohttp.ClientSession() as session:
        client = MsgFlashClient(
            session,
            base_url="http://127.0.0.1:1",
            api_key=KEY,
            limiter=NoLimit(),
            policy=RetryPolicy(),
            metrics=Metrics(),
        )
        assert KEY not in repr(client)
        assert key_fingerprint(KEY) in repr(client)
        assert client.key_fingerprint == key_fingerprint(KEY)


def test_details_that_are_not_field_problems_are_kept_whole_as_the_message() -> None:
    details = [{"path": "to", "message": "must be E.164"}, {"hint": 3}, "plain"]
    document = {"error": {"code": "VALIDATION_ERROR", "message": "Invalid", "details": details}}
    with pytest.raises(MsgFlashError) as raised:
        read_envelope(400, body(document), retry_after=None)
    assert raised.value.details == (
        FieldProblem("to", "must be E.164"),
        FieldProblem("", '{"hint": 3}'),
        FieldProblem("", "plain"),
    )
