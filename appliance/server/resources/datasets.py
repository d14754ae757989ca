"""Dataset versions over HTTP: list, versions, show, diff, and adding a folder sent as a tar
(or as the `archive` part of a form), validated by the same `Datasets.add` as
`appliance dataset add`."""

from __future__ import annotations

from typing import Any

import anyio
import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery

from appliance.access.roles import Role
from appliance.access.rules import TAR_OR_FORM, allow
from appliance.names import validate_name
from appliance.server.answers import Answer
from appliance.server.resources.uploads import received_folder
from appliance.services import Services


class Dataset(Answer):
    id: str
    name: str
    created_at: str
    versions: int
    latest_version: int | None


class DatasetVersion(Answer):
    """One immutable version: `digest` is its id (the sha256 of its manifest)."""

    digest: str
    dataset_id: str
    name: str
    version: int
    file_count: int
    total_bytes: int
    row_count: int
    columns: dict[str, int]
    """Each key of the rows of metadata.jsonl, with the rows that give it a value."""
    source: str
    parent_digest: str | None
    created_at: str


class AddedVersion(DatasetVersion):
    created: bool
    """False when the content already was this version (answered 200, not 201)."""
    ignored: list[str]
    """Files of the folder that metadata.jsonl does not name (not stored)."""


class Side(Answer):
    name: str
    version: int
    digest: str


class ColumnsChange(Answer):
    added: dict[str, int]
    removed: dict[str, int]
    changed: dict[str, dict[str, int]]


class DatasetDiff(Answer):
    """As `appliance dataset diff --json`."""

    from_: Side = msgspec.field(name="from")
    to: Side
    added: list[str]
    removed: list[str]
    changed: list[str]
    relabelled: list[str]
    rows_changed: list[str]
    labels: dict[str, dict[str, int]]
    schema: ColumnsChange


class DatasetController(Controller):
    path = "/v1/workspaces/{workspace:str}/datasets"
    tags = ["datasets"]

    @get("/", opt=allow(Role.viewer), sync_to_thread=True)
    def list_datasets(
        self, services: NamedDependency[Services], workspace: FromPath[str]
    ) -> list[Dataset]:
        return msgspec.convert(services.datasets.list(workspace), list[Dataset])

    @get("/{name:str}/versions", opt=allow(Role.viewer), sync_to_thread=True)
    def list_versions(
        self, services: NamedDependency[Services], workspace: FromPath[str], name: FromPath[str]
    ) -> list[DatasetVersion]:
        """The versions of one dataset, oldest first, each with its columns."""
        return msgspec.convert(services.datasets.versions(workspace, name), list[DatasetVersion])

    @get("/{ref:str}", opt=allow(Role.viewer), sync_to_thread=True)
    def show_version(
        self, services: NamedDependency[Services], workspace: FromPath[str], ref: FromPath[str]
    ) -> DatasetVersion:
        """One version: `NAME` (the latest), `NAME@3`, `NAME@v3`, `NAME@latest` or
        `NAME@<digest prefix>`."""
        return msgspec.convert(services.datasets.get(workspace, ref), DatasetVersion)

    @get("/{ref:str}/diff", opt=allow(Role.viewer), sync_to_thread=True)
    def diff_versions(
        self,
        services: NamedDependency[Services],
        workspace: FromPath[str],
        ref: FromPath[str],
        against: FromQuery[str],
    ) -> DatasetDiff:
        """What changed from `against` to `ref`: files added, removed, changed, rows
        relabelled, label counts and columns (`appliance dataset diff WS AGAINST REF`)."""
        return msgspec.convert(services.datasets.diff(workspace, against, ref), DatasetDiff)

    @post(
        "/{name:str}",
        opt=allow(Role.developer, content_types=TAR_OR_FORM),
        request_max_body_size=None,  # bounded by upload_max_bytes as it streams (uploads.py)
        status_code=201,
    )
    async def add_version(
        self,
        request: Request[Any, Any, Any],
        services: NamedDependency[Services],
        workspace: FromPath[str],
        name: FromPath[str],
    ) -> Response[AddedVersion]:
        """Add an imagefolder or a text dataset, sent as a tar (`application/x-tar`, or
        gzipped as `application/gzip`) or as the part `archive` of a multipart form. It is
        validated as `appliance dataset add` validates a folder; content that already is a
        version of `name` answers that version with 200."""
        # Fail fast, before the upload: an unknown workspace or a bad name.
        validate_name(name, "dataset name", services.settings.name_max_length)
        await anyio.to_thread.run_sync(services.workspaces.get, workspace)
        async with received_folder(request, services.settings) as got:
            label = f"upload {got.filename}".strip() if got.filename else "upload"
            result = await anyio.to_thread.run_sync(
                lambda: services.datasets.add(workspace, name, got.path, source=label)
            )
        answer = {**result.version, "created": result.created, "ignored": list(result.ignored)}
        status = 201 if result.created else 200
        return Response(msgspec.convert(answer, AddedVersion), status_code=status)
