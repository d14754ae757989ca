"""`appliance deploy …`: through this home's running server when there is one (a hot swap),
otherwise loaded and checked here and recorded, for the server to load when it starts."""

from __future__ import annotations

from typing import Any

import click

from appliance.cli.context import json_option, services, without_server
from appliance.cli.output import emit_json, emit_table
from appliance.serving.options import (
    BACKENDS,
    DEVICES,
    INSTANCE_KINDS,
    MAX_INSTANCES,
    QUANTIZATIONS,
)


class DefaultGroup(click.Group):
    """A group whose arguments go to its default command unless they name a subcommand:
    `deploy WS ENDPOINT MODEL` and `deploy rollback WS ENDPOINT` both read naturally."""

    default_command = "create"

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = [self.default_command, *args]
        return super().resolve_command(ctx, args)


@click.group(cls=DefaultGroup)
def deploy() -> None:
    """Serve a model version at an endpoint, roll back, or list deployments.

    \b
    appliance deploy WS ENDPOINT MODEL@ALIAS|VERSION [options]
    appliance deploy rollback WS ENDPOINT
    appliance deploy list WS
    """


@deploy.command("create", hidden=True)
@click.argument("workspace")
@click.argument("endpoint")
@click.argument("model", metavar="MODEL@ALIAS|VERSION")
@click.option(
    "--quantization",
    type=click.Choice(QUANTIZATIONS),
    default="none",
    show_default=True,
    help="Weights as stored (none), half precision (fp16, bf16), or 8/4-bit (int8, nf4).",
)
@click.option(
    "--device",
    type=click.Choice(DEVICES),
    default="auto",
    show_default=True,
    help="Where the model runs; auto picks CUDA when present, else the CPU.",
)
@click.option(
    "--max-batch-size",
    type=int,
    default=8,
    show_default=True,
    help="Most requests answered by one forward pass.",
)
@click.option(
    "--max-batch-wait-ms",
    type=int,
    default=5,
    show_default=True,
    help="Longest a request waits for company while traffic is batching.",
)
@click.option(
    "--backend",
    type=click.Choice(BACKENDS),
    default="auto",
    show_default=True,
    help="What runs the forward passes; auto: the one measured fastest for the device.",
)
@click.option(
    "--instances",
    type=click.IntRange(1, MAX_INSTANCES),
    default=1,
    show_default=True,
    help="Loaded copies of the model, each with its own batcher; batches are spread over them.",
)
@click.option(
    "--instance-kind",
    type=click.Choice(INSTANCE_KINDS),
    default="thread",
    show_default=True,
    help="thread: in the server's process; process: a spawned worker each (inputs through "
    "shared memory), restarted when it dies.",
)
@click.option(
    "--keep-alive",
    "keep_alive_s",
    type=click.IntRange(0, 7 * 24 * 3600),
    default=0,
    show_default=True,
    help="Idle seconds after which the model is unloaded and loaded again on its next request "
    "(0: kept loaded).",
)
@json_option
def create(
    workspace: str, endpoint: str, model: str, quantization: str, device: str,
    max_batch_size: int, max_batch_wait_ms: int, backend: str, instances: int,
    instance_kind: str, keep_alive_s: int, as_json: bool,
) -> None:  # fmt: skip
    """Deploy MODEL at ENDPOINT: loaded and warmed beside the serving one, then switched."""
    from appliance.serving.options import DeployOptions

    options = DeployOptions(
        quantization, device, max_batch_size, max_batch_wait_ms, backend, instances,
        instance_kind, keep_alive_s,
    )  # fmt: skip
    body = {"workspace": workspace, "endpoint": endpoint, "model": model, **vars(options)}
    row = _via_server("/v1/deployments", body)
    where = "the running server switched to it"
    if row is None:
        from appliance.serving.service import Serving

        with without_server("deploy"):
            serving = Serving(services())
            try:
                serving.deploy(workspace, endpoint, model, options)
            finally:
                serving.close()
        row = _row(workspace, endpoint)
        where = "loaded and checked here; `appliance serve` will serve it"
    _report(row, as_json, where)


@deploy.command()
@click.argument("workspace")
@click.argument("endpoint")
@json_option
def rollback(workspace: str, endpoint: str, as_json: bool) -> None:
    """Return ENDPOINT to the version it served before."""
    row = _via_server(f"/v1/deployments/{endpoint}/rollback", {"workspace": workspace})
    where = "the running server switched back"
    if row is None:
        from appliance.serving.service import Serving

        with without_server("deploy rollback"):
            serving = Serving(services())
            try:
                serving.rollback(workspace, endpoint)
            finally:
                serving.close()
        row = _row(workspace, endpoint)
        where = "recorded; `appliance serve` will serve it"
    _report(row, as_json, where)


@deploy.command("list")
@click.argument("workspace")
@json_option
def list_(workspace: str, as_json: bool) -> None:
    """List the endpoints of WORKSPACE with the version each serves and, from the running
    server, what runs it (BACKEND: torch, onnxruntime or openvino once loaded; what the deploy
    asked for, e.g. auto, until then), whether it is resident (loaded, loading, cold) and the
    memory it takes."""
    rows = _served(workspace)
    if rows is None:
        rows = [{**r, "resident": "(no server)"} for r in services().deployments.list(workspace)]
    if as_json:
        emit_json(rows)
        return
    rows = [{**r, "backend": r.get("serving_backend") or r["backend"]} for r in rows]
    columns = ("endpoint", "model", "version", "quantization", "device", "backend", "resident")
    emit_table(rows, (*columns, "memory_mb", "keep_alive_s", "updated_at"))
    for budget in sorted({r["memory_budget_mb"] for r in rows if r.get("memory_budget_mb")}):
        used = sum(
            r["memory_mb"] or 0 for r in rows
            if r["resident"] == "loaded" and r["memory_budget_mb"] == budget
        )  # fmt: skip
        click.echo(f"resident: {used:g} MB of a {budget:g} MB budget (this workspace's)")


def _served(workspace: str) -> list[dict[str, Any]] | None:
    """The running server's view of WORKSPACE's deployments; None when no server runs."""
    from appliance.server.client import ServerClient

    server = ServerClient.find(services().settings)
    if server is None:
        return None
    with server:
        return [d for d in server.get("/v1/deployments") if d["workspace"] == workspace]


def _row(workspace: str, endpoint: str) -> dict[str, Any]:
    return next(r for r in services().deployments.list(workspace) if r["endpoint"] == endpoint)


def _report(row: dict[str, Any], as_json: bool, where: str) -> None:
    if as_json:
        emit_json(row)
    else:
        backend = f", {row['serving_backend']}" if row.get("serving_backend") else ""
        click.echo(
            f"{row['endpoint']} → {row['model']}@{row['version']} "
            f"({row['quantization']}, {row['device']}{backend}): {where}"
        )


def _via_server(path: str, body: dict[str, Any]) -> dict[str, Any] | None:
    """POST the change to the server running for this home (found through the address it
    records there, whatever its port); None when none runs."""
    from appliance.server.client import ServerClient

    server = ServerClient.find(services().settings)
    if server is None:
        return None
    with server:
        return dict(server.post_json(path, body))
