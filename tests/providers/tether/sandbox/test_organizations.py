"""Organisations: a login or an API token belongs to one organisation, which sees only its own
campaigns and quota; the single-organisation config is one organisation, ``default``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from service.contract.errors import ConfigError
from service.providers.tether.sandbox.config import ORGANIZATION_ID, TetherSandboxConfig
from tests.providers.tether.sandbox.conftest import CAMPAIGN, Api, ApiFactory

ACME_ID, GLOBEX_ID = "a" * 24, "b" * 24
GLOBEX_TOKEN = "tk_live_" + "9b" * 16
TWO_ORGANIZATIONS: dict[str, Any] = {
    "daily_limit": 5,
    "organizations": [
        {"name": "acme", "id": ACME_ID,
         "users": [{"id": "a" * 23 + "1", "email": "ops@acme.example", "password": "acme-pw"}]},
        {"name": "globex", "id": GLOBEX_ID, "api_tokens": [GLOBEX_TOKEN], "daily_limit": 2,
         "users": [{"id": "b" * 23 + "1", "email": "ops@globex.example", "password": "gx-pw"}]},
    ],
}  # fmt: skip
DATE_CHECK = {"scheduledISO": "2030-05-20T15:00:00.000Z", "contactCount": 2}


async def _organizations(make_api: ApiFactory) -> tuple[Api, Api]:
    acme = await make_api(login=False, **TWO_ORGANIZATIONS)
    status, body = await acme.call(
        "POST", "/api/auth/login", {"email": "ops@acme.example", "password": "acme-pw"}
    )
    assert status == 200 and body["user"]["organizationId"] == ACME_ID, body
    acme.token = body["token"]
    return acme, Api(acme.client, GLOBEX_TOKEN)


async def test_a_campaign_is_seen_only_by_its_organisation(make_api: ApiFactory) -> None:
    acme, globex = await _organizations(make_api)
    created = (await acme.ok("POST", "/api/campaigns", CAMPAIGN))["data"]
    assert created["organizationId"] == ACME_ID

    assert (await globex.call("GET", f"/api/campaigns/{created['_id']}"))[0] == 404
    assert (await globex.ok("GET", "/api/campaigns"))["data"] == []
    assert [c["_id"] for c in (await acme.ok("GET", "/api/campaigns"))["data"]] == [created["_id"]]


async def test_each_organisation_has_its_own_quota_ledger(make_api: ApiFactory) -> None:
    acme, globex = await _organizations(make_api)
    await acme.ok("POST", "/api/campaigns", CAMPAIGN)  # reserves 2 of acme's 5 on the day

    acme_day = await acme.ok("POST", "/api/campaigns/validate-date", DATE_CHECK)
    globex_day = await globex.ok("POST", "/api/campaigns/validate-date", DATE_CHECK)
    assert (acme_day["limit"], acme_day["remaining"]) == (5, 3)
    assert (globex_day["limit"], globex_day["remaining"]) == (2, 2)
    await acme.ok("PUT", "/_sandbox/quota?organization=globex", {"sent": {"2030-05-20": 2}})
    assert (await globex.call("POST", "/api/campaigns", CAMPAIGN))[0] == 400
    assert (await acme.call("POST", "/api/campaigns", CAMPAIGN))[0] == 200


async def test_the_request_log_names_the_organisation_never_the_token(
    make_api: ApiFactory,
) -> None:
    acme, globex = await _organizations(make_api)
    await globex.ok("GET", "/api/campaigns")
    await acme.call("GET", "/api/campaigns", token="forged.token.value")

    log = await acme.log()
    assert [(e["path"], e["organization"], e["status"]) for e in log] == [
        ("/api/auth/login", "acme", 200),
        ("/api/campaigns", "globex", 200),
        ("/api/campaigns", None, 401),
    ]
    assert GLOBEX_TOKEN not in json.dumps(log) and "acme-pw" not in json.dumps(log)
    only = (await acme.ok("GET", "/_sandbox/requests?organization=globex"))["data"]
    assert [e["seq"] for e in only] == [log[1]["seq"]]


async def test_admin_routes_about_one_organisation_name_it_when_there_are_several(
    make_api: ApiFactory,
) -> None:
    acme, _ = await _organizations(make_api)
    status, body = await acme.call("PUT", "/_sandbox/quota", {"sent": {}})
    assert status == 400 and "?organization=NAME (one of: acme, globex)" in str(body)
    listed = (await acme.ok("GET", "/_sandbox/organizations"))["data"]
    assert listed == [
        {"name": "acme", "id": ACME_ID, "emails": ["ops@acme.example"], "apiTokens": 0},
        {"name": "globex", "id": GLOBEX_ID, "emails": ["ops@globex.example"], "apiTokens": 1},
    ]
    await acme.ok("POST", "/api/campaigns", CAMPAIGN)
    assert (await acme.ok("GET", "/_sandbox/campaigns?organization=globex"))["data"] == []
    assert len((await acme.ok("GET", "/_sandbox/campaigns"))["data"]) == 1


async def test_the_single_organisation_config_is_organisation_default(api: Api) -> None:
    created = (await api.ok("POST", "/api/campaigns", CAMPAIGN))["data"]
    assert created["organizationId"] == ORGANIZATION_ID
    assert [o["name"] for o in (await api.ok("GET", "/_sandbox/organizations"))["data"]] == [
        "default"
    ]
    assert [e["organization"] for e in await api.log()] == ["default", "default"]


def _organizations_file(tmp_path: Path, raw: dict[str, Any]) -> str:
    path = tmp_path / "tether.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(ConfigError, match="invalid tether sandbox config") as caught:
        TetherSandboxConfig.from_file(path)
    return caught.value.message


def _org(name: str, org_id: str, email: str, **more: Any) -> dict[str, Any]:
    user = {"id": org_id[:-1] + "9", "email": email, "password": "pw"}
    return {"name": name, "id": org_id, "users": [user], **more}


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        ({"organizations": [_org("a", ACME_ID, "x@a"), _org("b", GLOBEX_ID, "x@a")]},
         "organizations.1.users.0.email: this email already belongs to organizations.0 (a)"),
        ({"organizations": [_org("a", ACME_ID, "x@a", api_tokens=[GLOBEX_TOKEN]),
                            _org("b", GLOBEX_ID, "y@b", api_tokens=[GLOBEX_TOKEN])]},
         "organizations.1.api_tokens.0: this token already belongs to organizations.0 (a)"),
        ({"api_tokens": [GLOBEX_TOKEN], "organizations": [_org("a", ACME_ID, "x@a")]},
         "api_tokens: with organizations listed, give each its own under organizations.N"),
        ({"organizations": [_org("a", "not-an-object-id", "x@a")]}, "organizations.0.id"),
    ],
)  # fmt: skip
def test_a_bad_organisation_is_a_config_error_naming_it_and_never_its_token(
    tmp_path: Path, raw: dict[str, Any], named: str
) -> None:
    message = _organizations_file(tmp_path, raw)
    assert named in message and GLOBEX_TOKEN not in message
