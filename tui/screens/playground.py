"""The playground: send one input to a deployed endpoint and see what it says. Choose the endpoint,
give an image file (or `s` for a random photo from the workspace's first dataset), optional
keywords, and press enter or Predict. For a text classifier's endpoint the fields take an ad's
text and optional title instead (`s` takes a random row of a text dataset), and the answer is
its label with the best scores. The prediction goes through the HTTP server like any
client's, so it is captured and monitored; keys 1–5 then rate it as real feedback.

Without a server (`appliance up --no-server`) the screen still shows endpoints and samples but
says that predicting needs the server."""

from __future__ import annotations

import base64
import random
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image
from rich.text import Text
from textual import on, work
from textual.actions import SkipAction
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Footer, Header, Input, Select, Static

from appliance.errors import ApplianceError, InvalidInput, NotFound
from appliance.models.lineage import task_of
from appliance.tasks import DEFAULT_TASK
from tui import figures
from tui.images import ImagePreview
from tui.screens.base import ApplianceScreen

if TYPE_CHECKING:
    from appliance.server.client import ServerClient

NO_SERVER = "Start `appliance up` with its server to predict (this UI runs without one)."
PREVIEW_CELLS = 36
PREVIEW_ROWS = 9
PREVIEW_PIXELS = 192  # shrunk to this in the worker before it is drawn (9 rows of real pixels)
HIGHLIGHTED_WARNINGS = {"low_light"}


@dataclass(frozen=True)
class Loaded:
    """An image read from disk: what is sent, and a small copy to show."""

    path: str
    data: bytes
    preview: Image.Image


@dataclass(frozen=True)
class Endpoints:
    workspace: str | None
    deployments: list[dict[str, Any]]
    tasks: dict[str, str]
    """endpoint → the task of the version it serves."""


@dataclass(frozen=True)
class TextSample:
    text: str
    title: str


TEXT_TASK = "text-classification"
FIELDS = {  # task → (placeholder of the first field, of the second, of the preview)
    TEXT_TASK: ("ad text to classify (or press s)", "title (optional)", "a text endpoint"),
}
IMAGE_FIELDS = ("path to an image (or press s)", "keywords (optional)", "no image yet")


