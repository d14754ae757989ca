"""Model versions over HTTP: list, versions, show, the version's folder as a tar (so a client
elsewhere can load it), registering a folder sent as a tar (through the same intake as
`appliance model register` and `ActiveRun.register_model`: loaded and asked one input first),
aliases, and promotion through the evaluation gate as `appliance model promote`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import msgspec
from litestar import Controller, Request, delete, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from litestar.response import Stream

from appliance.access.roles import Role
from appliance.access.rules import allow
from appliance.errors import InvalidInput, NotFound
from appliance.models.intake import register_folder
from appliance.models.promotion import GateResult, promote
from appliance.names import validate_name
from appliance.server.answers import Answer
from appliance.server.resources.archives import tar_blocks
from appliance.server.resources.uploads import FORM, received_folder
from appliance.services import Services

FORM_TEXTS = ("run_id", "task", "recipe", "metrics", "description")


class Model(Answer):
    id: str
    name: str
    created_at: str
    versions: int
    latest_version: int | None


class ModelVersion(Answer):
    """One immutable version (`appliance/models/service.py`): how it is served (`runtime`,
    `task`, `recipe`), what it is (`info`), its metrics, aliases and lineage."""

    id: str
    model_id: str
    name: str
    workspace: str
    version: int
    aliases: list[str]
    path: str
    """Its folder, relative to the server's home (`…/files` sends it)."""
    digest: str
    size: int
    metrics: dict[str, float]
    run_id: str | None
    dataset_id: str | None
    dataset_digest: str | None
    parent_version_id: str | None
    description: str
    recipe: str | None
    runtime: str | None
    task: str | None
    info: dict[str, Any]
    created_at: str


class RegisteredVersion(ModelVersion):
    notes: list[str]
    """What the folder check noticed and let through."""


class AliasRequest(msgspec.Struct, forbid_unknown_fields=True):
    version: int | str
    """The version number (3 or 'v3'), or another alias whose version to point at."""


class PromoteRequest(msgspec.Struct, forbid_unknown_fields=True):
    version: int | str
    alias: str = "production"
    force: bool = False
    """Promote even when the gate finds it worse."""
    dataset: str | None = None
    """NAME@VERSION to evaluate on (default: the candidate's own)."""
    recipe: str | None = None
    """The recipe that evaluates it (default: its run's)."""


class AlsoMeasured(Answer):
    metric: str
    candidate: float
    current: float | None


class Promotion(Answer):
    """What the gate measured; `summary` says it in a line, as the CLI prints it."""

    candidate: ModelVersion
    """The version promoted, with its aliases now."""
    current: ModelVersion | None
    """The version that held the alias before (null: none, or the candidate itself)."""
    metric: str
    candidate_value: float | None
    current_value: float | None
    dataset: str
    rows: int
    forced: bool
    also: list[AlsoMeasured]
    summary: str


def _version(row: dict[str, Any]) -> ModelVersion:
    return msgspec.convert({k: v for k, v in row.items() if k != "notes"}, ModelVersion)


def _promotion(result: GateResult, candidate: dict[str, Any]) -> Promotion:
    return Promotion(
        candidate=_version(candidate),
        current=_version(result.current) if result.current is not None else None,
        metric=result.metric,
        candidate_value=result.candidate_value,
        current_value=result.current_value,
        dataset=result.dataset,
        rows=result.rows,
        forced=result.forced,
        also=[AlsoMeasured(metric=m, candidate=c, current=p) for m, c, p in result.also],
        summary=result.summary(),
    )


def _register(
    services: Services, workspace: str, name: str, folder: Path, fields: dict[str, str]
) -> dict[str, Any]:
    """As `ActiveRun.register_model` with a `run_id` (its lineage, its recipe when the
    workspace knows it, its latest metrics unless some are sent), else as `model register`."""
    metrics = _metrics(fields["metrics"]) if fields.get("metrics") else None
    recipe, task = fields.get("recipe") or None, fields.get("task") or None
    record: dict[str, Any] = {"description": fields.get("description", "")}
    if fields.get("run_id"):
        run_id = fields["run_id"]
        try:
            run = services.runs.get(run_id)
        except NotFound:
            run = None
        if run is None or run["workspace_id"] != services.workspaces.get(workspace)["id"]:
            raise NotFound(f"no run '{run_id}' in workspace '{workspace}'")
        known = {r["name"] for r in services.recipes.list(workspace)}
        recipe = recipe or (run["recipe"] if run["recipe"] in known else None)
        metrics = metrics if metrics is not None else services.runs.latest_metrics(run_id)
        record.update(
            run_id=run_id, dataset_id=run["dataset_id"], dataset_digest=run["dataset_digest"],
            parent_version_id=run["parent_model_version_id"],
        )  # fmt: skip
    return register_folder(
        services, workspace, name, folder, recipe=recipe, task=task, metrics=metrics or {},
        **record,
    )  # fmt: skip


