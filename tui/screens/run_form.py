"""The modal that starts a training run: a recipe, a dataset (its latest version) and one field
per recipe param, prefilled with its default and explained by its help text. Starting records
the run and launches its child process, then dismisses at once with its `Execution`; the run
trains on its own. A bad value is the service's notification and the form stays open."""

from __future__ import annotations

from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static
from textual.worker import Worker, WorkerState

from appliance.recipes.spec import RecipeSpec
from appliance.runs.launcher import Execution, start_run
from appliance.services import Services
from tui.errors import report_failure

Options = list[tuple[str, str]]  # (label, value)


class RunFormScreen(ModalScreen[Execution | None]):
    """Dismisses with the started run's `Execution`, or None when cancelled."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s", "start", "Start"),
    ]
    CSS = """
    RunFormScreen #dialog {
        width: 76;
    }
    RunFormScreen .field {
        height: 1;
        margin-bottom: 1;
    }
    RunFormScreen .field Label {
        width: 14;
    }
    RunFormScreen .field Select, RunFormScreen .field Input {
        width: 1fr;
    }
    RunFormScreen #params {
        height: auto;
        max-height: 8;
    }
    RunFormScreen #params .field {
        margin-bottom: 0;
    }
    RunFormScreen #params .help {
        color: $text-muted;
        padding-left: 14;
        margin-bottom: 1;
    }
    """

    def __init__(self, services: Services, workspace: str) -> None:
        super().__init__()
        self._services = services
        self._workspace = workspace
        self._spec: RecipeSpec | None = None
        self._inputs: dict[str, Input] = {}

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(f"New run in workspace {self._workspace}", classes="title")
            with Horizontal(classes="field"):
                yield Label("recipe")
                yield Select[str]([], id="recipe", prompt="loading…", compact=True)
            with Horizontal(classes="field"):
                yield Label("dataset")
                yield Select[str]([], id="dataset", prompt="loading…", compact=True)
            with Horizontal(classes="field"):
                yield Label("train on")
                yield Input(
                    placeholder="this machine, or a Ray cluster's HOST:PORT", id="ray-address",
                    compact=True,
                )  # fmt: skip
            with VerticalScroll(id="params"):
                yield Static("Choose a recipe to see its params.", classes="help")
            with Horizontal(classes="buttons"):
                yield Button("Start", variant="primary", id="start", compact=True)
                yield Button("Cancel", id="cancel", compact=True)

    def on_mount(self) -> None:
        self._load_choices()

    @work(thread=True, exclusive=True, group="choices", exit_on_error=False)
    def _load_choices(self) -> None:
        recipes = [(r["name"], r["name"]) for r in self._services.recipes.list(self._workspace)]
        datasets = [
            (ref, ref)
            for d in self._services.datasets.list(self._workspace)
            if d["latest_version"] is not None
            for ref in [f"{d['name']}@{d['latest_version']}"]
        ]
        self.app.call_from_thread(self._show_choices, recipes, datasets)

    def _show_choices(self, recipes: Options, datasets: Options) -> None:
        for selector, options, none in (
            ("#recipe", recipes, "no recipes (add one with `appliance recipe add`)"),
            ("#dataset", datasets, "no datasets (add one with `appliance dataset add`)"),
        ):
            select = self.query_one(selector, Select)
            select.prompt = "choose…" if options else none
            select.set_options(options)
            if options:
                select.value = options[0][1]  # the first, so a default run is one key away

    @on(Select.Changed, "#recipe")
    def _recipe_chosen(self, event: Select.Changed) -> None:
        if isinstance(event.value, str):
            self._load_recipe(event.value)

    @work(thread=True, exclusive=True, group="recipe", exit_on_error=False)
    def _load_recipe(self, name: str) -> None:
        spec = self._services.recipes.get(self._workspace, name)
        # An async display step (it removes and mounts fields): queued on this screen.
        self.app.call_from_thread(self.call_later, self._show_params, spec)

    async def _show_params(self, spec: RecipeSpec) -> None:
        self._spec = spec
        self._inputs = {}
        box = self.query_one("#params", VerticalScroll)
        await box.remove_children()
        widgets: list[Static | Horizontal] = []
        if spec.description:
            widgets.append(Static(spec.description, classes="help"))
        for param in spec.params.values():
            field = Input(value=_text(param.default), id=f"param-{param.name}", compact=True)
            self._inputs[param.name] = field
            widgets.append(
                Horizontal(Label(f"{param.name} ({param.type})"), field, classes="field")
            )
            widgets.append(Static(param.help or " ", classes="help"))
        if not spec.params:
            widgets.append(Static(f"Recipe {spec.name} has no params.", classes="help"))
        await box.mount_all(widgets)

    @on(Input.Submitted)
    @on(Button.Pressed, "#start")
    def action_start(self) -> None:
        spec = self._spec
        dataset = self.query_one("#dataset", Select).value
        if spec is None or not isinstance(dataset, str):
            self.notify("Choose a recipe and a dataset first.", severity="warning")
            return
        start = self.query_one("#start", Button)
        if start.disabled:
            return  # already starting
        start.disabled = True
        # Only the changed fields: the defaults keep their types as the recipe declares them.
        overrides = {
            name: field.value.strip()
            for name, field in self._inputs.items()
            if field.value.strip() != _text(spec.params[name].default)
        }
        self._start(spec.name, dataset, overrides, self.query_one("#ray-address", Input).value)

    @work(thread=True, exclusive=True, group="start", exit_on_error=False)
    def _start(
        self, recipe: str, dataset: str, overrides: dict[str, Any], ray_address: str
    ) -> None:
        address = ray_address.strip()
        execution = start_run(
            self._services, self._workspace, recipe, dataset, overrides,
            executor="ray" if address else "local", ray_address=address or None,
        )  # fmt: skip
        self.app.call_from_thread(self.dismiss, execution)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        report_failure(self, event.worker, event.state)
        if event.worker.group == "start" and event.state is WorkerState.ERROR:
            self.query_one("#start", Button).disabled = False


def _text(value: Any) -> str:
    """A param value as its field shows it (booleans as the words the parser reads)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
