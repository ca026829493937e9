"""Authentication (§1) and envelopes (§2): who gets in, and the shape of every answer."""

from __future__ import annotations

import pydantic
import pytest

from service.providers.msgflash.sandbox.config import SandboxConfig
from service.providers.msgflash.sandbox.seed import INSTANCE_MAIN
from tests.providers.msgflash.sandbox.conftest import Api, ApiFactory

OTHER_KEY = "msgf_live_" + "0123456789abcdef" * 4


async def test_a_request_without_a_key_is_unauthorized(api: Api) -> None:
    response = await api.client.get("/api/v1/instances")
    assert response.status == 401
    assert await response.json() == {
        "error": {"code": "UNAUTHORIZED", "message": "Invalid or revoked API key"}
    }


async def test_a_well_formed_but_unknown_key_is_unauthorized(api: Api) -> None:
    status, body = await api.call("GET", "/api/v1/instances", headers={"x-api-key": OTHER_KEY})
    assert (status, body["error"]["code"]) == (401, "UNAUTHORIZED")


async def test_a_bearer_token_is_not_accepted_even_with_a_valid_key(api: Api) -> None:
    response = await api.client.get(
        "/api/v1/instances", headers={"Authorization": f"Bearer {api.key}"}
    )
    assert response.status == 401
    assert (await response.json())["error"]["code"] == "UNAUTHORIZED"


async def test_every_configured_key_is_accepted(make_api: ApiFactory) -> None:
    api = await make_api(api_keys=(OTHER_KEY,))
    api.key = OTHER_KEY
    status, body = await api.get("/api/v1/instances")
    assert status == 200 and isinstance(body["data"], list)


async def test_a_personal_key_with_a_team_header_is_refused(api: Api) -> None:
    status, body = await api.call(
        "GET", "/api/v1/instances", headers={"X-Team-Id": "00000000-0000-4000-8000-000000000001"}
    )
    assert (status, body["error"]["code"]) == (403, "TEAM_KEY_REQUIRED")


def test_a_configured_key_must_have_the_msgflash_format() -> None:
    with pytest.raises(pydantic.ValidationError, match="msgf_live_"):
        SandboxConfig(api_keys=("not-a-key",))


async def test_success_answers_wrap_their_payload_in_data(api: Api) -> None:
    status, body = await api.get(f"/api/v1/instances/{INSTANCE_MAIN}")
    assert status == 200 and set(body) == {"data"}


async def test_an_unknown_api_route_is_a_not_found_error(api: Api) -> None:
    status, body = await api.get("/api/v1/nothing-here")
    assert status == 404 and body["error"]["code"] == "NOT_FOUND"


async def test_a_wrong_method_is_answered_in_the_error_envelope(api: Api) -> None:
    status, body = await api.call("PATCH", "/api/v1/messages/send")
    assert status == 405 and body["error"]["code"] == "METHOD_NOT_ALLOWED"


async def test_a_body_that_is_not_a_json_object_is_a_validation_error(api: Api) -> None:
    response = await api.client.post(
        "/api/v1/messages/send", data=b"[1, 2", headers={"x-api-key": api.key}
    )
    body = await response.json()
    assert response.status == 400
    assert body["error"]["code"] == "VALIDATION_ERROR"
    assert body["error"]["details"] == [
        {"field": "(body)", "message": "the request body must be a JSON object"}
    ]


async def test_admin_routes_need_no_key(api: Api) -> None:
    response = await api.client.get("/_sandbox/faults")
    assert response.status == 200
