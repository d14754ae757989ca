"""Serving as one service: deploy, roll back and restore endpoints (records + live pool), and
answer predictions with their id, latency split and warnings."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from appliance.errors import ApplianceError, Conflict, NotFound
from appliance.models.lineage import task_of
from appliance.names import validate_name
from appliance.registry import utcnow
from appliance.services import Services
from appliance.serving.batcher import BatchTiming
from appliance.serving.instances.host import InstanceHost
from appliance.serving.observer import CaptureRecord, Observer, Unobserved
from appliance.serving.options import DeployOptions
from appliance.serving.pool import LiveModel, ModelLoading, ModelPool
from appliance.serving.residency import InsufficientMemory, Residency
from appliance.serving.runtime import ModelRuntime
from appliance.tasks import PredictInput, Prediction, Task
from appliance.tasks.contract import reasons

T = TypeVar("T")


@dataclass
class PredictionResult:
    id: str
    endpoint: str
    model: str
    version: int
    output: dict[str, Any]
    """The task's answer fields (e.g. `description`), first in the predict answer."""
    confidence: float
    warnings: list[str]
    reasons: dict[str, str]
    """What each warning tells the person behind the request."""
    latency_ms: float
    queue_ms: float
    inference_ms: float
    batch_size: int
    features: dict[str, float] = field(default_factory=dict)
    cold_start_ms: float | None = None
    """How long this request waited for its endpoint's model to load (None: it was loaded)."""


