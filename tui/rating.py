"""The platform rating bar: a small bar docked at the bottom of the current screen (never a
modal in the way) where a person presses 1-5 to rate the appliance itself, may type a comment
and presses Enter to send it; Esc closes it. The rating is stored through the core's
`PlatformFeedback` on a thread worker, for the platform report's user happiness."""

from __future__ import annotations

import getpass
from typing import TYPE_CHECKING, ClassVar, cast

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import Input, Label

from appliance.platform.feedback import MAX_COMMENT, PlatformFeedback
from tui.errors import describe

if TYPE_CHECKING:
    from tui.app import ApplianceApp

ASK = "Rate the platform: press 1–5 (5 is great) · esc closes"


class RatingBar(Horizontal, can_focus=True):
    DEFAULT_CSS = """
    RatingBar {
        dock: bottom;
        height: 3;
        background: $boost;
        border-top: solid $primary;
        padding: 0 1;
    }
    RatingBar:focus-within, RatingBar:focus {
        border-top: solid $accent;
    }
    RatingBar #ask {
        width: auto;
        height: 1;
        margin-top: 1;
    }
    RatingBar #comment {
        width: 1fr;
        height: 1;
        border: none;
        margin-top: 1;
        padding: 0 1;
        display: none;
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close the rating", show=False),
        *(Binding(str(n), f"rate({n})", f"Rate {n}", show=False) for n in range(1, 6)),
    ]

    def __init__(self) -> None:
        super().__init__(id="rating-bar")
        self.rating: int | None = None

    def compose(self) -> ComposeResult:
        yield Label(ASK, id="ask")
        yield Input(
            placeholder="a comment (optional) · enter sends",
            max_length=MAX_COMMENT,
            id="comment",
        )

    def action_rate(self, rating: int) -> None:
        self.rating = rating
        self.query_one("#ask", Label).update(f"{'★' * rating}{'☆' * (5 - rating)} ")
        comment = self.query_one("#comment", Input)
        comment.display = True
        comment.focus()

    def action_close(self) -> None:
        self.remove()

    @on(Input.Submitted, "#comment")
    def _send(self, event: Input.Submitted) -> None:
        event.stop()
        if self.rating is not None:
            self._store(self.rating, event.value)

    @work(thread=True, exclusive=True, exit_on_error=False)
    def _store(self, rating: int, comment: str) -> None:
        app = cast("ApplianceApp", self.app)
        try:
            row = PlatformFeedback(app.services.registry).add(
                rating, comment, source="tui", user=_who(), workspace=app.workspace
            )
        except Exception as exc:  # the bar stays, with what was typed, for another try
            self.app.call_from_thread(
                self.app.notify, describe(exc), title="Not sent", severity="error"
            )
            return
        self.app.call_from_thread(self._sent, row)

    def _sent(self, row: dict[str, object]) -> None:
        self.app.notify(f"Thank you: rated the platform {row['rating']} of 5")
        self.remove()


def _who() -> str:
    try:
        return f"tui:{getpass.getuser()}"
    except Exception:  # no login name (a container without a passwd entry)
        return "tui"
