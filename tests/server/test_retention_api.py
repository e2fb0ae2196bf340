"""``GET/PUT /v1/retention`` through the real application on every backend: the caller's
tenant only, scope ``admin``, what a body may be, the legal hold shown, and the record of
every change in the tenant's log."""

from __future__ import annotations

from typing import Any

import pytest

from auditlog.model import times
from auditlog.model.retention import Hold
from auditlog.server.app import AuditlogApp
from server.api import Api, problem
from server.conftest import MakeApi

pytestmark = pytest.mark.anyio

PATH = "/v1/retention"
DAY = 86_400


@pytest.fixture
async def admin(make_api: MakeApi) -> Api:
    return await make_api("acme", ("admin",), "admin")


async def put(admin: Api, body: Any) -> Any:
    return await admin.client.put(PATH, json=body, headers=admin.headers)


async def current(admin: Api) -> dict[str, Any]:
    response = await admin.client.get(PATH, headers=admin.headers)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def test_a_tenant_without_a_policy_keeps_everything(admin: Api) -> None:
    assert await current(admin) == {
        "tenant": "acme",
        "keep": None,
        "keep_seconds": None,
        "updated_at": None,
        "updated_by": None,
        "hold": None,
    }


async def test_a_policy_is_set_shown_and_recorded(admin: Api, make_api: MakeApi) -> None:
    response = await put(admin, {"keep": "48h"})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["keep"] == "2d"
    assert answer["keep_seconds"] == 2 * DAY
    assert answer["updated_by"] == f"key:{admin.key_id}"
    times.parse_rfc3339(answer["updated_at"])
    assert await current(admin) == answer
    response = await put(admin, {"keep": None})
    assert response.status_code == 200, response.text
    assert response.json()["keep"] is None
    assert response.json()["keep_seconds"] is None
    records = [e for e in await admin.everything() if e["type"] == "auditlog.retention.set"]
    assert [r["data"] for r in records] == [
        {
            "keep": "2d",
            "keep_seconds": 2 * DAY,
            "previous": "none",
            "request_id": records[0]["data"]["request_id"],
        },
        {
            "keep": "none",
            "keep_seconds": None,
            "previous": "2d",
            "request_id": records[1]["data"]["request_id"],
        },
    ]
    assert records[0]["actor"] == {
        "id": f"key:{admin.key_id}",
        "type": "credential",
        "name": "admin",
    }
    # Another tenant's admin sees its own tenant only, and nothing was recorded there.
    other = await make_api("globex", ("admin",), "admin")
    assert (await current(other))["keep"] is None
    assert await other.everything() == []


async def test_the_hold_is_shown(app: AuditlogApp, admin: Api) -> None:
    hold = Hold("acme", "case 117", "cli:ops-anna", times.now_us())
    assert await app.services.store.set_hold(hold) is None
    assert (await current(admin))["hold"] == {
        "reason": "case 117",
        "set_by": "cli:ops-anna",
        "set_at": times.format_us(hold.set_us),
    }
    answer = (await put(admin, {"keep": "400d"})).json()
    assert answer["hold"]["reason"] == "case 117"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"keep": "400"}, "keep"),
        ({"keep": "2w"}, "keep"),
        ({"keep": "0d"}, "keep"),
        ({"keep": "none"}, "keep"),
        ({"keep": 400}, "keep"),
        ({"keep": True}, "keep"),
        ({}, "keep"),
        ({"keep": "1d", "hold": "x"}, "hold"),
        ([], "body"),
        ("400d", "body"),
    ],
)
async def test_a_bad_policy_is_422_naming_the_field_and_changes_nothing(
    admin: Api, body: Any, field: str
) -> None:
    doc = problem(await put(admin, body), 422)
    assert [e["field"] for e in doc["errors"]] == [field]
    assert (await current(admin))["keep"] is None
    assert await admin.everything() == []


async def test_not_json_is_refused(admin: Api) -> None:
    response = await admin.client.put(
        PATH, content=b"{", headers={**admin.headers, "Content-Type": "application/json"}
    )
    problem(response, 400)
    response = await admin.client.put(
        PATH, content=b"keep=1d", headers={**admin.headers, "Content-Type": "text/plain"}
    )
    problem(response, 415)


async def test_the_scope_admin_is_needed(admin: Api, make_api: MakeApi) -> None:
    reader = await make_api("acme", ("events:read", "events:write", "log:read"), "reader")
    problem(await reader.client.get(PATH, headers=reader.headers), 403)
    problem(await reader.client.put(PATH, json={"keep": "1d"}, headers=reader.headers), 403)
    assert (await current(admin))["keep"] is None
