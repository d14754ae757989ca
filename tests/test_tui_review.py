"""The review screen through Textual's pilot at 80×24, over a real registry with items the
capture thread queued: the oldest pending item first with its photo and answer, n/p to move,
a to accept, c to correct in a field (enter saves), d to dismiss; a text endpoint's items show
their text; an empty correction is an error notification and changes nothing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from test_review import Loop, image_record, text_record
from textual.pilot import Pilot
from textual.widgets import Input, Select, Static
from tui_pilot import Notes, drive, errors, press

from appliance.services import Services
from tui.app import ApplianceApp
from tui.images import ImagePreview


@pytest.fixture
def loop(services: Services) -> Iterator[Loop]:
    services.workspaces.create("ads")
    opened = Loop(services)
    opened.serve(*(image_record(i, keywords="used") for i in range(3)), text_record(1))
    yield opened
    opened.close()


def text_of(app: ApplianceApp, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


def test_review_one_by_one_accept_correct_dismiss(loop: Loop) -> None:
    ids = [i["id"] for i in loop.reviews.list("ads", "captions", oldest_first=True)]

    async def scenario(app: ApplianceApp, pilot: Pilot[None], notes: Notes) -> None:
        await press(app, pilot, "9")
        assert app.current_mode == "review"
        assert app.screen.query_one("#endpoint", Select).value == "captions"
        assert "item 1 of 3 pending" in text_of(app, "#position")
        details = text_of(app, "#details")
        assert "answer 0" in details and "keywords used" in details and "40.0%" in details
        assert app.screen.query_one("#preview", ImagePreview).image is not None
        await press(app, pilot, "n")
        assert "item 2 of 3" in text_of(app, "#position") and "answer 1" in text_of(app, "#details")
        await press(app, pilot, "p")
        assert "answer 0" in text_of(app, "#details")

        await press(app, pilot, "a")
        assert any(f"Accepted item {ids[0]}" in m for _, m in notes)
        assert "item 1 of 2 pending" in text_of(app, "#position")
        assert "answer 1" in text_of(app, "#details")

        await press(app, pilot, "c")
        field = app.screen.query_one("#correction", Input)
        assert field.has_focus and field.value == "answer 1"
        field.value = "   "
        await press(app, pilot, "enter")
        assert errors(notes) and "Give the right answer" in errors(notes)[-1]
        assert field.has_class("open") and "answer 1" in text_of(app, "#details")
        field.value = "a green shoe"
        await press(app, pilot, "enter")
        assert any(f"Corrected item {ids[1]}" in m for _, m in notes)
        assert not field.has_class("open")

        await press(app, pilot, "d")  # on this screen d dismisses instead of showing deployments
        assert app.current_mode == "review"
        assert "Nothing to review at captions" in text_of(app, "#position")
        await press(app, pilot, "d")  # nothing left here: d is the app's again
        assert app.current_mode == "deployments"

    notes = drive(loop.services, scenario, workspace="ads")
    assert len(errors(notes)) == 1
    statuses = [loop.reviews.get(i) for i in ids]
    assert [s["status"] for s in statuses] == ["accepted", "corrected", "dismissed"]
    assert statuses[1]["correction"] == "a green shoe" and statuses[1]["reviewed_by"] == "tui"


def test_a_text_endpoints_items_show_their_text(loop: Loop) -> None:
    async def scenario(app: ApplianceApp, pilot: Pilot[None], notes: Notes) -> None:
        await press(app, pilot, "9")
        app.screen.query_one("#endpoint", Select).value = "router"
        await press(app, pilot)
        assert "router · item 1 of 1 pending" in text_of(app, "#position")
        details = text_of(app, "#details")
        assert "oak table number 1" in details and "answer furniture" in details
        assert app.screen.query_one("#preview", ImagePreview).image is None
        loop.serve(text_record(2))  # answered meanwhile: a reload counts it, staying on this one
        await press(app, pilot, "r")
        assert "router · item 1 of 2 pending" in text_of(app, "#position")
        assert "oak table number 1" in text_of(app, "#details")
        await press(app, pilot, "a", "a")  # as fast as one can type: each its own item
        assert "Nothing to review at router" in text_of(app, "#position")

    notes = drive(loop.services, scenario, workspace="ads")
    assert errors(notes) == []
    assert loop.reviews.counts("ads", "router")["accepted"] == 2


def test_without_a_workspace_the_screen_says_so(services: Services) -> None:
    async def scenario(app: ApplianceApp, pilot: Pilot[None], notes: Notes) -> None:
        await press(app, pilot, "9")
        assert "No workspace chosen" in text_of(app, "#position")
        services.workspaces.create("empty")
        app.workspace = "empty"
        await press(app, pilot)
        assert "No endpoints in workspace empty" in text_of(app, "#position")

    assert errors(drive(services, scenario)) == []


def test_a_refused_review_shows_its_item_again(loop: Loop) -> None:
    first = loop.reviews.list("ads", "captions", oldest_first=True)[0]["id"]

    async def scenario(app: ApplianceApp, pilot: Pilot[None], notes: Notes) -> None:
        await press(app, pilot, "9")
        loop.reviews.review(first, "dismiss")  # by someone else, meanwhile
        await press(app, pilot, "a")
        assert errors(notes) and "already dismissed" in errors(notes)[-1]
        assert "item 1 of 3 pending" in text_of(app, "#position")
        assert "answer 0" in text_of(app, "#details")
        await press(app, pilot, "r")  # a reload drops it
        assert "item 1 of 2 pending" in text_of(app, "#position")

    drive(loop.services, scenario, workspace="ads")
