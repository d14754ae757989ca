"""`create_app(services)`: the Litestar app. The lifespan owns the serving pool (restored from
the registry at start, unloaded at stop); errors become JSON with a message, never a traceback.
Handlers get the services, serving, monitor and scheduler by dependency injection (a parameter
of that name and type); the predict route gets serving and the monitor as one (`Predicting`)."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
from litestar import Litestar, Request, Response
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi import OpenAPIConfig

from appliance import __version__
from appliance.access.authenticate import Authenticator, local_key
from appliance.access.roles import Role
from appliance.access.rules import RULE
from appliance.backup.integrity import check_registry
from appliance.disk import out_of_space
from appliance.errors import ApplianceError
from appliance.monitoring.monitor import Monitor
from appliance.runs.launcher import reap_runs
from appliance.scheduler.service import Scheduler
from appliance.server.audit import AuditTrail
from appliance.server.auth import Access, HomeCheck, authorize
from appliance.server.crosssite import CrossSiteCheck, declared_types
from appliance.server.inputs import MAX_FORM_PARTS
from appliance.server.jobs import JobController, JobRunController
from appliance.server.manage import DeploymentController
from appliance.server.maturity import ReportController
from appliance.server.monitoring import MonitoringController, metrics
from appliance.server.oip import OipController
from appliance.server.platform import PlatformController
from appliance.server.predict import PredictController, Predicting
from appliance.server.predictions import FeedbackController
from appliance.server.ratelimit import RateLimited
from appliance.server.record import home_id, new_instance
from appliance.server.resources import ROUTES as RESOURCE_ROUTES
from appliance.server.review import ReviewItemController, ReviewQueueController
from appliance.server.scopes import resolvers
from appliance.server.throttle import TooManyAttempts
from appliance.services import Services
from appliance.serving.service import Serving

log = logging.getLogger("appliance.server")


def create_app(services: Services, restore: bool = True, schedule: bool = True) -> Litestar:
    """The app over `services`; `restore` loads the recorded deployments in the background.
    The lifespan also runs the monitor (capture writer, periodic system metrics and alerts) and,
    with `schedule`, the scheduler of jobs, all on this one process and event loop."""
    # A corrupt registry refuses the start, whatever its size (an open checks only small ones).
    check_registry(services.registry.path, timeout_ms=services.settings.busy_timeout_ms)
    monitor = Monitor(services)
    serving = Serving(services, monitor)
    scheduler = Scheduler(services, serving)
    monitor.bind(lambda: [(m.endpoint, m.batcher.depth) for m in serving.pool.live()])
    # Who this server is: the home it serves, and this run of it (`appliance/server/record.py`).
    this_home, instance = home_id(services.settings.home), new_instance()
    authenticator = Authenticator(
        services.users, services.settings.token, local_key(services.settings.home)
    )
    access = Access(services.settings, authenticator, resolvers(serving))

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        if restore:
            # Loading models is blocking work: on its own thread, while /v2/health/ready says 503.
            serving.restoring = True
            threading.Thread(target=_restore, args=(serving,), name="restore", daemon=True).start()
        monitor.start()
        if schedule:
            # Runs a dead process left `running` are failed before anything schedules more.
            await anyio.to_thread.run_sync(reap_runs, services)
            await scheduler.start()
        try:
            yield
        finally:
            # Stop taking new work first: jobs stop, training children are cancelled; then the
            # models answer what they hold; then the last captures are written.
            scheduler.stop()
            await anyio.to_thread.run_sync(scheduler.shutdown)
            await anyio.to_thread.run_sync(serving.close)
            await anyio.to_thread.run_sync(monitor.close)  # after serving: flushes every capture

    app = Litestar(
        route_handlers=[
            PredictController,
            OipController,
            DeploymentController,
            FeedbackController,
            MonitoringController,
            JobController,
            JobRunController,
            ReviewQueueController,
            ReviewItemController,
            ReportController,
            PlatformController,
            metrics,
            *RESOURCE_ROUTES,
        ],
        lifespan=[lifespan],
        dependencies=_dependencies(services, monitor, serving, scheduler),
        guards=[authorize, declared_types],
        middleware=[
            AuditTrail(services.registry, access.workspace_of),
            CrossSiteCheck(services.settings),
            HomeCheck(services.settings.home, this_home, instance),
        ],
        # For what is no handler: the token guard, the error handlers, the uvicorn server.
        state=State(
            {
                "settings": services.settings,
                "home_id": this_home,
                "instance": instance,
                "access": access,
            }
        ),
        request_max_body_size=services.settings.max_body_bytes,
        multipart_form_part_limit=MAX_FORM_PARTS,
        exception_handlers={
            ApplianceError: _appliance_error,
            HTTPException: _http_error,
            Exception: _internal_error,
        },
        openapi_config=OpenAPIConfig(title="appliance", version=__version__, path="/schema"),
        logging_config=None,
    )
    _check_rules(app)
    return app


def _check_rules(app: Litestar) -> None:
    """Every route declares who may use it (`appliance/access/rules.py`): one that does not is
    a bug, refused here rather than served open. Litestar's own handlers (the schema pages, the
    automatic OPTIONS answers) are given the viewer rule."""
    for route in app.routes:
        for handler in getattr(route, "route_handlers", ()):
            if RULE in handler.opt:
                continue
            if route.path.startswith("/schema") or handler.http_methods == {"OPTIONS"}:
                handler.opt.update({RULE: Role.viewer, "scope": None, "every_workspace": False})
            else:
                raise RuntimeError(f"the route {route.path} declares no access rule (opt=allow)")


def _dependencies(
    services: Services, monitor: Monitor, serving: Serving, scheduler: Scheduler
) -> dict[str, Provide]:
    """One provider per service, each answering the one object this app holds, and one for the
    predict route (`Predicting`). Litestar resolves a handler's several dependencies in a task
    group, ~55 µs a request (measured): nothing beside a registry read, but the predict route
    takes one dependency."""
    predicting = Predicting(serving, monitor)
    values: dict[str, Any] = {
        "services": services, "monitor": monitor, "serving": serving, "scheduler": scheduler,
        "predicting": predicting,
    }  # fmt: skip
    # Cached: the same object for the app's lifetime; sync, never on a worker thread.
    return {
        name: Provide(_constant(value), use_cache=True, sync_to_thread=False)
        for name, value in values.items()
    }


def _constant(value: Any) -> Callable[[], Any]:
    def provide() -> Any:
        return value

    return provide


def _restore(serving: Serving) -> None:
    for error in serving.restore():
        log.error("could not restore deployment %s", error)


def _appliance_error(request: Request, exc: ApplianceError) -> Response:
    headers = {"Retry-After": "2"} if exc.http_status == 503 else None
    if isinstance(exc, TooManyAttempts | RateLimited):
        headers = {"Retry-After": str(exc.retry_after)}
    return Response({"error": str(exc)}, status_code=exc.http_status, headers=headers)


def _http_error(request: Request, exc: HTTPException) -> Response:
    if exc.status_code >= 500:
        log.error("error answering %s %s: %s", request.method, request.url.path, exc.detail)
        return Response({"error": "internal server error"}, status_code=exc.status_code)
    detail = exc.detail
    if exc.status_code == 413:
        limit = request.app.state.settings.max_body_bytes
        detail = f"the request body is larger than the {limit:,}-byte limit (max_body_bytes)"
        route = request.route_handler.resolve_request_max_body_size()
        if route is not None and route < limit:  # a route that reads less (a platform rating)
            detail = f"the request body is larger than this route's {route:,}-byte limit"
    elif isinstance(exc, ValidationException) and exc.extra:
        # What was wrong with the body, as the validator says ("Object contains unknown field
        # `recipe`", "Expected `int`, got `str` - at `$.max_batch_size`"), not only that it was.
        problems = [str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in exc.extra]
        detail = f"{detail}: {'; '.join(problems)}"
    return Response({"error": detail}, status_code=exc.status_code, headers=exc.headers)


def _internal_error(request: Request, exc: Exception) -> Response:
    if (problem := out_of_space(exc)) is not None:
        log.error("no space left answering %s %s: %s", request.method, request.url.path, problem)
        message = (
            f"no space left on the disk holding the server's home ({problem}); nothing was "
            f"stored. Free space (`appliance gc`, deleting old versions) and send it again"
        )
        return Response({"error": message}, status_code=507, headers={"Retry-After": "60"})
    log.exception("error answering %s %s", request.method, request.url.path, exc_info=exc)
    return Response({"error": "internal server error"}, status_code=500)
