"""`appliance review WS ENDPOINT`: the answers a person should look at (uncertain, or rated low),
one by one or as a list; accept or correct each, and export the reviewed ones into a new version
of the dataset. Works on the registry directly: the server need not run."""

from __future__ import annotations

import getpass
from typing import Any

import click

from appliance.cli.context import json_option, services
from appliance.cli.output import emit_json, emit_table

STATUSES = ("pending", "accepted", "corrected", "dismissed", "all")
CHOICES = {"a": "accept", "c": "correct", "d": "dismiss", "s": "skip", "q": "quit"}


@click.command()
@click.argument("workspace")
@click.argument("endpoint")
@click.option("--status", type=click.Choice(STATUSES), default="pending", show_default=True,
              help="Which items to list.")  # fmt: skip
@click.option("--limit", default=20, show_default=True, help="How many to list, newest first.")
@click.option("--next", "one_by_one", is_flag=True,
              help="Review pending items one by one, oldest first, answering each.")  # fmt: skip
@click.option("--accept", "accept_id", metavar="ID", help="The answer of item ID was right.")
@click.option("--correct", "correction", nargs=2, metavar="ID TEXT",
              help="The right answer of item ID is TEXT (a description, or a label).")  # fmt: skip
@click.option("--dismiss", "dismiss_id", metavar="ID", help="Item ID is not worth keeping.")
@click.option("--export", "export_to", is_flag=False, flag_value="", default=None,
              metavar="[DATASET]",
              help="Add the reviewed items, not yet exported, to a new version of DATASET "
              "(default: the dataset the deployed version was trained on).")  # fmt: skip
@json_option
def review(
    workspace: str,
    endpoint: str,
    status: str,
    limit: int,
    one_by_one: bool,
    accept_id: str | None,
    correction: tuple[str, str] | None,
    dismiss_id: str | None,
    export_to: str | None,
    as_json: bool,
) -> None:
    """The review queue of ENDPOINT in WORKSPACE: answers that were uncertain or rated low,
    kept with their input. Without an option, lists the pending items."""
    from appliance.review.store import Reviews

    chosen = [one_by_one, *(o is not None for o in (accept_id, correction, dismiss_id, export_to))]
    if sum(chosen) > 1:
        raise click.UsageError("give one of --next, --accept, --correct, --dismiss, --export")
    reviews = Reviews(services())
    if export_to is not None:
        _export(workspace, endpoint, export_to or None, as_json)
    elif one_by_one:
        _one_by_one(reviews, workspace, endpoint)
    elif any(chosen):
        item_id = accept_id or dismiss_id or (correction[0] if correction else "")
        action = "accept" if accept_id else "dismiss" if dismiss_id else "correct"
        _of(reviews, item_id, workspace, endpoint)
        done = reviews.review(item_id, action, correction[1] if correction else None, _who())
        if as_json:
            emit_json(done)
        else:
            click.echo(_done(done))
    else:
        _list(reviews, workspace, endpoint, status, limit, as_json)


def _list(
    reviews: Any, workspace: str, endpoint: str, status: str, limit: int, as_json: bool
) -> None:
    rows = reviews.list(workspace, endpoint, status, limit)
    counts = reviews.counts(workspace, endpoint)
    if as_json:
        emit_json({"counts": counts, "items": rows})
        return
    click.echo(
        f"{workspace}/{endpoint}: {counts['pending']} pending, {counts['accepted']} accepted,"
        f" {counts['corrected']} corrected ({counts['exported']} exported),"
        f" {counts['dismissed']} dismissed"
    )
    emit_table(
        [
            {
                "id": r["id"], "created": r["created_at"][:19].replace("T", " "),
                "reason": r["reason"], "confidence": _percent(r["confidence"]),
                "status": r["status"], "answer": _clip(r["correction"] or r["answer"]),
                "input": _clip(r["input_text"]) if r["kind"] == "text" else _path(reviews, r),
            }
            for r in rows
        ],
        ("id", "created", "reason", "confidence", "status", "answer", "input"),
    )  # fmt: skip


def _one_by_one(reviews: Any, workspace: str, endpoint: str) -> None:
    from appliance.errors import ApplianceError

    items = reviews.list(workspace, endpoint, "pending", limit=1000, oldest_first=True)
    if not items:
        click.echo(f"{workspace}/{endpoint}: nothing to review")
        return
    done = 0
    for number, item in enumerate(items, start=1):
        click.echo(f"\n[{number}/{len(items)}] item {item['id']} · {item['reason']}"
                   f" · {item['created_at'][:19].replace('T', ' ')}")  # fmt: skip
        _show(reviews, item)
        while True:
            try:
                answer = click.prompt(
                    "[a]ccept, [c]orrect, [d]ismiss, [s]kip or [q]uit",
                    type=click.Choice([*CHOICES, *CHOICES.values()]), show_choices=False,
                )  # fmt: skip
            except click.Abort:  # end of input, or ctrl-c: stop where we are
                answer = "quit"
            action = CHOICES.get(answer, answer)
            if action in ("skip", "quit"):
                break
            text = click.prompt("the right answer") if action == "correct" else None
            try:
                click.echo(_done(reviews.review(item["id"], action, text, _who())))
                done += 1
                break
            except ApplianceError as exc:  # a label the model lacks, reviewed meanwhile: say so
                click.echo(f"error: {exc}", err=True)
        if action == "quit":
            break
    click.echo(f"\nreviewed {done} of {len(items)}")


def _show(reviews: Any, item: dict[str, Any]) -> None:
    if item["kind"] == "text":
        click.echo(f"  text        {item['input_text']}")
    else:
        click.echo(f"  image       {_path(reviews, item)}")
    for name, value in item["fields"].items():
        click.echo(f"  {name.ljust(11)} {value}")
    click.echo(f"  answer      {item['answer']}")
    warnings = ", ".join(item["warnings"]) or "none"
    click.echo(f"  confidence  {_percent(item['confidence'])} · warnings {warnings}")


def _export(workspace: str, endpoint: str, dataset: str | None, as_json: bool) -> None:
    from appliance.review.export import export

    result = export(services(), workspace, endpoint, dataset)
    if as_json:
        emit_json(result)
        return
    if result["version"] is None:
        click.echo(result["message"])
    else:
        rows = len(result["exported"])
        click.echo(f"{result['message']}: {rows} new row{'s' if rows != 1 else ''}")
    if result["skipped"]:
        click.echo(f"skipped (input no longer kept): {', '.join(result['skipped'])}")


def _of(reviews: Any, item_id: str, workspace: str, endpoint: str) -> None:
    """Refuse an item of another workspace or endpoint than the command names."""
    from appliance.errors import NotFound

    item = reviews.get(item_id)
    if (item["workspace"], item["endpoint"]) != (workspace, endpoint):
        raise NotFound(f"review item '{item_id}' is not in {workspace}/{endpoint}")


def _done(item: dict[str, Any]) -> str:
    if item["status"] == "corrected":
        return f"corrected {item['id']}: {item['correction']}"
    if item["status"] == "accepted":
        return f"accepted {item['id']}: {item['answer']}"
    return f"dismissed {item['id']}"


def _who() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no login name (a container without a passwd entry)
        return "cli"


def _path(reviews: Any, item: dict[str, Any]) -> str:
    path = reviews.input_path(item)
    return str(path) if path is not None else "(no longer kept)"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _clip(text: str | None, width: int = 40) -> str:
    text = (text or "").replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"
