"""The review API: a workspace's review queue, an item's kept input, a person's review of it
(accept, correct, dismiss) and the export of the reviewed items into a new dataset version.
Writes take a declared JSON body (`application/json`). The queue holds what users sent (their
photos, their texts), so with a token set every review route needs it, reads too."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import anyio
import msgspec
from litestar import Controller, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody

from appliance.access.roles import Role
from appliance.access.rules import allow
from appliance.monitoring.monitor import Monitor
from appliance.review.export import export
from appliance.review.store import Reviews
from appliance.server.answers import Answer
from appliance.services import Services

T = TypeVar("T")


class ReviewRequest(msgspec.Struct, forbid_unknown_fields=True):
    action: str
    """'accept' (the answer was right), 'correct' (with `text`) or 'dismiss' (not worth it)."""
    text: str | None = None
    """The right answer, for 'correct': a description, or one of the model's labels
    (at most 2,000 characters)."""
    reviewer: str = ""
    """Who reviewed it, for the record (optional)."""


class ExportRequest(msgspec.Struct, forbid_unknown_fields=True):
    endpoint: str
    dataset: str | None = None
    """The dataset to add a version to (default: the one the deployed version was trained
    on)."""


class ReviewItem(Answer):
    """An answer queued for a person to review, with where to fetch its input."""

    id: str
    workspace_id: str
    workspace: str
    endpoint: str
    prediction_id: str
    model_version_id: str | None
    reason: str
    """'uncertain' (below the version's threshold), 'unfamiliar' (its input farther from the
    training rows than the version's held-out rows go) or 'low_rating' (rated low soon after)."""
    kind: str
    """'image' or 'text': what the input is."""
    input_text: str | None
    """A text item's input (null for an image, or once let go)."""
    fields: dict[str, str]
    """The input's other fields (a photo's keywords, a text's title)."""
    answer: str | None
    """What the model answered: a description, or a label."""
    answer_field: str
    """'text' or 'label': what a dataset row calls the answer."""
    confidence: float | None
    warnings: list[str]
    status: str
    """'pending', 'accepted', 'corrected' or 'dismissed'."""
    correction: str | None
    reviewed_at: str | None
    reviewed_by: str | None
    exported_to: str | None
    """The dataset version (`NAME@VERSION`) it became a row of."""
    bytes: int
    """What its kept input costs on disk (0 once let go)."""
    created_at: str
    input_url: str | None
    """Where its input is served (a PNG, or the text); null once it is no longer kept."""


class ReviewQueue(Answer):
    workspace: str
    endpoint: str | None
    status: str
    counts: dict[str, int]
    """Items of each status, and how many of the reviewed ones were exported."""
    items: list[ReviewItem]
    """Newest first."""


class ReviewExport(Answer):
    dataset: str
    version: int | None
    """The new dataset version (null when there was nothing to export)."""
    digest: str | None
    exported: list[str]
    """The review items that became rows."""
    skipped: list[str]
    """Reviewed items left out: their input is no longer kept, or there is no answer."""
    message: str


class ReviewQueueController(Controller):
    path = "/v1/workspaces/{workspace:str}/review"
    tags = ["review"]

    @get("/", opt=allow(Role.viewer))
    async def queue(
        self,
        monitor: NamedDependency[Monitor],
        services: NamedDependency[Services],
        workspace: FromPath[str],
        endpoint: FromQuery[str | None] = None,
        status: FromQuery[str] = "pending",
        limit: FromQuery[int] = 50,
    ) -> ReviewQueue:
        """The review queue, newest first: items in `status` (pending, accepted, corrected,
        dismissed or all), at most `limit` (1-1000)."""

        chosen = endpoint or None  # `?endpoint=` is every endpoint

        def read() -> dict[str, Any]:
            monitor.capture.flush()  # an answer just given may still be on its way to the queue
            reviews = Reviews(services)
            rows = reviews.list(workspace, chosen, status, limit)
            return {
                "workspace": workspace, "endpoint": chosen, "status": status,
                "counts": reviews.counts(workspace, chosen), "items": [_item(r) for r in rows],
            }  # fmt: skip

        return msgspec.convert(await anyio.to_thread.run_sync(read), ReviewQueue)

    @post("/export", opt=allow(Role.developer), status_code=200)
    async def export(
        self,
        services: NamedDependency[Services],
        workspace: FromPath[str],
        data: JSONBody[ExportRequest],
    ) -> ReviewExport:
        """Add the endpoint's accepted and corrected items, not yet exported, to a new version
        of the dataset; answers 'nothing to export' (and no version) when none await."""
        found = await anyio.to_thread.run_sync(
            export, services, workspace, data.endpoint, data.dataset
        )
        return msgspec.convert(found, ReviewExport)


class ReviewItemController(Controller):
    path = "/v1/review"
    tags = ["review"]

    @get("/{item_id:str}", opt=allow(Role.viewer, scope=("review_item", "item_id")))
    async def item(self, services: NamedDependency[Services], item_id: FromPath[str]) -> ReviewItem:
        """One review item."""
        row = await _in_thread(Reviews(services).get, item_id)
        return msgspec.convert(_item(row), ReviewItem)

    @get(
        "/{item_id:str}/input",
        media_type="image/png",
        opt=allow(Role.viewer, scope=("review_item", "item_id")),
    )
    async def input(
        self, services: NamedDependency[Services], item_id: FromPath[str]
    ) -> Response[bytes]:
        """The item's kept input: the PNG (re-encoded from the decoded pixels), or the text as
        text/plain. 404 once it is no longer kept (dismissed, exported, trimmed)."""
        body, media = await _in_thread(Reviews(services).input, item_id)
        return Response(body, media_type=media, headers={"Cache-Control": "no-store"})

    @post(
        "/{item_id:str}",
        opt=allow(Role.predictor, scope=("review_item", "item_id")),
        status_code=200,
    )
    async def review(
        self,
        services: NamedDependency[Services],
        item_id: FromPath[str],
        data: JSONBody[ReviewRequest],
    ) -> ReviewItem:
        """Accept, correct (with `text`) or dismiss an item, once: a reviewed one is 409, an
        empty text 400, one over 2,000 characters 413."""
        reviews = Reviews(services)
        row = await _in_thread(
            reviews.review, item_id, data.action, data.text, data.reviewer or "http"
        )
        return msgspec.convert(_item(row), ReviewItem)


async def _in_thread(call: Callable[..., T], *args: Any) -> T:
    return await anyio.to_thread.run_sync(lambda: call(*args))


def _item(row: dict[str, Any]) -> dict[str, Any]:
    """A stored item as answered: where its input is served instead of where it lies."""
    shown = {k: v for k, v in row.items() if k not in ("input_file", "has_input")}
    shown["input_url"] = f"/v1/review/{row['id']}/input" if row["has_input"] else None
    return shown
