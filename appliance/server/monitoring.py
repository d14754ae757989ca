"""The monitoring API: per-workspace summaries, quality by slice, drift, alerts, feedback and
DORA figures, and Prometheus `/metrics` (a prediction and its feedback: predictions.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import anyio
import msgspec
from litestar import Controller, Response, get
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery

from appliance.access.roles import Role
from appliance.access.rules import allow
from appliance.monitoring import alerts, report
from appliance.monitoring.drift import FeatureDrift
from appliance.monitoring.monitor import Monitor
from appliance.monitoring.predictions import parse_window
from appliance.server.answers import Answer
from appliance.server.predictions import RatedPrediction, settled
from appliance.services import Services

T = TypeVar("T")


class Percentiles(Answer):
    p50: float | None
    p95: float | None
    p99: float | None


class Trend(Answer):
    """Per time bucket of the window (oldest first); null where a bucket has no data."""

    count: list[float]
    p95_latency_ms: list[float | None]
    confidence: list[float | None]
    low_light_rate: list[float | None]
    rating: list[float | None]
    uncertain_rate: list[float | None]
    estimated_quality: list[float | None]
    """The mean calibrated confidence of the bucket's answers (see EstimatedQuality)."""


class EstimatedQuality(Answer):
    """Live quality without labels: the expected share of right answers, from the calibrated
    confidences of the window's answers (of versions with a calibration)."""

    value: float
    """The mean calibrated confidence: the expected exact match (or accuracy)."""
    low: float
    high: float
    """A 95% interval for the window's realised share right, if the calibration holds."""
    predictions: int
    """The answered predictions of calibrated versions it is computed from."""
    reference: float | None
    """The deployed version's held-out score, measured at evaluation."""
    metric: str | None
    """What both are: the task's gate metric ('exact_match', 'accuracy')."""
    feedback: float | None
    """The share of the window's rated predictions rated 4 or 5 (null without ratings)."""
    rated: int


class KeywordAdherence(Answer):
    """Seller keywords on the window's traffic. Live answers have no reference description, so
    a keyword counts as honoured when the description has it as whole words."""

    requests: int
    """Answered predictions whose request gave keywords."""
    given: int
    """The keywords those requests gave, each counted once per request."""
    honoured: int
    """Of them, those the description has."""
    adherence: float | None
    """honoured / given; null when no request gave keywords."""
    ignored_feedback: int
    """Feedback rows on the window's predictions that named ignored keywords."""


class EndpointSummary(Answer):
    endpoint: str
    predictions: int
    errors: int
    error_rate: float | None
    throughput_per_s: float | None
    latency_ms: Percentiles
    queue_ms_p50: float | None
    inference_ms_p50: float | None
    mean_batch_size: float | None
    mean_confidence: float | None
    low_light_rate: float | None
    uncertain_rate: float | None
    """The share of answered predictions that warned 'uncertain'."""
    ratings: int
    mean_rating: float | None
    estimated_quality: EstimatedQuality | None
    """Null when no prediction of the window came from a version with a calibration."""
    keywords: KeywordAdherence
    versions: list[str]
    """The model version ids that answered in the window."""
    trend: Trend


class Summary(Answer):
    workspace: str
    window_s: int
    endpoints: list[EndpointSummary]


class EmbeddingTest(Answer):
    """The model's embeddings of recent inputs against those of its training rows: a kernel MMD
    two-sample test with a permutation p-value."""

    method: str
    """'mmd'."""
    statistic: float
    """The MMD² estimate (about 0 when both sides are alike)."""
    p_value: float
    reference: int
    live: int
    """The embeddings compared on each side."""
    drifted: bool
    """p_value below the embedding_drift_alpha setting."""


class Drift(Answer):
    workspace: str
    endpoint: str
    model: str
    version: int
    reference: str | None
    """The dataset version the served version was trained on (`NAME@VERSION`), if known."""
    window_s: int
    predictions: int
    min_samples: int
    """The live values a feature needs before it can count as drifted."""
    features: list[FeatureDrift]
    drifted: list[str]
    new_answer_words: list[str]
    """Words of recent descriptions that the training descriptions never had (at most 20;
    empty for a task that answers labels). Not the `new_words` feature of the inputs."""
    embedding: EmbeddingTest | None
    """Null when the version has no reference embeddings or too few recent ones were captured."""
    trend: Trend


class SliceQuality(Answer):
    """The label-free estimate over a slice's answers of calibrated versions."""

    value: float
    """The mean calibrated confidence: the expected share of right answers."""
    low: float
    high: float
    """A 95% interval for the realised share, if the calibration holds."""
    predictions: int
    """The slice's answers of calibrated versions the estimate is computed from."""


