"""The playground through Textual's pilot at 80×24: without a server predicting is refused with
a clear message; with a real server (the tiny colour recipe trained and deployed) an image gets a
description and `4` stores a real rating; a bad path, a file that is no image and a request the
server refuses are error notifications, never a crash."""

from __future__ import annotations

from pathlib import Path

from serving_harness import running_server, wait_ready
from test_tui import Notes, drive, errors, press
from textual.pilot import Pilot
from textual.widgets import Button, Input, Select, Static

from appliance.datasets.synthetic import generate
from appliance.runs.launcher import start_run
from appliance.services import Services
from appliance.serving.options import DeployOptions
from appliance.serving.service import Serving
from tui.app import ApplianceApp
from tui.images import ImagePreview

COLOUR = Path(__file__).parent / "recipes" / "colour"


def photos(services: Services, tmp_path: Path) -> Path:
    services.workspaces.create("ads")
    folder = generate(tmp_path / "p", count=12, seed=1).path
    services.datasets.add("ads", "photos", folder)
    return folder


def text_of(app: ApplianceApp, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


def test_without_a_server_predicting_is_refused_clearly(services: Services, tmp_path: Path) -> None:
    folder = photos(services, tmp_path)

    async def scenario(app: ApplianceApp, pilot: Pilot[None], notes: Notes) -> None:
        await press(app, pilot, "8")
        assert app.current_mode == "playground"
        assert app.screen.query_one("#predict", Button).disabled
        assert "appliance up" in text_of(app, "#notice")
        await press(app, pilot, "s")  # a sample works without the server
        path = app.screen.query_one("#path", Input).value
        assert path.endswith(".png") and Path(path).is_file()
        assert app.screen.query_one("#preview", ImagePreview).image is not None
        await press(app, pilot, "escape", "enter")  # leave the endpoint field, then predict
        assert any("appliance up" in message for _, message in notes)
        await press(app, pilot, "4")  # nothing to rate: 4 still shows the models screen
        assert app.current_mode == "models"

    notes = drive(services, scenario)
    assert errors(notes) == []
    assert folder.is_dir()


def test_predict_shows_the_description_and_4_rates_it(services: Services, tmp_path: Path) -> None:
    folder = photos(services, tmp_path)
    services.recipes.add("ads", COLOUR)
    run = start_run(services, "ads", "colour", "photos", {}).wait()
    assert run["status"] == "succeeded", run["error"]
    Serving(services).deploy("ads", "captions", "colour@1", DeployOptions())
    image = folder / services.datasets.rows(services.datasets.get("ads", "photos"))[0]["file_name"]

    with running_server(services, restore=True) as client:
        wait_ready(client)

        async def scenario(app: ApplianceApp, pilot: Pilot[None], notes: Notes) -> None:
            await press(app, pilot, "8")
            assert not app.screen.query_one("#predict", Button).disabled
            assert app.screen.query_one("#endpoint", Select).value == "captions"
            field = app.screen.query_one("#path", Input)
            field.value = str(tmp_path / "missing.png")
            field.focus()
            await press(app, pilot, "enter")
            assert errors(notes) and "cannot read" in errors(notes)[-1]
            (tmp_path / "notes.png").write_text("not a picture")
            field.value = str(tmp_path / "notes.png")
            await press(app, pilot, "enter")
            assert "is not an image" in errors(notes)[-1]
            field.value = str(image)
            app.screen.query_one("#keywords", Input).value = "x" * 300
            await press(app, pilot, "enter")
            assert "the server refused" in errors(notes)[-1] and "200" in errors(notes)[-1]
            assert len(errors(notes)) == 3
            app.screen.query_one("#keywords", Input).value = ""
            notes.clear()

            await press(app, pilot, "enter")
            result = text_of(app, "#result")
            assert result.splitlines()[0].endswith("product"), result
            assert "colour@v1" in result and "confidence" in result and "ms" in result
            assert app.screen.query_one("#preview", ImagePreview).image is not None

            await press(app, pilot, "4")
            assert app.current_mode == "playground"  # 4 rated instead of switching screens
            assert "rated 4/5" in text_of(app, "#result")
            assert any("Rated 4/5" in message for _, message in notes)

        notes = drive(services, scenario, server_url=str(client.base_url))
    assert errors(notes) == []
    ratings = services.registry.query("SELECT rating FROM feedback")
    assert [row["rating"] for row in ratings] == [4]


def test_a_text_endpoint_takes_an_ads_text_and_answers_its_label(
    services: Services, tmp_path: Path
) -> None:
    from appliance.datasets.ad_text import generate as generate_ads

    photos(services, tmp_path)  # an image dataset first: a text sample must skip it
    services.datasets.add("ads", "texts", generate_ads(tmp_path / "ads", count=400, seed=2).path)
    run = start_run(services, "ads", "text-classifier", "texts", {}).wait()
    assert run["status"] == "succeeded", run["error"]
    Serving(services).deploy("ads", "router", "text-classifier@1", DeployOptions())

    with running_server(services, restore=True) as client:
        wait_ready(client)

        async def scenario(app: ApplianceApp, pilot: Pilot[None], notes: Notes) -> None:
            await press(app, pilot, "8")
            assert app.screen.query_one("#endpoint", Select).value == "router"
            field = app.screen.query_one("#path", Input)
            assert field.placeholder.startswith("ad text to classify")
            assert app.screen.query_one("#keywords", Input).placeholder == "title (optional)"
            await press(app, pilot, "escape", "s")  # a random ad of the text dataset
            assert field.value and not field.value.endswith(".png")
            field.value = "Red striped mug, barely used. Pickup only."
            app.screen.query_one("#keywords", Input).value = "Vintage mug"
            field.focus()
            await press(app, pilot, "enter")
            result = text_of(app, "#result")
            assert result.splitlines()[0] == "mug", result
            assert "mug " in result.splitlines()[1] and "text-classifier@v1" in result
            await press(app, pilot, "5")
            assert "rated 5/5" in text_of(app, "#result")

        notes = drive(services, scenario, server_url=str(client.base_url))
    assert errors(notes) == []
    ratings = services.registry.query("SELECT rating FROM feedback")
    assert [row["rating"] for row in ratings] == [5]