def _metrics(text: str) -> dict[str, float]:
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    numbers = isinstance(value, dict) and all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in value.values()
    )
    if not isinstance(value, dict) or not numbers:
        raise InvalidInput('the part metrics must be a JSON object of numbers: {"accuracy": 0.9}')
    return {str(k): float(v) for k, v in value.items()}


class ModelController(Controller):
    path = "/v1/workspaces/{workspace:str}/models"
    tags = ["models"]

    @get("/", opt=allow(Role.viewer), sync_to_thread=True)
    def list_models(
        self, services: NamedDependency[Services], workspace: FromPath[str]
    ) -> list[Model]:
        return msgspec.convert(services.models.list(workspace), list[Model])

    @get("/{name:str}/versions", opt=allow(Role.viewer), sync_to_thread=True)
    def list_versions(
        self, services: NamedDependency[Services], workspace: FromPath[str], name: FromPath[str]
    ) -> list[ModelVersion]:
        """The versions of one model, oldest first, with their aliases."""
        return [_version(r) for r in services.models.versions(workspace, name)]

    @get("/{ref:str}", opt=allow(Role.viewer), sync_to_thread=True)
    def show_version(
        self, services: NamedDependency[Services], workspace: FromPath[str], ref: FromPath[str]
    ) -> ModelVersion:
        """One version: `NAME` (the latest), `NAME@3`, `NAME@v3` or `NAME@ALIAS`."""
        return _version(services.models.get(workspace, ref))

    @get(
        "/{ref:str}/files",
        opt=allow(Role.viewer),
        media_type="application/x-tar",
        sync_to_thread=True,
    )
    def download(
        self, services: NamedDependency[Services], workspace: FromPath[str], ref: FromPath[str]
    ) -> Stream:
        """The version's folder as an uncompressed tar, streamed (names relative to the
        folder): unpack it and load it as any Hugging Face folder."""
        version = services.models.get(workspace, ref)
        folder = services.models.folder(version)
        if not folder.is_dir():
            raise NotFound(f"the folder of {version['name']}@{version['version']} is missing")
        filename = f"{version['name']}-{version['version']}.tar"
        return Stream(
            tar_blocks(folder),
            media_type="application/x-tar",
            headers={"content-disposition": f'attachment; filename="{filename}"'},
        )

    @post(
        "/{name:str}/versions",
        opt=allow(Role.developer, content_types=(FORM,)),
        request_max_body_size=None,  # bounded by upload_max_bytes as it streams (uploads.py)
        status_code=201,
    )
    async def register(
        self,
        request: Request[Any, Any, Any],
        services: NamedDependency[Services],
        workspace: FromPath[str],
        name: FromPath[str],
    ) -> RegisteredVersion:
        """Register a model folder sent as the form's part `archive` (a tar), with the
        optional text parts `run_id`, `task`, `recipe`, `metrics` (a JSON object) and
        `description`. It is loaded and asked one input of its task in a child process first:
        a folder that cannot serve is 400 with the reason."""
        validate_name(name, "model name", services.settings.name_max_length)
        await anyio.to_thread.run_sync(services.workspaces.get, workspace)
        async with received_folder(request, services.settings, FORM_TEXTS) as got:
            row = await anyio.to_thread.run_sync(
                _register, services, workspace, name, got.path, got.fields
            )
        return msgspec.convert(row, RegisteredVersion)

    @put("/{name:str}/aliases/{alias:str}", opt=allow(Role.developer), sync_to_thread=True)
    def set_alias(
        self,
        services: NamedDependency[Services],
        workspace: FromPath[str],
        name: FromPath[str],
        alias: FromPath[str],
        data: JSONBody[AliasRequest],
    ) -> ModelVersion:
        """Point `alias` at a version without the gate (`appliance model alias set`); answers
        the version."""
        return _version(services.models.set_alias(workspace, f"{name}@{data.version}", alias))

    @delete(
        "/{name:str}/aliases/{alias:str}",
        opt=allow(Role.developer),
        status_code=204,
        sync_to_thread=True,
    )
    def unset_alias(
        self,
        services: NamedDependency[Services],
        workspace: FromPath[str],
        name: FromPath[str],
        alias: FromPath[str],
    ) -> None:
        services.models.unset_alias(workspace, name, alias)

    @post("/{name:str}/promote", opt=allow(Role.developer), status_code=200, sync_to_thread=True)
    def promote_version(
        self,
        services: NamedDependency[Services],
        workspace: FromPath[str],
        name: FromPath[str],
        data: JSONBody[PromoteRequest],
    ) -> Promotion:
        """Move `alias` to `version` after the evaluation gate: the candidate and the version
        holding the alias are evaluated on the same held-out rows; a worse candidate is 409
        unless `force`."""
        result = promote(
            services, workspace, f"{name}@{data.version}", data.alias,
            force=data.force, dataset=data.dataset, recipe=data.recipe,
        )  # fmt: skip
        version = result.candidate["version"]
        return _promotion(result, services.models.get(workspace, f"{name}@{version}"))
