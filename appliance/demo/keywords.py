"""The demo's model-change chapter: sellers may now give keywords the photo cannot show (brand,
condition, size). The shared folder's rows gain a `keywords` column, the dataset watch versions
it (the diff shows the schema change), the retrain job trains a keyword model and gates it on
exact match and keyword adherence against production, deploys it, and sellers' requests with
keywords are answered with them."""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from appliance.datasets.imagefolder import METADATA
from appliance.datasets.synthetic import ProductAttributes, generate, with_keywords
from appliance.demo.loop import RETRAIN, wait_for_job
from appliance.demo.options import DATASET, ENDPOINT, WORKSPACE, DemoOptions, rows_of
from appliance.registry import utcnow
from appliance.services import Services
from appliance.tasks.keywords import adherence, honoured, parse_keywords

if TYPE_CHECKING:
    from appliance.server.client import ServerClient

KEYWORD_FRACTION = 0.5
"""Share of the folder's photos whose sellers gave keywords."""
REQUESTS = 6


def add_keywords(folder: Path, fraction: float, seed: int) -> int:
    """Give `fraction` of the folder's generated rows seller keywords, their descriptions
    including them (rows a person wrote or corrected are left as they are); returns how many."""
    rows = rows_of(folder)
    rng = random.Random(f"{seed}:demo-keywords")
    changed = 0
    for row in rows:
        attrs = _attributes(row)
        if attrs is None or row.get("keywords") or rng.random() >= fraction:
            continue
        given = with_keywords(attrs, rng)
        row["text"], row["keywords"] = given.description(), given.keywords
        changed += 1
    lines = "".join(json.dumps(row) + "\n" for row in rows)
    tmp = folder / f".{METADATA}.tmp"
    tmp.write_text(lines, encoding="utf-8")
    tmp.replace(folder / METADATA)
    return changed


def _attributes(row: dict[str, Any]) -> ProductAttributes | None:
    names = ("category", "color", "pattern", "background")
    if not all(isinstance(row.get(n), str) for n in names):
        return None
    attrs = ProductAttributes(
        category=row["category"], color=row["color"], pattern=row["pattern"],
        background=row["background"], lighting=str(row.get("lighting", "normal")),
    )  # fmt: skip
    return attrs if attrs.description() == row.get("text") else None


def model_change(
    services: Services,
    server: ServerClient,
    photos: Path,
    scratch: Path,
    traffic: list[bytes],
    options: DemoOptions,
    note: Callable[[str], None],
    say: Callable[[str], None],
    on_poll: Callable[[dict[str, Any]], None],
) -> dict[str, Any]:
    since = utcnow()
    given = add_keywords(photos, KEYWORD_FRACTION, options.seed)
    note(
        f"the model change: sellers may now give keywords the photo cannot show (brand, "
        f"condition, size); {given} rows of {photos.name}/ gain a `keywords` column"
    )
    retrain = wait_for_job(services, RETRAIN, on_poll, server, traffic, since=since)
    detail = retrain["detail"]
    version = services.datasets.get(WORKSPACE, str(detail.get("dataset", DATASET)))
    previous = services.datasets.get(WORKSPACE, f"{DATASET}@{version['version'] - 1}")
    schema = services.datasets.diff(
        WORKSPACE, f"{DATASET}@{previous['digest']}", f"{DATASET}@{version['digest']}"
    )["schema"]
    added = ", ".join(f"+{c} in {n} rows" for c, n in schema["added"].items()) or "none"
    note(
        f"the watch versioned it → {DATASET}@{version['version']} (schema: {added}); "
        f"{RETRAIN} ran and registered {detail.get('version_ref')}"
    )
    say(f"   gate (exact match and keyword adherence): {detail.get('gate')}")
    deployed = bool(detail.get("deployed")) and not detail.get("rolled_back")
    say(f"   {'deployed at ' + ENDPOINT if deployed else 'not deployed: production stays'}")
    answers = _requests(server, scratch, options, say)
    kept = adherence([a for a, _ in answers], [k for _, k in answers])
    share = f"{kept.share:.0%}" if kept.share is not None else "–"
    note(
        f"{len(answers)} sellers' photos with keywords through POST /v1/endpoints/{ENDPOINT}"
        f"/predict: {kept.honoured} of {kept.given} keywords in the descriptions ({share})"
    )
    return {"retrain": retrain, "schema": schema, "adherence": kept.share, "deployed": deployed}


def _requests(
    server: ServerClient, scratch: Path, options: DemoOptions, say: Callable[[str], None]
) -> list[tuple[str, list[str]]]:
    """New photos, each with its seller's keywords, as JSON requests; prints each answer."""
    samples = generate(
        scratch / "keyword-requests", count=REQUESTS, seed=options.seed + 5, keyword_fraction=1.0
    ).path
    answers = []
    for row in rows_of(samples):
        keywords = parse_keywords(row["keywords"])
        image = base64.b64encode((samples / row["file_name"]).read_bytes()).decode()
        answer = server.post_json(
            f"/v1/endpoints/{ENDPOINT}/predict", {"image": image, "keywords": ", ".join(keywords)}
        )
        description = str(answer["description"])
        hits = honoured(description, keywords)
        shown = ", ".join(f"{k} {'✓' if h else '✗'}" for k, h in zip(keywords, hits, strict=True))
        say(f"   keywords {shown}: {description!r} conf {answer['confidence']:.2f}")
        answers.append((description, keywords))
    return answers