class Serving:
    def __init__(self, services: Services, observer: Observer | None = None):
        self.services = services
        self.observer = observer or Unobserved()
        self.pool = ModelPool(
            self._make_runtime, _warmup, services.settings.torch_threads, InstanceHost(services)
        )
        self.residency = Residency(services, self.pool)
        self.restoring = False
        # Request bodies become model inputs here, off the loop. A plain executor rather than
        # anyio's to_thread: this runs for every request, and anyio's capacity limiter and
        # cancel scope cost the loop more than the hand-over itself.
        self._decoders = ThreadPoolExecutor(
            max_workers=max(2, os.cpu_count() or 1), thread_name_prefix="decode"
        )

    async def off_loop(self, work: Callable[..., T], *args: Any) -> T:
        """`work(*args)` on a decode thread (decoding inputs and their features)."""
        return await asyncio.get_running_loop().run_in_executor(self._decoders, work, *args)

    # -- deployments -------------------------------------------------------------------------

    def deploy(
        self, workspace: str, endpoint: str, model_ref: str, options: DeployOptions,
        kind: str = "deployed",
    ) -> dict[str, Any]:  # fmt: skip
        """Blocking: load and warm `model_ref`, switch `endpoint` to it, record the event."""
        # Before loading: the pool would otherwise serve a name the registry then refuses.
        validate_name(endpoint, "endpoint name", self.services.settings.name_max_length)
        version = self.services.models.get(workspace, model_ref)
        self._check_endpoint_free(workspace, endpoint)
        self._check_same_task(workspace, endpoint, version, kind)
        try:
            with self.residency.admit(workspace, endpoint, version, options) as admitted:
                live = self.pool.deploy(workspace, endpoint, version, options)
        except ApplianceError as exc:
            self.services.deployments.record_failure(workspace, endpoint, version, str(exc))
            raise
        except Exception as exc:
            message = f"loading {version['name']}@{version['version']} failed: {exc}"
            self.services.deployments.record_failure(workspace, endpoint, version, message)
            raise ApplianceError(message) from exc
        return self.services.deployments.record(
            workspace, endpoint, version, options, kind, live.instance.torch_threads,
            resident_mb=admitted.measured_mb,
        )  # fmt: skip

    def rollback(self, workspace: str, endpoint: str) -> dict[str, Any]:
        deployment = self.services.deployments.get(workspace, endpoint)
        previous_id = self.services.deployments.previous_version_id(workspace, endpoint)
        found = self.services.registry.query(
            "SELECT m.name, v.version FROM model_versions v JOIN models m ON m.id = v.model_id"
            " WHERE v.id = ?",
            (previous_id,),
        )
        if not found:
            raise NotFound(
                f"the version '{endpoint}' served before was deleted; deploy the one you want "
                "there by name (appliance deploy WORKSPACE ENDPOINT NAME@VERSION)"
            )
        previous = found[0]
        options = _options_of(deployment)
        ref = f"{previous['name']}@{previous['version']}"
        return self.deploy(workspace, endpoint, ref, options, kind="rolled_back")

    def restore(self) -> list[str]:
        """Load every recorded deployment (at server start); returns the errors, if any."""
        errors = []
        self.restoring = True
        try:
            for row in self.services.deployments.list():
                if error := self._restore_one(row):
                    errors.append(error)
        finally:
            self.restoring = False
        return errors

    def _restore_one(self, row: dict[str, Any]) -> str | None:
        ref = f"{row['model']}@{row['version']}"
        key, options = (row["workspace"], row["endpoint"]), _options_of(row)
        try:
            version = self.services.models.get(row["workspace"], ref)
            with self.residency.admit(*key, version, options, evict=False):
                self.pool.deploy(*key, version, options)
        except InsufficientMemory:  # loaded on its first request, making room then
            self.residency.mark_cold(key, version, options)
        except Exception as exc:
            return f"{row['endpoint']}: {exc}"
        return None

    def _check_same_task(
        self, workspace: str, endpoint: str, version: dict[str, Any], kind: str
    ) -> None:
        """A hot swap keeps what the endpoint takes and answers: its callers send an image and
        read a description, or send a text and read a label. Another task needs its own
        endpoint (a rollback may always return to what the endpoint served before)."""
        live = next(
            (m for m in self.pool.live() if (m.workspace, m.endpoint) == (workspace, endpoint)),
            None,
        )
        if live is None or kind == "rolled_back":
            return
        serving, new = live.runtime.task.name, task_of(self.services, workspace, version)
        if new != serving:
            raise Conflict(
                f"endpoint '{endpoint}' serves {serving} and {version['name']}@"
                f"{version['version']} is {new}: its callers would get answers of another "
                "kind; deploy it at an endpoint of its own"
            )

    def _check_endpoint_free(self, workspace: str, endpoint: str) -> None:
        # Endpoint names are unique across workspaces: /v1/endpoints/{name} names one model.
        for row in self.services.deployments.list():
            if row["endpoint"] == endpoint and row["workspace"] != workspace:
                raise Conflict(
                    f"endpoint '{endpoint}' already serves workspace '{row['workspace']}'; "
                    "endpoint names are unique on a server"
                )

    def _make_runtime(self, version: dict[str, Any], options: DeployOptions) -> ModelRuntime:
        from appliance.runtimes.choose import runtime_for

        return runtime_for(self.services, version, options)

    def task_of(self, endpoint: str) -> Task:
        """The task of the model `endpoint` serves (loaded, or cold: then without loading)."""
        workspace = self.find_endpoint(endpoint)
        if (cold := self.residency.cold_task((workspace, endpoint))) is not None:
            return cold
        return self.pool.get(workspace, endpoint).runtime.task

    # -- predictions -------------------------------------------------------------------------

    def find_endpoint(self, endpoint: str) -> str:
        """The workspace serving `endpoint` (names are unique on a server)."""
        for live in self.pool.live():
            if live.endpoint == endpoint:
                return live.workspace
        for row in self.services.deployments.list():
            if row["endpoint"] == endpoint:
                return str(row["workspace"])
        raise NotFound(f"no endpoint '{endpoint}' is deployed")

    async def predict(
        self, endpoint: str, inputs: Sequence[PredictInput]
    ) -> list[PredictionResult]:
        workspace = self.find_endpoint(endpoint)
        started = time.perf_counter()
        created_at = utcnow()
        with self.residency.in_flight((workspace, endpoint)):
            submitted, cold_ms = await self._submit_loaded(workspace, endpoint, inputs)
            answers = await asyncio.gather(
                *(asyncio.wrap_future(f) for _, f in submitted), return_exceptions=True
            )
        total_ms = round((time.perf_counter() - started) * 1000, 3)
        settings = self.services.settings
        results = []
        failure: BaseException | None = None
        for (live, _), item, answer in zip(submitted, inputs, answers, strict=True):
            task = live.runtime.task
            prediction = None if isinstance(answer, BaseException) else answer[0]
            record = CaptureRecord(
                id=uuid.uuid4().hex,
                workspace=workspace,
                endpoint=endpoint,
                model_version_id=live.version["id"],
                created_at=created_at,
                latency_ms=total_ms,
                model=live.version["name"],
                version=live.version["version"],
                features=item.features,
                words=task.words(item.values),
                image=task.thumbnail(item) if self.observer.keep_thumbnail() else None,
                values=item.values,
                **task.capture(item, prediction),
            )
            if isinstance(answer, BaseException):
                failure = failure or answer
                record.error = f"{type(answer).__name__}: {answer}"
                self.observer.observe(record)
                continue
            prediction, timing = answer
            warnings = task.warnings(item, prediction, settings)
            output = task.answer(prediction)
            record.output = output
            record.confidence = round(prediction.confidence, 4)
            record.uncertain = prediction.uncertain
            record.unfamiliar = prediction.unfamiliar
            record.embedding = prediction.embedding
            record.warnings = warnings
            record.queue_ms = round(timing.queue_ms, 3)
            record.inference_ms = round(timing.inference_ms, 3)
            record.batch_size = timing.batch_size
            self.observer.observe(record)
            results.append(
                PredictionResult(
                    id=record.id,
                    endpoint=endpoint,
                    model=live.version["name"],
                    version=live.version["version"],
                    output=output,
                    confidence=record.confidence,
                    warnings=warnings,
                    reasons=reasons(warnings, prediction),
                    latency_ms=total_ms,
                    queue_ms=record.queue_ms,
                    inference_ms=record.inference_ms,
                    batch_size=timing.batch_size,
                    features=item.features,
                    cold_start_ms=cold_ms,
                )
            )
        if failure is not None:
            raise failure
        return results

    async def _submit_loaded(
        self, workspace: str, endpoint: str, inputs: Sequence[PredictInput]
    ) -> tuple[list[Any], float | None]:
        """Queue `inputs` on the endpoint's model; a cold endpoint's is loaded first (on its
        own threads: this awaits the load), and the milliseconds waited for it are returned."""
        key, waited = (workspace, endpoint), None
        for _ in range(3):
            if (load := self.residency.reload_if_cold(key)) is not None:
                began = time.perf_counter()
                await asyncio.wrap_future(load)
                waited = (waited or 0.0) + (time.perf_counter() - began) * 1000
            try:
                submitted = [self.pool.submit(workspace, endpoint, item) for item in inputs]
                return submitted, None if waited is None else round(waited, 3)
            except (ModelLoading, NotFound):  # unloaded between the two: load it again
                if self.residency.state(key) not in ("cold", "loading"):
                    raise
        raise ModelLoading(f"endpoint '{endpoint}' keeps being unloaded; retry shortly")

    def submit_waiting(
        self, workspace: str, endpoint: str, item: PredictInput
    ) -> tuple[LiveModel, Future[tuple[Prediction, BatchTiming]]]:
        """`pool.submit` for a worker thread (the scheduler's batch jobs): a cold endpoint is
        loaded first, and this thread waits for it, as a request's task awaits it."""
        key = (workspace, endpoint)
        for _ in range(3):
            if (load := self.residency.reload_if_cold(key)) is not None:
                load.result()
            try:
                return self.pool.submit(workspace, endpoint, item)
            except (ModelLoading, NotFound):
                if self.residency.state(key) not in ("cold", "loading"):
                    raise
        raise ModelLoading(f"endpoint '{endpoint}' keeps being unloaded; retry shortly")

    def close(self) -> None:
        self.residency.close()
        self.pool.close()
        self._decoders.shutdown(wait=True)


def _options_of(row: dict[str, Any]) -> DeployOptions:
    return DeployOptions(**{name: row[name] for name in DeployOptions.__dataclass_fields__})


def _warmup(runtime: ModelRuntime) -> None:
    """One forward pass before taking traffic, so the first request pays no lazy set-up."""
    runtime.predict([runtime.task.warmup()])
