"""The platform screen and the platform rating bar through Textual's pilot at 80×24 over a real
registry: 0 shows adoption, happiness, the coverage matrix and the cost table; ! opens a bar
docked at the bottom of whatever screen is shown (no modal), 1-5 rates, a typed comment and
enter store it with the current workspace, esc closes without storing anything."""

from __future__ import annotations

from textual.pilot import Pilot
from textual.widgets import Input, Label, Static
from tui_pilot import Notes, drive, errors, press

from appliance.platform.feedback import PlatformFeedback
from appliance.services import Services
from tui.app import ApplianceApp
from tui.rating import RatingBar


def text_of(app: ApplianceApp, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


def ratings(services: Services) -> list[dict[str, object]]:
    return services.registry.query(
        "SELECT f.rating, f.comment, f.source, f.user, w.name AS workspace"
        " FROM platform_feedback f LEFT JOIN workspaces w ON w.id = f.workspace_id ORDER BY f.id"
    )


def test_the_platform_screen_shows_the_four_figures(services: Services) -> None:
    services.workspaces.create("ads")
    services.workspaces.create("routing")
    services.runs.create("routing", recipe="colour")
    PlatformFeedback(services.registry).add(5, "the TUI is quick", source="cli", user="cli:ana")

    async def scenario(app: ApplianceApp, pilot: Pilot[None], notes: Notes) -> None:
        await press(app, pilot, "0")
        assert app.current_mode == "platform"
        assert "0 of 2 workspaces" in text_of(app, "#adoption")
        happiness = text_of(app, "#happiness")
        assert "1 rating, mean 5.00 of 5" in happiness and "the TUI is quick" in happiness
        coverage = text_of(app, "#coverage").splitlines()
        assert coverage[1].split() == ["workspace", "data", "runs", "gate", "quant", "monit",
                                       "rated", "retrn", "review"]  # fmt: skip
        assert coverage[2].split() == ["ads", *"········"]
        assert coverage[3].split() == ["routing", "·", "✓", *"······"]
        cost = text_of(app, "#cost")
        assert "per user, 2 users" in cost and "RAPL" in cost
        assert not errors(notes)

    drive(services, scenario, workspace="ads")


def test_the_rating_bar_rates_with_a_comment_and_esc_closes_it(services: Services) -> None:
    services.workspaces.create("ads")

    async def scenario(app: ApplianceApp, pilot: Pilot[None], notes: Notes) -> None:
        await press(app, pilot, "6")  # on the monitoring screen: the bar docks there
        await press(app, pilot, "exclamation_mark")
        bar = app.screen.query_one(RatingBar)
        assert bar.styles.dock == "bottom" and app.screen is not None
        assert app.screen.is_modal is False and app.focused is bar
        assert "press 1–5" in str(bar.query_one("#ask", Label).render())
        await press(app, pilot, "4")
        comment = bar.query_one("#comment", Input)
        assert app.focused is comment and "★★★★☆" in str(bar.query_one("#ask", Label).render())
        await press(app, pilot, *"5 stars", "enter")  # digits type into the comment now
        assert not app.screen.query(RatingBar)
        assert ("information", "Thank you: rated the platform 4 of 5") in notes
        (row,) = ratings(services)
        assert (row["rating"], row["comment"], row["source"]) == (4, "5 stars", "tui")
        assert row["workspace"] == "ads" and str(row["user"]).startswith("tui")

        await press(app, pilot, "exclamation_mark", "2", "escape")
        assert not app.screen.query(RatingBar)
        assert len(ratings(services)) == 1  # esc stored nothing
        assert app.current_mode == "monitoring"
        assert not errors(notes)

    drive(services, scenario, workspace="ads")
