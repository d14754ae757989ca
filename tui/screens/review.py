"""The review screen: the pending answers of one endpoint (uncertain, unfamiliar or rated low),
one at a time, oldest first: the photo (or the text) it answered, its answer, confidence and
warnings. `a` accepts the answer, `c` opens a field for the right one (enter saves it), `d`
dismisses the item, `n`/`p` go to the next and previous. Reading and reviewing run in thread
workers, through the core's review store (appliance/review/), so the screen never waits on the
disk."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from PIL import Image
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer, Header, Input, Select, Static

from appliance.review.store import MAX_CORRECTION, Reviews
from tui import figures
from tui.images import ImagePreview
from tui.screens.base import ApplianceScreen

PREVIEW_CELLS = 36
REASONS = {
    "uncertain": "uncertain answer",
    "unfamiliar": "unfamiliar input (unlike the training data)",
    "low_rating": "rated low",
}
PREVIEW_ROWS = 12
PREVIEW_PIXELS = 256


@dataclass(frozen=True)
class Queue:
    """What the screen shows: the workspace's endpoints (with their pending counts), the chosen
    one and its pending items, oldest first."""

    workspace: str | None
    endpoints: dict[str, int] = field(default_factory=dict)
    endpoint: str | None = None
    items: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Shown:
    """One item with its photo, shrunk for the terminal (None for a text, or once gone)."""

    item: dict[str, Any]
    preview: Image.Image | None


class ReviewScreen(ApplianceScreen):
    REFRESH_S = 10.0  # new items arrive as the server answers; never while a correction is typed
    BINDINGS = [
        Binding("a", "accept", "Accept"),
        Binding("c", "correct", "Correct"),
        Binding("d", "dismiss_item", "Dismiss"),
        Binding("n", "step(1)", "Next"),
        Binding("p", "step(-1)", "Previous"),
        Binding("escape", "leave_field", "Leave field", show=False),
    ]
    DEFAULT_CSS = """
    ReviewScreen #review { height: 1fr; }
    ReviewScreen #picture { width: 40; height: 1fr; padding: 0 1; }
    ReviewScreen #about { width: 1fr; height: 1fr; padding: 0 1; }
    ReviewScreen #position { height: auto; color: $text-muted; margin-bottom: 1; }
    ReviewScreen #details { height: auto; }
    ReviewScreen #correction { display: none; }
    ReviewScreen #correction.open { display: block; }
    """

    def __init__(self) -> None:
        super().__init__()
        self._queue = Queue(None)
        self._index = 0

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="review"):
            with Vertical(id="picture"):
                yield Select[str]([], prompt="endpoint", id="endpoint")
                yield ImagePreview(
                    cells=PREVIEW_CELLS, max_rows=PREVIEW_ROWS, placeholder="", id="preview"
                )
            with Vertical(id="about"):
                yield Static("Loading the review queue…", id="position")
                yield Static("", id="details")
                yield Input(
                    placeholder="the right answer (enter saves, escape cancels)",
                    max_length=MAX_CORRECTION, id="correction",
                )  # fmt: skip
        yield Footer()

    @property
    def current(self) -> dict[str, Any] | None:
        items = self._queue.items
        return items[self._index] if 0 <= self._index < len(items) else None

    # -- loading ---------------------------------------------------------------------------------

    def reload(self) -> None:
        if self.query_one("#correction", Input).has_class("open"):
            return
        endpoint = self.query_one("#endpoint", Select).value
        self._load(self.workspace, endpoint if isinstance(endpoint, str) else None)

    @work(thread=True, exclusive=True, group="load", exit_on_error=False)
    def _load(self, workspace: str | None, endpoint: str | None) -> None:
        if workspace is None:
            self.deliver(self._show_queue, Queue(None))
            return
        reviews = Reviews(self.services)
        endpoints = reviews.endpoints(workspace)
        if endpoint not in endpoints:  # the first with pending items, else the first
            endpoint = next((e for e, n in endpoints.items() if n), next(iter(endpoints), None))
        items = []
        if endpoint is not None:
            items = reviews.list(workspace, endpoint, "pending", limit=1000, oldest_first=True)
        self.deliver(self._show_queue, Queue(workspace, endpoints, endpoint, items))

    def _show_queue(self, queue: Queue) -> None:
        current = self.current
        self._queue = queue
        select: Select[str] = self.query_one("#endpoint", Select)
        with self.prevent(Select.Changed):
            select.set_options(
                (f"{name} ({pending} pending)", name) for name, pending in queue.endpoints.items()
            )
            if queue.endpoint is not None:
                select.value = queue.endpoint
        # Stay on the item shown when it is still pending (a reload while reviewing).
        ids = [item["id"] for item in queue.items]
        self._index = ids.index(current["id"]) if current and current["id"] in ids else 0
        if current is not None and self.current is not None and current["id"] == ids[self._index]:
            self._show_position()  # the same item: only the count may have changed
        else:
            self._show_current()

    @on(Select.Changed, "#endpoint")
    def _endpoint_chosen(self) -> None:
        self._index = 0
        self.reload()

    def _show_current(self) -> None:
        position = self.query_one("#position", Static)
        item = self.current
        self._close_field()
        self.refresh_bindings()
        if item is None:
            self.query_one("#preview", ImagePreview).show(None)
            self.query_one("#details", Static).update("")
            position.update(_empty(self._queue))
            return
        self._show_position()
        self.query_one("#details", Static).update(describe(item))
        self._read_input(item)

    def _show_position(self) -> None:
        self.query_one("#position", Static).update(
            f"{self._queue.endpoint} · item {self._index + 1} of {len(self._queue.items)} pending"
        )

    @work(thread=True, exclusive=True, group="input", exit_on_error=False)
    def _read_input(self, item: dict[str, Any]) -> None:
        preview = None
        path = Reviews(self.services).input_path(item)
        if item["kind"] == "image" and path is not None:
            try:
                with Image.open(path) as image:
                    image.thumbnail((PREVIEW_PIXELS, PREVIEW_PIXELS))
                    preview = image.convert("RGB")
            except OSError:  # trimmed meanwhile: the details still show
                preview = None
        self.deliver(self._show_input, Shown(item, preview))

    def _show_input(self, shown: Shown) -> None:
        if self.current is not None and self.current["id"] == shown.item["id"]:
            preview = self.query_one("#preview", ImagePreview)
            preview.placeholder = "a text (beside)" if shown.item["kind"] == "text" else ""
            preview.show(shown.preview)

    # -- reviewing -------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("accept", "correct", "dismiss_item", "step"):
            return self.current is not None
        return True

    def action_step(self, by: int) -> None:
        if self._queue.items:
            self._index = (self._index + by) % len(self._queue.items)
            self._show_current()

    def action_accept(self) -> None:
        self._review_current("accept", None)

    def action_dismiss_item(self) -> None:
        self._review_current("dismiss", None)

    def action_correct(self) -> None:
        if (item := self.current) is None:
            return
        field = self.query_one("#correction", Input)
        field.value = str(item.get("answer") or "")
        field.add_class("open")
        field.focus()

    @on(Input.Submitted, "#correction")
    def _correction_given(self, event: Input.Submitted) -> None:
        if not event.value.strip():  # said here, and the field stays open for the answer
            self.notify("Give the right answer, or escape to cancel.", severity="error")
            return
        self._review_current("correct", event.value)

    def action_leave_field(self) -> None:
        self._close_field()

    def _close_field(self) -> None:
        field = self.query_one("#correction", Input)
        if field.has_class("open"):
            field.remove_class("open")
            self.set_focus(None)

    def _review_current(self, action: str, text: str | None) -> None:
        """Go on to the next item at once; the review is stored meanwhile, and a refused one
        comes back (`_refused`)."""
        if (item := self.current) is None:
            return
        index = self._index
        self._set_items([i for i in self._queue.items if i["id"] != item["id"]])
        self._index = min(index, max(0, len(self._queue.items) - 1))
        self._show_current()
        self._review(item, index, action, text)

    @work(thread=True, group="review", exit_on_error=False)
    def _review(self, item: dict[str, Any], index: int, action: str, text: str | None) -> None:
        try:
            done = Reviews(self.services).review(item["id"], action, text, "tui")
        except Exception:
            self.deliver(self._refused, (item, index))
            raise  # the worker's failure is the notification
        self.deliver(self._reviewed, done)

    def _reviewed(self, done: dict[str, Any]) -> None:
        verb = {"accepted": "Accepted", "corrected": "Corrected", "dismissed": "Dismissed"}
        self.notify(f"{verb[done['status']]} item {done['id']}.")

    def _refused(self, back: tuple[dict[str, Any], int]) -> None:
        """Show a refused item again (a label the model lacks; reviewed elsewhere meanwhile
        shows again until the next reload)."""
        item, index = back
        items = list(self._queue.items)
        items.insert(min(index, len(items)), item)
        self._set_items(items)
        self._index = items.index(item)
        self._show_current()

    def _set_items(self, items: list[dict[str, Any]]) -> None:
        endpoints = dict(self._queue.endpoints)
        if self._queue.endpoint in endpoints:
            endpoints[self._queue.endpoint] = len(items)
        self._queue = Queue(self._queue.workspace, endpoints, self._queue.endpoint, items)


def describe(item: dict[str, Any]) -> Text:
    """What the model answered, how sure it was, why the item is here."""
    text = Text()
    if item["kind"] == "text":
        text.append("text ", "dim")
        text.append(f"{item.get('input_text') or ''}\n")
    for name, value in (item.get("fields") or {}).items():
        text.append(f"{name} ", "dim")
        text.append(f"{value}\n")
    text.append("answer ", "dim")
    text.append(f"{item.get('answer')}\n", "bold")
    text.append(f"confidence {figures.percent(item.get('confidence'))}\n")
    warnings = ", ".join(item.get("warnings") or []) or "none"
    text.append(f"warnings {warnings}\n", "yellow" if item.get("warnings") else "dim")
    reason = REASONS.get(item["reason"], item["reason"])
    text.append(f"queued: {reason}\n", "dim")
    text.append(f"prediction {item['prediction_id']}\n", "dim")
    text.append("\na accept · c correct · d dismiss · n/p next/previous", "italic")
    return text


def _empty(queue: Queue) -> str:
    if queue.workspace is None:
        return "No workspace chosen: press w to pick one."
    if queue.endpoint is None:
        return f"No endpoints in workspace {queue.workspace}: nothing to review."
    return f"Nothing to review at {queue.endpoint}: no pending items."
