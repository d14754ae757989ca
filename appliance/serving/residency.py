"""Residency: which deployed models are held in memory, what each weighs against the RAM (or
VRAM) budget, and which may be unloaded for room. An endpoint is `loaded`, `loading`, `cold`
(deployed, not held: its next request loads it) or `unloaded` (not held, and not to be loaded on
request: its load failed).

- Before a load, the fit check: what is held (the version being replaced stays held until the
  swap, since a hot swap holds both) plus the new footprint (footprint.py) must fit the budget.
  When it does not, idle other endpoints are unloaded, least recently used first; an endpoint
  mid-swap or with requests in flight is never chosen. When even that is not enough the deploy
  is refused with the numbers (`InsufficientMemory`) before anything is unloaded.
- Keep-alive: an endpoint idle for its `keep_alive_s` is unloaded (its instance closed) and
  stays deployed, cold. Its next request loads it on a loader thread and awaits that load; the
  requests that come meanwhile await the same load.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from appliance.errors import ApplianceError
from appliance.serving.footprint import MB, Footprint, LoadMeter, estimate_bytes, recorded_mb
from appliance.serving.options import DeployOptions
from appliance.serving.pool import Key, ModelPool

if TYPE_CHECKING:
    from appliance.services import Services
    from appliance.tasks import Task

log = logging.getLogger("appliance.serving")

RAM_SHARE = 0.75
"""The share of the machine's RAM served models may take when `memory_budget_mb` is 0."""
VRAM_SHARE = 0.9
"""The share of the GPU's memory they may take when `gpu_memory_budget_mb` is 0."""


class InsufficientMemory(ApplianceError):
    """A model does not fit the memory budget, even with every idle other endpoint unloaded.

    507 Insufficient Storage, not 409: nothing the request names clashes with anything, the
    server lacks room for it, and a client can tell that apart from a name conflict."""

    http_status = 507


@dataclass
class Cold:
    """A deployed endpoint that is not held: what its next request loads."""

    version: dict[str, Any]
    options: DeployOptions
    footprint: Footprint | None = None
    task: Task | None = None


@dataclass
class Admission:
    """One admitted load: its footprint, and (after the load) the RSS growth it measured."""

    key: Key
    footprint: Footprint
    measured_mb: float | None = None
    _meter: LoadMeter | None = field(default=None, repr=False)