class PlaygroundScreen(ApplianceScreen):
    BINDINGS = [
        Binding("enter", "predict", "Predict"),
        Binding("s", "sample", "Sample"),
        Binding("escape", "leave_field", "Leave field", show=False),
        # Only while a prediction awaits its rating (see check_action); otherwise 1–5 keep
        # their app meaning, switching screens.
        Binding("1", "rate(1)", "Rate", key_display="1–5"),
        *(Binding(str(n), f"rate({n})", f"Rate {n}", show=False) for n in range(2, 6)),
    ]
    DEFAULT_CSS = """
    PlaygroundScreen #play { height: 1fr; }
    PlaygroundScreen #controls { width: 1fr; height: 1fr; padding: 0 1; }
    PlaygroundScreen #output { width: 40; height: 1fr; padding: 0 1; }
    PlaygroundScreen #actions { height: auto; }
    PlaygroundScreen #actions Button { margin-right: 1; }
    PlaygroundScreen #notice { height: auto; color: $warning; padding: 0 1; }
    PlaygroundScreen #preview { height: auto; margin-bottom: 1; color: $text-muted; }
    PlaygroundScreen #result { height: auto; }
    """

    def __init__(self) -> None:
        super().__init__()
        self._answer: dict[str, Any] | None = None  # the last prediction shown
        self._to_rate: str | None = None  # its id while keys 1–5 may rate it
        self._tasks: dict[str, str] = {}  # endpoint → task, as last loaded

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="play"):
            with Vertical(id="controls"):
                yield Select[str]([], prompt="endpoint", id="endpoint")
                yield Input(placeholder="path to an image (or press s)", id="path")
                yield Input(placeholder="keywords (optional)", id="keywords")
                with Horizontal(id="actions"):
                    yield Button("Predict", variant="primary", id="predict")
                    yield Button("Sample", id="sample")
                yield Static("", id="notice")
            with Vertical(id="output"):
                yield ImagePreview(
                    cells=PREVIEW_CELLS, max_rows=PREVIEW_ROWS, placeholder="no image yet",
                    id="preview",
                )  # fmt: skip
                yield Static("", id="result")
        yield Footer()

    def on_mount(self) -> None:
        if self.appliance.server() is None:
            self.query_one("#predict", Button).disabled = True
            self.query_one("#notice", Static).update(NO_SERVER)

    # -- endpoints -------------------------------------------------------------------------------

    def reload(self) -> None:
        self._load(self.workspace)

    @work(thread=True, exclusive=True, group="load", exit_on_error=False)
    def _load(self, workspace: str | None) -> None:
        deployments = self.services.deployments.list(workspace) if workspace else []
        tasks = {}
        for row in deployments:
            try:
                version = self.services.models.get(
                    str(workspace), f"{row['model']}@{row['version']}"
                )
                tasks[str(row["endpoint"])] = task_of(self.services, str(workspace), version)
            except ApplianceError:  # a recipe gone missing: the server says so on predict
                tasks[str(row["endpoint"])] = DEFAULT_TASK
        self.deliver(self._show_endpoints, Endpoints(workspace, deployments, tasks))

    def _show_endpoints(self, loaded: Endpoints) -> None:
        select: Select[str] = self.query_one("#endpoint", Select)
        chosen = select.value
        options = [
            (f"{d['endpoint']} ({d['model']}@v{d['version']})", str(d["endpoint"]))
            for d in loaded.deployments
        ]
        endpoints = [value for _, value in options]
        self._tasks = loaded.tasks
        select.set_options(options)
        if chosen in endpoints:
            select.value = chosen
        elif endpoints:
            select.value = endpoints[0]
        if self.appliance.server() is not None:
            notice = self.query_one("#notice", Static)
            if loaded.workspace is None:
                notice.update("No workspace chosen: press w to pick one.")
            elif not endpoints:
                notice.update(f"No deployments in workspace {loaded.workspace} to predict with.")
            else:
                notice.update("")
        self._apply_task()

    @on(Select.Changed, "#endpoint")
    def _apply_task(self) -> None:
        """The fields say what the chosen endpoint's task takes."""
        task = self._chosen_task()
        first, second, placeholder = FIELDS.get(task, IMAGE_FIELDS)
        self.query_one("#path", Input).placeholder = first
        self.query_one("#keywords", Input).placeholder = second
        preview = self.query_one("#preview", ImagePreview)
        preview.placeholder = placeholder
        if preview.image is None or task in FIELDS:  # a text task shows no picture
            preview.show(None)

    def _chosen_task(self) -> str:
        endpoint = self.query_one("#endpoint", Select).value
        return self._tasks.get(endpoint, DEFAULT_TASK) if isinstance(endpoint, str) else ""

    # -- predicting ------------------------------------------------------------------------------

    @on(Input.Submitted)
    @on(Button.Pressed, "#predict")
    def action_predict(self) -> None:
        server = self.appliance.server()
        if server is None:
            self.notify(NO_SERVER, title="No server", severity="warning")
            return
        endpoint = self.query_one("#endpoint", Select).value
        if not isinstance(endpoint, str):
            self.notify("Choose an endpoint first.", severity="warning")
            return
        path = self.query_one("#path", Input).value.strip()
        text_task = self._chosen_task() == TEXT_TASK
        if not path:
            what = "the ad's text" if text_task else "an image file path"
            self.notify(f"Give {what} (or press s for a sample).", severity="warning")
            return
        keywords = self.query_one("#keywords", Input).value.strip()
        self._awaiting(None)
        self.query_one("#result", Static).update(Text(f"Asking {endpoint}…", style="dim"))
        if text_task:
            self._predict_text(server, endpoint, path, keywords)
        else:
            self._predict(server, endpoint, path, keywords)

    @work(thread=True, exclusive=True, group="predict", exit_on_error=False)
    def _predict_text(self, server: ServerClient, endpoint: str, text: str, title: str) -> None:
        self._ask(server, endpoint, {"text": text, **({"title": title} if title else {})})

    @work(thread=True, exclusive=True, group="predict", exit_on_error=False)
    def _predict(self, server: ServerClient, endpoint: str, path: str, keywords: str) -> None:
        try:
            loaded = read_image(path)
        except InvalidInput:
            self.deliver(self._show_result, None)
            raise
        self.deliver(self._show_image, loaded)
        body = {"image": base64.b64encode(loaded.data).decode()}
        if keywords:
            body["keywords"] = keywords
        self._ask(server, endpoint, body)

    def _ask(self, server: ServerClient, endpoint: str, body: dict[str, str]) -> None:
        """Predict with `body` (on the worker's thread) and show the answer; on an error,
        clear the result and let the worker report it."""
        try:
            answer = server.post_json(f"/v1/endpoints/{urllib.parse.quote(endpoint)}/predict", body)
        except Exception:
            self.deliver(self._show_result, None)
            raise
        self.deliver(self._show_result, answer)

    def _show_image(self, loaded: Loaded) -> None:
        self.query_one("#preview", ImagePreview).show(loaded.preview)

    def _show_result(self, answer: dict[str, Any] | None) -> None:
        result = self.query_one("#result", Static)
        if answer is None:
            result.update("")
            return
        result.update(describe_answer(answer))
        self._answer = answer
        self._awaiting(str(answer["id"]))
        self.set_focus(None)  # so 1–5 rate instead of typing into a field

    # -- samples ---------------------------------------------------------------------------------

    def action_sample(self) -> None:
        if self.workspace is None:
            self.notify("No workspace chosen: press w to pick one.", severity="warning")
            return
        self._sample(self.workspace, self._chosen_task() == TEXT_TASK)

    @on(Button.Pressed, "#sample")
    def _sample_pressed(self) -> None:
        self.action_sample()

    @work(thread=True, exclusive=True, group="sample", exit_on_error=False)
    def _sample(self, workspace: str, text: bool) -> None:
        """A random row of the workspace's first dataset of the kind the endpoint takes."""
        for listed in self.services.datasets.list(workspace):
            version = self.services.datasets.get(workspace, listed["name"])
            rows = self.services.datasets.rows(version)
            if not rows or ("file_name" in rows[0]) == text:
                continue
            row = random.choice(rows)
            if text:
                sample = TextSample(str(row["text"]), str(row.get("title") or ""))
                self.deliver(self._show_text_sample, sample)
            else:
                path = self.services.datasets.materialize(version) / row["file_name"]
                self.deliver(self._show_sample, read_image(str(path)))
            return
        kind = "text" if text else "image"
        raise NotFound(f"no {kind} dataset in workspace '{workspace}' to take a sample from")

    def _show_text_sample(self, sample: TextSample) -> None:
        self.query_one("#path", Input).value = sample.text
        self.query_one("#keywords", Input).value = sample.title
        self._awaiting(None)
        self.query_one("#result", Static).update(Text("Press enter to predict.", style="dim"))

    def _show_sample(self, loaded: Loaded) -> None:
        self.query_one("#path", Input).value = loaded.path
        self._show_image(loaded)
        self._awaiting(None)
        self.query_one("#result", Static).update(Text("Press enter to predict.", style="dim"))

    # -- rating ----------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "rate":
            return self._to_rate is not None
        return True

    def action_rate(self, rating: int) -> None:
        server = self.appliance.server()
        if self._to_rate is None or server is None:
            raise SkipAction()  # nothing to rate: the key keeps its app meaning (a screen)
        prediction = self._to_rate
        self._awaiting(None)
        self._rate(server, prediction, rating)

    def _awaiting(self, prediction: str | None) -> None:
        """Let keys 1–5 rate `prediction` (None: give the keys back to the app)."""
        self._to_rate = prediction
        self.refresh_bindings()

    @work(thread=True, group="rate", exit_on_error=False)
    def _rate(self, server: ServerClient, prediction: str, rating: int) -> None:
        server.post_json(
            f"/v1/predictions/{urllib.parse.quote(prediction)}/feedback", {"rating": rating}
        )
        self.deliver(self._rated, (prediction, rating))

    def _rated(self, rated: tuple[str, int]) -> None:
        prediction, rating = rated
        self.notify(f"Rated {rating}/5: thank you, it is recorded as feedback.")
        if self._answer is not None and self._answer.get("id") == prediction:
            self.query_one("#result", Static).update(describe_answer(self._answer, rating))

    def action_leave_field(self) -> None:
        self.set_focus(None)


