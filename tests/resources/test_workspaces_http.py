"""`/v1/workspaces` over real HTTP: create, list and show, as the CLI does them."""

from __future__ import annotations

import pytest
from resources.helpers import refused
from serving_harness import running_server

from appliance.services import Services


def test_create_list_and_show(services: Services) -> None:
    with running_server(services, restore=False) as client:
        made = client.post("/v1/workspaces", json={"name": "ads", "description": "classifieds"})
        assert made.status_code == 201, made.text
        assert made.json()["description"] == "classifieds" and made.json()["datasets"] == 0
        assert client.post("/v1/workspaces", json={"name": "shop"}).status_code == 201
        listed = client.get("/v1/workspaces").json()
        assert [w["name"] for w in listed] == ["ads", "shop"]
        assert listed == [services.workspaces.show("ads"), services.workspaces.show("shop")]
        shown = client.get("/v1/workspaces/ads").json()
        assert shown["id"] == made.json()["id"] and set(shown) >= {"runs", "models"}


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"name": "ads"}, 409, "already exists"),
        ({"name": "../x"}, 400, "must not contain"),
        ({"name": ""}, 400, "must not be empty"),
        ({"name": "x", "owner": "me"}, 400, "unknown field `owner`"),
        ({"description": "no name"}, 400, "missing required field `name`"),
    ],
)
def test_refusals_say_what_to_fix(
    services: Services, body: dict[str, str], status: int, words: str
) -> None:
    services.workspaces.create("ads")
    with running_server(services, restore=False) as client:
        refused(client.post("/v1/workspaces", json=body), status, words)
        refused(client.get("/v1/workspaces/nope"), 404, "no workspace 'nope'")
    assert [w["name"] for w in services.workspaces.list()] == ["ads"]


def test_a_user_limited_to_a_workspace_lists_only_it(services: Services) -> None:
    from appliance.access.roles import Role

    for name in ("ads", "shop"):
        services.workspaces.create(name)
    _, token = services.users.add("ana", Role.developer, workspace="ads")
    bearer = {"authorization": f"Bearer {token}"}
    with running_server(services, restore=False) as client:
        assert [w["name"] for w in client.get("/v1/workspaces", headers=bearer).json()] == ["ads"]
        assert [w["name"] for w in client.get("/v1/workspaces").json()] == ["ads", "shop"]
        assert client.get("/v1/workspaces/shop", headers=bearer).status_code == 403
        # Creating one spans every workspace: not for a user limited to one.
        refused(client.post("/v1/workspaces", json={"name": "x"}, headers=bearer), 403, "ads")
    assert [w["name"] for w in services.workspaces.list()] == ["ads", "shop"]