class Residency:
    def __init__(self, services: Services, pool: ModelPool):
        self.services = services
        self.pool = pool
        self._guard = threading.RLock()
        self._key_locks: dict[Key, threading.RLock] = {}
        self._held: dict[Key, Footprint] = {}
        self._loading: dict[Key, Footprint] = {}
        self._cold: dict[Key, Cold] = {}
        self._reloads: dict[Key, Future[None]] = {}
        self._last_used: dict[Key, float] = {}
        self._in_flight: Counter[Key] = Counter()
        self._measured: dict[tuple[str, DeployOptions], float] = {}
        self._stop = threading.Event()
        self._sweeper: threading.Thread | None = None
        pool.on_cold = self._on_cold

    # -- budgets and footprints ------------------------------------------------------------

    def budget_mb(self, device: str) -> float | None:
        """The budget for models on `device`; None where none applies (CUDA without a GPU)."""
        settings = self.services.settings
        if device != "cuda":
            if settings.memory_budget_mb > 0:
                return float(settings.memory_budget_mb)
            import psutil

            return round(psutil.virtual_memory().total * RAM_SHARE / MB, 1)
        if settings.gpu_memory_budget_mb > 0:
            return float(settings.gpu_memory_budget_mb)
        import torch

        if not torch.cuda.is_available():
            return None
        _, total = torch.cuda.mem_get_info()
        return round(total * VRAM_SHARE / MB, 1)

    def footprint(self, version: dict[str, Any], options: DeployOptions) -> Footprint:
        """What `version` takes once loaded with `options`: the measured figure (this process's
        last load of it, else the one recorded with its last deploy) when there is one, never
        below the estimate from its weights."""
        from appliance.serving.runtime import resolve_device

        device = resolve_device(options.device)
        folder = self.services.models.folder(version)
        copies = max(1, options.instances)
        estimate = estimate_bytes(folder, options.quantization) / MB * copies
        measured = self._measured.get((version["id"], options))
        if measured is None:
            measured = recorded_mb(self.services.registry, version["id"], options)
        if measured is not None and measured >= estimate:
            return Footprint(round(measured, 1), device, "measured")
        return Footprint(round(estimate, 1), device, "estimated")

    def used_mb(self, key: Key) -> Footprint | None:
        """The footprint of what `key` holds (loaded, or loading), or would load when cold."""
        with self._guard:
            found = self._loading.get(key) or self._held.get(key)
            cold = self._cold.get(key)
        if found is None and cold is not None:
            if cold.footprint is None:
                cold.footprint = self.footprint(cold.version, cold.options)
            return cold.footprint
        return found

    def state(self, key: Key) -> str:
        with self._guard:
            if key in self._live_keys():
                return "loaded"
            if key in self._loading or key in self._reloads:
                return "loading"
            return "cold" if key in self._cold else "unloaded"

    # -- the fit check ---------------------------------------------------------------------

    @contextmanager
    def admit(
        self, workspace: str, endpoint: str, version: dict[str, Any], options: DeployOptions,
        evict: bool = True,
    ) -> Iterator[Admission]:  # fmt: skip
        """Around one load of `version` at the endpoint: check that it fits (unloading idle
        other endpoints when `evict`), hold its footprint while it loads, and take over as
        what the endpoint holds once the load succeeded. Raises InsufficientMemory before
        anything is unloaded."""
        key = (workspace, endpoint)
        need = self.footprint(version, options)
        with self._key_lock(key):
            with self._guard:
                victims = self._plan(key, version, need, evict)
                for victim in victims:
                    self._mark_unloading(victim)
                self._loading[key] = need
                replaces = key in self._live_keys()
            for victim in victims:  # outside the guard: closing waits for the model's thread
                log.info("unloading %s/%s to make room for %s", *victim, endpoint)
                self.pool.undeploy(*victim)
            admission = Admission(key, need, _meter=LoadMeter(replaces))
            try:
                yield admission
            except BaseException:
                with self._guard:
                    self._loading.pop(key, None)
                raise
            self._took(admission, version, options)
        if options.keep_alive_s > 0:
            self._start_sweeper()

    def _took(self, admission: Admission, version: dict[str, Any], options: DeployOptions) -> None:
        assert admission._meter is not None
        measured = admission._meter.stop()
        need = admission.footprint
        if measured is not None:
            admission.measured_mb = round(measured, 1)
            self._measured[(version["id"], options)] = measured
            need = self.footprint(version, options)
        with self._guard:
            self._loading.pop(admission.key, None)
            self._held[admission.key] = need
            self._cold.pop(admission.key, None)
            self._last_used[admission.key] = time.monotonic()

    def _plan(self, key: Key, version: dict[str, Any], need: Footprint, evict: bool) -> list[Key]:
        budget = self.budget_mb(need.device)
        if budget is None:
            return []
        held = self._holding(need.device)
        used = sum(f.mb for f in held.values())
        free, victims = budget - used, []
        if need.mb <= free:
            return []
        if evict:
            for other in sorted(held, key=lambda k: self._last_used.get(k, 0.0)):
                if free >= need.mb:
                    break
                if self._evictable(other, key):
                    victims.append(other)
                    free += held[other].mb
        if need.mb <= free:
            return victims
        raise InsufficientMemory(_refusal(key, version, need, budget, held, self))

    def _holding(self, device: str) -> dict[Key, Footprint]:
        """What is held on `device` now, by endpoint: loaded models, and loads under way."""
        held: dict[Key, Footprint] = {}
        for live in self.pool.live():
            key = (live.workspace, live.endpoint)
            found = self._held.get(key) or self._held.setdefault(
                key, self.footprint(live.version, live.options)
            )
            if found.device == device:
                held[key] = found
        for key, loading in self._loading.items():
            if loading.device == device:
                # Beside the version it replaces, which stays until the swap.
                held[(key[0], key[1] + " (loading)") if key in held else key] = loading
        return held

    def _evictable(self, other: Key, key: Key) -> bool:
        """An idle other endpoint: not the one being replaced, none mid-load or mid-swap, none
        with requests in flight."""
        return (
            other != key
            and other in self._live_keys()
            and other not in self._loading
            and self._in_flight[other] == 0
        )

    # -- keep-alive: idle unload, cold reload ------------------------------------------------

    def touch(self, key: Key) -> None:
        self._last_used[key] = time.monotonic()

    @contextmanager
    def in_flight(self, key: Key) -> Iterator[None]:
        """Around a request at `key`: it is not idle, and not to be unloaded, meanwhile."""
        self._in_flight[key] += 1
        self.touch(key)
        try:
            yield
        finally:
            self._in_flight[key] -= 1
            self.touch(key)

    def cold_task(self, key: Key) -> Task | None:
        """The task a cold endpoint serves (without loading it); None when it is not cold."""
        from appliance.models.lineage import task_of
        from appliance.tasks import get_task

        with self._guard:
            cold = self._cold.get(key)
        if cold is None or key in self._live_keys():
            return None
        if cold.task is None:
            cold.task = get_task(task_of(self.services, key[0], cold.version))
        return cold.task

    def reload_if_cold(self, key: Key) -> Future[None] | None:
        """The load of a cold endpoint (started now, or the one under way); None when it is
        not cold."""
        with self._guard:
            cold = self._cold.get(key)
            if cold is None or key in self._live_keys():
                return None
            future = self._reloads.get(key)
            if future is None:
                future = self._reloads[key] = Future()
                threading.Thread(
                    target=self._reload, args=(key, cold, future), name=f"reload-{key[1]}",
                    daemon=True,
                ).start()  # fmt: skip
            return future

    def _on_cold(self, key: Key) -> bool:
        """The pool's question when `key` is not live: is it cold? Then its load starts."""
        return self.reload_if_cold(key) is not None

    def _reload(self, key: Key, cold: Cold, future: Future[None]) -> None:
        try:
            with self._key_lock(key):
                if self._cold.get(key) is cold:  # else a deploy has replaced it meanwhile
                    with self.admit(*key, cold.version, cold.options):
                        self.pool.deploy(*key, cold.version, cold.options)
            future.set_result(None)
        except BaseException as exc:
            log.warning("loading cold endpoint %s/%s failed: %s", *key, exc)
            future.set_exception(exc)
        finally:
            with self._guard:
                self._reloads.pop(key, None)

    def mark_cold(self, key: Key, version: dict[str, Any], options: DeployOptions) -> None:
        """Record `key` as deployed but not held (a restore that did not fit the budget)."""
        with self._guard:
            self._cold[key] = Cold(version, options, self.footprint(version, options))

    def sweep(self) -> list[Key]:
        """Unload every endpoint idle for its keep-alive; returns those unloaded."""
        now, unloaded = time.monotonic(), []
        for live in self.pool.live():
            key, keep = (live.workspace, live.endpoint), live.options.keep_alive_s
            if keep <= 0 or now - self._last_used.get(key, now) < keep:
                continue
            lock = self._key_lock(key)
            if not lock.acquire(blocking=False):  # a deploy or a load is under way
                continue
            try:
                with self._guard:
                    idle = self._evictable(key, ("", "")) and self._mark_unloading(key)
                if idle:
                    self.pool.undeploy(*key)
                    unloaded.append(key)
            finally:
                lock.release()
        for key in unloaded:
            log.info("unloaded %s/%s: idle for its keep-alive", *key)
        return unloaded

    def _mark_unloading(self, key: Key) -> bool:
        """Record `key` as cold, before its model is closed (under the guard): a request that
        then misses the model loads it again. False when it holds no model."""
        live = next((m for m in self.pool.live() if (m.workspace, m.endpoint) == key), None)
        if live is None:
            return False
        self._cold[key] = Cold(live.version, live.options, self._held.pop(key, None))
        return True

    def _start_sweeper(self) -> None:
        with self._guard:
            if self._sweeper is None and not self._stop.is_set():
                self._sweeper = threading.Thread(target=self._sweep_loop, name="keep-alive")
                self._sweeper.daemon = True
                self._sweeper.start()

    def _sweep_loop(self) -> None:
        while not self._stop.wait(self._tick()):
            try:
                self.sweep()
            except Exception:  # the sweep must outlive one bad pass
                log.exception("keep-alive sweep failed")

    def _tick(self) -> float:
        """A quarter of the shortest keep-alive, between 0.25 s and 10 s: cheap, and an idle
        model goes at most a quarter late."""
        keeps = [m.options.keep_alive_s for m in self.pool.live() if m.options.keep_alive_s > 0]
        return min(10.0, max(0.25, min(keeps, default=40) / 4))

    def close(self) -> None:
        self._stop.set()
        if self._sweeper is not None:
            self._sweeper.join(timeout=5)

    def _key_lock(self, key: Key) -> threading.RLock:
        with self._guard:
            return self._key_locks.setdefault(key, threading.RLock())

    def _live_keys(self) -> set[Key]:
        return {(m.workspace, m.endpoint) for m in self.pool.live()}


def _refusal(
    key: Key, version: dict[str, Any], need: Footprint, budget: float,
    held: dict[Key, Footprint], residency: Residency,
) -> str:  # fmt: skip
    which = "VRAM" if need.device == "cuda" else "RAM"
    setting = "gpu_memory_budget_mb" if need.device == "cuda" else "memory_budget_mb"
    used = sum(f.mb for f in held.values())
    parts = []
    for other, footprint in sorted(held.items(), key=lambda kv: -kv[1].mb):
        busy = "" if residency._evictable(other, key) else ", in use"
        mine = " (the version it replaces, held until the swap)" if other == key else ""
        parts.append(f"{other[1]} {footprint.mb:g} MB{mine}{busy}")
    resident = "; ".join(parts) or "nothing"
    return (
        f"{version['name']}@{version['version']} at '{key[1]}' needs {need.mb:g} MB of {which} "
        f"({need.source}) and does not fit: the budget is {budget:g} MB and {used:g} MB is "
        f"resident ({resident}), with no idle other endpoint that unloading would make room "
        f"enough; nothing was unloaded. Raise {setting} (APPLIANCE_{setting.upper()}), deploy "
        "it smaller (--quantization int8), or undeploy or let go cold (--keep-alive) another "
        "endpoint"
    )