def read_image(path: str) -> Loaded:
    """The file's bytes and a small preview; a clear error when it is missing or no image."""
    file = Path(path).expanduser()
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        with Image.open(file) as image:
            image.thumbnail((PREVIEW_PIXELS, PREVIEW_PIXELS))
            preview = image.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError):
        raise InvalidInput(f"{path} is not an image this UI can read") from None
    return Loaded(str(file), data, preview)


def describe_answer(answer: dict[str, Any], rating: int | None = None) -> Text:
    """What the endpoint said: the description, confidence, warnings (low light stands out),
    which model answered, how fast, the prediction id, and how to rate it (or its rating)."""
    text = Text()
    if "label" in answer:  # a classifier: its label and the next best scores
        text.append(str(answer["label"]), "bold")
        best = list((answer.get("scores") or {}).items())[:3]
        text.append("\n" + " · ".join(f"{k} {figures.percent(v)}" for k, v in best), "dim")
    else:
        text.append(str(answer.get("description", "")), "bold")
    text.append(f"\nconfidence {figures.percent(answer.get('confidence'))}")
    warnings = [str(w) for w in answer.get("warnings") or []]
    text.append("\nwarnings ")
    if not warnings:
        text.append("none", "dim")
    for index, warning in enumerate(warnings):
        if index:
            text.append(", ")
        text.append(
            f" {warning} " if warning in HIGHLIGHTED_WARNINGS else warning,
            "bold black on yellow" if warning in HIGHLIGHTED_WARNINGS else "yellow",
        )
    text.append(f"\n{answer.get('model')}@v{answer.get('version')}")
    text.append(f" · {figures.ms(answer.get('latency_ms'))}")
    text.append(f"\nid {answer.get('id')}", "dim")
    if rating is None:
        text.append("\nrate it: press 1 (bad) to 5 (good)", "italic")
    else:
        text.append(f"\nrated {rating}/5", "green")
    return text
