"""Authentication (A1-A6, R2, R3): login for a JWT, Bearer on every route, 401s as documented."""

from __future__ import annotations

from service.providers.tether.auth import jwt_expiry
from service.providers.tether.sandbox.config import DEFAULT_API_TOKEN, DEFAULT_EMAIL
from tests.providers.tether.sandbox.conftest import Api, ApiFactory


async def test_login_answers_a_bare_token_and_user_with_id_not__id(make_api: ApiFactory) -> None:
    api = await make_api(login=False, token_expiry_seconds=600)
    status, body = await api.call(
        "POST", "/api/auth/login", {"email": DEFAULT_EMAIL, "password": "tether-sandbox-password"}
    )
    assert status == 200 and set(body) == {"token", "user"}
    assert set(body["user"]) == {"id", "email", "fullName", "organizationId", "accessRole"}
    expiry = jwt_expiry(body["token"])
    assert expiry is not None


async def test_wrong_password_is_401_and_the_password_never_reaches_the_log(
    make_api: ApiFactory,
) -> None:
    api = await make_api(login=False)
    status, body = await api.call(
        "POST", "/api/auth/login", {"email": DEFAULT_EMAIL, "password": "wrong"}
    )
    assert status == 401 and body["error"]["code"] == "invalid_credentials"
    [logged] = await api.log()
    assert logged["body"]["password"] == "[redacted]"


async def test_routes_need_a_bearer_and_refuse_it_with_the_documented_body(api: Api) -> None:
    status, body = await api.call("GET", "/api/campaigns", token="forged.jwt.token")
    assert (status, body) == (401, {"error": "Invalid or expired token"})
    api.token = None
    assert (await api.call("GET", "/api/campaigns"))[0] == 401
    assert (await api.call("GET", "/api/auth/verify-token", token=DEFAULT_API_TOKEN))[1] == {
        "message": "Token is good"
    }


async def test_an_expired_token_is_refused_and_a_new_login_works(make_api: ApiFactory) -> None:
    api = await make_api()
    await api.ok("POST", "/_sandbox/tokens/expire")
    assert (await api.call("GET", "/api/campaigns"))[0] == 401
    await api.login()
    assert (await api.call("GET", "/api/campaigns"))[0] == 200


async def test_a_token_past_its_lifetime_is_refused(make_api: ApiFactory) -> None:
    api = await make_api(token_expiry_seconds=0.000001)
    assert (await api.call("GET", "/api/auth/verify-token"))[0] == 401


async def test_undocumented_routes_do_not_exist(api: Api) -> None:
    for method, path in (("POST", "/api/campaigns/abc/pause"), ("PUT", "/api/campaigns")):
        status, body = await api.call(method, path)
        assert status == 404 and body["error"]["code"] == "not_found"
