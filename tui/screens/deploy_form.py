"""The deployment modals: the form that deploys a model version to an endpoint (endpoint, model
as `NAME@VERSION` or `NAME@ALIAS`, quantization, device) and the yes/no question asked before a
rollback. They only collect answers; the deployments screen sends them to the server."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select

from appliance.serving.options import DEVICES, QUANTIZATIONS


@dataclass(frozen=True)
class DeployRequest:
    """What the form asks the server for (the body of POST /v1/deployments, less workspace)."""

    endpoint: str
    model: str
    quantization: str = "none"
    device: str = "auto"

    def body(self, workspace: str) -> dict[str, Any]:
        return {
            "workspace": workspace,
            "endpoint": self.endpoint,
            "model": self.model,
            "quantization": self.quantization,
            "device": self.device,
        }


def model_choices(models: dict[str, list[dict[str, Any]]]) -> list[tuple[str, str]]:
    """(label, ref) for every version, newest first, then every alias, of each model in
    `models` (name → its versions as `Models.versions` lists them)."""
    choices: list[tuple[str, str]] = []
    for name, versions in models.items():
        for version in reversed(versions):
            choices.append((f"{name}@{version['version']}", f"{name}@{version['version']}"))
        for version in versions:
            for alias in version["aliases"]:
                choices.append((f"{name}@{alias} (v{version['version']})", f"{name}@{alias}"))
    return choices


class DeployFormScreen(ModalScreen[DeployRequest | None]):
    """Dismisses with the request to send, or None when cancelled."""

    DEFAULT_CSS = """
    DeployFormScreen #fields {
        grid-size: 2;
        grid-columns: 14 1fr;
        grid-rows: 1;
        grid-gutter: 1 0;
        height: auto;
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, choices: list[tuple[str, str]], request: DeployRequest) -> None:
        """`choices`: (label, ref) pairs for the model; `request` prefills the fields."""
        super().__init__()
        self._title = title
        self._choices = choices
        self._request = request

    def compose(self) -> ComposeResult:
        request = self._request
        refs = [ref for _, ref in self._choices]
        model = request.model if request.model in refs else refs[0]
        with Vertical(id="dialog"):
            yield Label(self._title, classes="title")
            with Grid(id="fields"):
                yield Label("endpoint")
                yield Input(
                    request.endpoint, placeholder="e.g. captions", id="endpoint", compact=True
                )
                yield Label("model")
                yield Select(
                    self._choices, value=model, allow_blank=False, id="model", compact=True
                )
                yield Label("quantization")
                yield Select(
                    [(q, q) for q in QUANTIZATIONS],
                    value=request.quantization,
                    allow_blank=False,
                    id="quantization",
                    compact=True,
                )
                yield Label("device")
                yield Select(
                    [(d, d) for d in DEVICES],
                    value=request.device,
                    allow_blank=False,
                    id="device",
                    compact=True,
                )
            yield Label("The new version warms up before traffic moves to it.", classes="hint")
            with Horizontal(classes="buttons"):
                yield Button("Deploy", variant="primary", id="deploy")
                yield Button("Cancel", id="cancel")

    def request(self) -> DeployRequest:
        """The request as the fields now read."""
        return DeployRequest(
            self.query_one("#endpoint", Input).value.strip(),
            str(self.query_one("#model", Select).value),
            str(self.query_one("#quantization", Select).value),
            str(self.query_one("#device", Select).value),
        )

    @on(Input.Submitted, "#endpoint")
    @on(Button.Pressed, "#deploy")
    def submit(self) -> None:
        request = self.request()
        if not request.endpoint:
            self.notify("Name the endpoint to deploy to.", severity="warning")
            return
        self.dismiss(request)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
