"""The demo's home and its one workspace: a home of its own by default, and in any home it
deletes only a classified-ads workspace it made itself (a person's only with --replace)."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.demo.home import CREATED_BY, default_demo_home, fresh_workspace
from appliance.errors import Conflict
from appliance.services import Services
from appliance.settings import default_home


def test_the_default_demo_home_is_beside_the_default_home_not_in_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_home() == tmp_path / "appliance"
    assert default_demo_home() == tmp_path / "appliance-demo"


def test_a_second_demo_remakes_its_own_workspace(services: Services) -> None:
    assert fresh_workspace(services) is None
    first = services.workspaces.get("classified-ads")
    assert first["created_by"] == CREATED_BY
    said = fresh_workspace(services)
    assert said == "removed the workspace classified-ads of an earlier demo run"
    again = services.workspaces.get("classified-ads")
    assert again["id"] != first["id"] and again["created_by"] == CREATED_BY


def test_a_workspace_the_demo_did_not_make_is_kept_unless_replace(
    services: Services, photos: Path
) -> None:
    mine = services.workspaces.create("classified-ads", "my ads")
    services.datasets.add("classified-ads", "product-photos", photos)
    with pytest.raises(Conflict, match="did not create") as refused:
        fresh_workspace(services)
    assert "\n" not in str(refused.value) and "(datasets 1, runs 0, models 0" in str(refused.value)
    assert services.workspaces.show("classified-ads")["id"] == mine["id"]
    assert services.datasets.get("classified-ads", "product-photos")["version"] == 1
    said = fresh_workspace(services, replace=True)
    assert said == "deleted the workspace classified-ads the demo had not made (--replace)"
    made = services.workspaces.show("classified-ads")
    assert made["created_by"] == CREATED_BY and made["datasets"] == 0