class SliceFigures(Answer):
    """Quality figures of a set of answered predictions."""

    predictions: int
    estimated_quality: SliceQuality | None
    """Null when none of them came from a version with a calibration."""
    uncertain_rate: float | None
    """The share that warned 'uncertain'."""
    ratings: int
    """How many of them were rated (a prediction rated twice counts once, by its mean)."""
    mean_rating: float | None
    rated_low: float | None
    """The share of the rated ones rated 2 or lower."""
    reviewed: int
    """How many of them a person accepted or corrected in the review queue."""
    corrected_rate: float | None
    """The share of the reviewed ones a person corrected."""


class QualitySlice(SliceFigures):
    """One slice: the answered predictions that share a value of a dimension."""

    slice: str
    """'dimension=value', e.g. 'word=mug', 'lighting=dark', 'label=cars', 'keywords=shoe'."""
    dimension: str
    """'lighting', 'word', 'label', or the field sliced by (a feature is cut in quartiles)."""
    value: str
    vs_all: float | None
    """Its estimated quality minus the whole window's (negative: worse than all)."""
    rated_low_vs_all: float | None
    """Its share rated low minus the whole window's (positive: worse than all)."""
    corrected_rate_vs_all: float | None
    """Its share corrected in review minus the whole window's (positive: worse than all)."""


class Slices(Answer):
    """Quality by slice over the window: the worst slices first."""

    workspace: str
    endpoint: str | None
    window_s: int
    by: str | None
    """The field sliced by; null for the default (lighting and the answer's words or label)."""
    min_rows: int
    """The predictions a slice needs to be listed."""
    metric: str | None
    """What the estimates are (the endpoint's gate metric); null without an endpoint."""
    reference: float | None
    """The deployed version's held-out score."""
    overall: SliceFigures
    """The whole window, to compare each slice with."""
    slices: list[QualitySlice]
    """Worst first: by estimated quality, then (without an estimate) by the share rated low."""
    counted: int
    """The slices of at least min_rows predictions (slices lists at most `top` of them)."""
    left_out: int
    """Slices of fewer than min_rows predictions, not listed."""


class AlertState(Answer):
    endpoint: str
    rule: str
    state: str
    """'firing' or 'ok'."""
    value: float | None
    threshold: float
    since: str
    updated_at: str


class Event(Answer):
    id: int
    workspace_id: str
    kind: str
    subject: str
    model_version_id: str | None
    deployment_id: str | None
    detail: dict[str, Any]
    created_at: str
    actor: str
    """Who made the change: a user of the server, `admin` (its token) or `local` (the box)."""


class Alerts(Answer):
    rules: list[AlertState]
    events: list[Event]
    """Alert events (alert_firing, alert_resolved), newest first."""


class FeedbackSummary(Answer):
    count: int
    mean_rating: float | None
    histogram: dict[str, int]
    """How many ratings of each value, "1" to "5"."""
    thumbs_up: int
    thumbs_down: int
    keywords_ignored: int
    """Feedback that named a keyword the answer left out."""


class FeedbackReport(Answer):
    summary: FeedbackSummary
    recent: list[RatedPrediction]
    """The latest feedback, newest first."""


class DoraAuthor(Answer):
    """What one actor did in the period."""

    deployments: int
    """Deploys and rollbacks, as `deployments` counts them."""
    promotions: int
    """Promotions through the gate (forced ones too)."""
    approvals: int
    """Deploys approved for a job that waited for a person."""


class DoraChange(Answer):
    """A deploy, rollback, promotion or approval in the period, and who made it."""

    at: str
    kind: str
    """'deployed', 'rolled_back', 'promoted' or 'deploy_approved'."""
    subject: str
    """The endpoint of a deploy, rollback or approval; MODEL@ALIAS of a promotion."""
    version: str | None
    """MODEL@N, where the event names it."""
    actor: str
    """A user of the server, `admin` (its token) or `local` (the box)."""


class DoraFigures(Answer):
    """DORA metrics over the period (`appliance/monitoring/dora.py`)."""

    since: str
    until: str
    deployments: int
    deployment_frequency_per_day: float
    lead_time_hours: float | None
    change_failure_rate: float | None
    time_to_restore_hours: float | None
    failures: int
    level: str
    """'elite', 'high', 'medium' or 'low', by deployment frequency."""
    authors: dict[str, DoraAuthor]
    """Per actor, what they deployed, promoted and approved in the period."""
    changes: list[DoraChange]
    """The period's deploys, rollbacks, promotions and approvals, newest first."""


class Dora(DoraFigures):
    """A workspace's DORA metrics over the period."""

    workspace: str


class MonitoringController(Controller):
    path = "/v1/workspaces/{workspace:str}/monitoring"
    tags = ["monitoring"]

    @get("/summary", opt=allow(Role.viewer))
    async def summary(
        self,
        monitor: NamedDependency[Monitor],
        services: NamedDependency[Services],
        workspace: FromPath[str],
        endpoint: FromQuery[str | None] = None,
        window: FromQuery[str] = "1h",
    ) -> Summary:
        """Per endpoint: predictions, errors, latency percentiles, confidence, warnings,
        ratings, the label-free quality estimate, keyword adherence, and their trends over the
        window (e.g. 15m, 1h, 7d)."""
        seconds = parse_window(window)
        found = await settled(monitor, report.summary, services, workspace, endpoint, seconds)
        return msgspec.convert(found, Summary)

    @get("/drift", opt=allow(Role.viewer))
    async def drift(
        self,
        monitor: NamedDependency[Monitor],
        services: NamedDependency[Services],
        workspace: FromPath[str],
        endpoint: FromQuery[str],
        window: FromQuery[str] = "1h",
    ) -> Drift:
        """PSI and KS per input feature of the endpoint's recent traffic against the training
        data of the version it serves, and a two-sample test of the model's embeddings."""
        seconds = parse_window(window)
        found = await settled(monitor, report.drift, services, workspace, endpoint, seconds)
        return msgspec.convert(found, Drift)

    @get("/slices", opt=allow(Role.viewer))
    async def slices(
        self,
        monitor: NamedDependency[Monitor],
        services: NamedDependency[Services],
        workspace: FromPath[str],
        endpoint: FromQuery[str | None] = None,
        window: FromQuery[str] = "1h",
        by: FromQuery[str | None] = None,
        min_rows: FromQuery[int] = 10,
        top: FromQuery[int] = 20,
    ) -> Slices:
        """Quality by slice, worst first: per lighting and word of the answer (or label), or
        per value of the field `by` names (keywords, version, a feature in quartiles), the
        estimated quality, uncertain rate and ratings against the whole window."""
        seconds = parse_window(window)
        found = await settled(
            monitor, report.slices, services, workspace, endpoint, seconds, by, min_rows,
            100_000, top,
        )  # fmt: skip
        return msgspec.convert(found, Slices)

    @get("/alerts", opt=allow(Role.viewer))
    async def alerts(self, services: NamedDependency[Services], workspace: FromPath[str]) -> Alerts:
        """Each rule's state per endpoint, and the recent alert events."""

        def read() -> dict[str, Any]:
            return {
                "rules": alerts.current(services, workspace),
                "events": alerts.history(services, workspace),
            }

        return msgspec.convert(await anyio.to_thread.run_sync(read), Alerts)

    @get("/feedback", opt=allow(Role.viewer))
    async def feedback(
        self,
        services: NamedDependency[Services],
        workspace: FromPath[str],
        endpoint: FromQuery[str | None] = None,
    ) -> FeedbackReport:
        """The latest feedback and its summary."""

        def read() -> dict[str, Any]:
            return {
                "summary": services.predictions.feedback_summary(workspace, endpoint),
                "recent": services.predictions.feedback(workspace, endpoint),
            }

        return msgspec.convert(await anyio.to_thread.run_sync(read), FeedbackReport)

    @get("/dora", opt=allow(Role.viewer))
    async def dora(
        self,
        services: NamedDependency[Services],
        workspace: FromPath[str],
        since: FromQuery[str] = "30d",
    ) -> Dora:
        """Deployment frequency, lead time for changes, change failure rate and time to
        restore over the period (e.g. 7d, 30d), and who deployed, promoted and approved what."""
        start = datetime.now(UTC) - timedelta(seconds=parse_window(since))
        found = await anyio.to_thread.run_sync(report.dora, services, workspace, start)
        return msgspec.convert(found, Dora)


@get(
    "/metrics",
    tags=["monitoring"],
    media_type="text/plain; version=0.0.4; charset=utf-8",
    opt=allow(Role.viewer, every_workspace=True),
)
async def metrics(monitor: NamedDependency[Monitor]) -> Response[bytes]:
    """Prometheus metrics in the text exposition format."""
    body = await anyio.to_thread.run_sync(monitor.metrics.render)
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")
