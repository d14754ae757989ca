"""The review loop against a real registry and files: uncertain answers are kept at once, low-rated
ones while their input is held, within the disk budget (oldest pending first, counted) and
retention; kept photos carry no metadata of the upload; reviews happen once; exports add one
row per reviewed item to a new dataset version, never twice; the CLI. Over real HTTP with the
tiny colour recipe: a correction submitted to the API is a row of the next dataset version, and
bad requests are 4xx with a message and change nothing."""

from __future__ import annotations

import io
import json
import os
import random
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from PIL import Image
from prometheus_client import CollectorRegistry, generate_latest
from serving_harness import running_server, wait_ready
from test_tui import model_folder

from appliance.cli import cli
from appliance.datasets.ad_text import generate as generate_ads
from appliance.datasets.synthetic import ProductAttributes, darken, generate, render
from appliance.monitoring.capture import Capture
from appliance.registry import utcnow
from appliance.review.export import export
from appliance.review.keeper import Keeper, ReviewCollector
from appliance.runs.launcher import start_run
from appliance.services import Services
from appliance.serving.observer import CaptureRecord
from appliance.serving.options import DeployOptions
from appliance.serving.service import Serving
from appliance.settings import Settings

COLOUR = Path(__file__).parent / "recipes" / "colour"
PREDICT = "/v1/endpoints/captions/predict"


# -- without a model: captures as serving hands them over ------------------------------------


def noise(seed: int, size: int = 48) -> Image.Image:
    """A photo that PNG cannot squeeze much: every kept one costs about the same bytes."""
    return Image.frombytes("RGB", (size, size), random.Random(seed).randbytes(size * size * 3))


def image_record(i: int, uncertain: bool = True, **values: Any) -> CaptureRecord:
    return CaptureRecord(
        id=f"p{i:05d}", workspace="ads", endpoint="captions", model_version_id=None,
        created_at=utcnow(), latency_ms=1.0, description=f"answer {i}",
        output={"description": f"answer {i}"}, confidence=0.4 if uncertain else 0.99,
        warnings=["uncertain"] if uncertain else [],
        values={"image": noise(i), "keywords": None, **values},
    )  # fmt: skip


def text_record(i: int, label: str = "furniture") -> CaptureRecord:
    return CaptureRecord(
        id=f"t{i:05d}", workspace="ads", endpoint="router", model_version_id=None,
        created_at=utcnow(), latency_ms=1.0, description=label,
        output={"label": label, "scores": {label: 0.4}}, confidence=0.4, warnings=["uncertain"],
        values={"text": f"oak table number {i}, barely used", "title": "table"},
    )  # fmt: skip


class Loop:
    """A capture thread with the review keeper on it, as the server's monitor wires them."""

    def __init__(self, services: Services):
        self.services = services
        self.keeper = Keeper(services)
        self.capture = Capture(services.registry, services.settings, written=self.keeper.written)
        services.predictions.feedback_listeners.append(self.keeper.rated)
        self.reviews = self.keeper.reviews

    def serve(self, *records: CaptureRecord) -> None:
        for record in records:
            assert self.capture.record(record)
        self.capture.flush()

    def close(self) -> None:
        self.capture.close()
        self.services.predictions.feedback_listeners.remove(self.keeper.rated)


@pytest.fixture
def loop(services: Services) -> Iterator[Loop]:
    services.workspaces.create("ads")
    opened = Loop(services)
    yield opened
    opened.close()


def opened(home: Path, **settings: Any) -> Services:
    return Services(Settings.load(home=home, **settings))


def test_an_uncertain_answer_is_kept_at_once_as_a_png_of_its_pixels(loop: Loop) -> None:
    loop.serve(image_record(1, keywords="brand new"), image_record(2, uncertain=False))
    [item] = loop.reviews.list("ads", "captions")
    assert (item["prediction_id"], item["reason"], item["kind"]) == ("p00001", "uncertain", "image")
    assert item["answer"] == "answer 1" and item["answer_field"] == "text"
    assert item["fields"] == {"keywords": "brand new"} and item["confidence"] == 0.4
    path = loop.reviews.input_path(item)
    assert (
        path == loop.services.settings.home / "review" / item["workspace_id"] / f"{item['id']}.png"
    )
    with Image.open(path) as kept:
        assert kept.format == "PNG" and kept.size == (48, 48)
        assert kept.convert("RGB").tobytes() == noise(1).tobytes()
    assert item["bytes"] == path.stat().st_size
    assert loop.keeper.queued == 1 and loop.keeper.holding == 1  # the sure one is only held


def test_an_unfamiliar_answer_is_kept_however_sure(loop: Loop) -> None:
    unfamiliar = image_record(4, uncertain=False)
    unfamiliar.unfamiliar = True
    loop.serve(unfamiliar, image_record(5, uncertain=False))
    [item] = loop.reviews.list("ads", "captions")
    assert (item["prediction_id"], item["reason"]) == ("p00004", "unfamiliar")
    assert item["confidence"] == 0.99 and item["warnings"] == []
    assert loop.keeper.queued == 1 and loop.keeper.holding == 1


def test_a_kept_photo_has_no_metadata_of_the_upload(loop: Loop) -> None:
    upload = io.BytesIO()
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"  # Make
    exif[0x8825] = {1: "N"}  # a GPS block
    noise(3).save(upload, format="JPEG", exif=exif, icc_profile=b"\0" * 128)
    decoded = Image.open(io.BytesIO(upload.getvalue()))
    assert "exif" in decoded.info and "icc_profile" in decoded.info  # what the upload carried
    loop.serve(image_record(3, image=decoded))
    data, media = loop.reviews.input(loop.reviews.list("ads")[0]["id"])
    assert media == "image/png"
    with Image.open(io.BytesIO(data)) as kept:
        assert not set(kept.info) & {"exif", "icc_profile", "dpi"} and not kept.getexif()
    assert b"SecretCam" not in data


def test_a_low_rating_soon_after_queues_the_held_input(loop: Loop) -> None:
    loop.serve(*(image_record(i, uncertain=False) for i in range(4)))
    predictions = loop.services.predictions
    predictions.add_feedback("p00000", rating=1)
    predictions.add_feedback("p00001", rating=5)
    predictions.add_feedback("p00002", thumb="down")
    predictions.add_feedback("p00003", rating=3)
    items = loop.reviews.list("ads", "captions")
    assert sorted((i["prediction_id"], i["reason"]) for i in items) == [
        ("p00000", "low_rating"), ("p00002", "low_rating"),
    ]  # fmt: skip
    predictions.add_feedback("p00000", rating=1)  # rated low again: one item per prediction
    assert len(loop.reviews.list("ads")) == 2 and loop.keeper.queued == 2


def test_the_recent_inputs_are_bounded_oldest_first(isolated_home: Path) -> None:
    with opened(isolated_home, review_recent_inputs=2) as services:
        services.workspaces.create("ads")
        loop = Loop(services)
        loop.serve(*(image_record(i, uncertain=False) for i in range(3)))
        assert loop.keeper.holding == 2
        services.predictions.add_feedback("p00000", rating=1)  # let go: nothing to keep
        services.predictions.add_feedback("p00002", rating=1)
        assert [i["prediction_id"] for i in loop.reviews.list("ads")] == ["p00002"]
        loop.close()
    pixels = 48 * 48 * 3
    with opened(isolated_home, review_recent_max_bytes=pixels * 2) as services:
        loop = Loop(services)
        loop.serve(*(image_record(i, uncertain=False) for i in range(10, 15)))
        assert loop.keeper.holding == 2  # the memory cap, before the count
        loop.close()


def test_nothing_is_kept_with_capture_off_or_no_budget(isolated_home: Path) -> None:
    for settings in ({"capture_enabled": False}, {"review_max_bytes": 0}):
        with opened(isolated_home, **settings) as services:
            services.workspaces.ensure("ads")
            loop = Loop(services)
            for record in (image_record(1), image_record(2, uncertain=False)):
                loop.capture.record(record)
            loop.capture.flush()
            assert loop.reviews.list("ads") == [] and loop.keeper.holding == 0
            loop.close()
    assert not (isolated_home / "review").exists()


def test_the_disk_budget_trims_the_oldest_pending_items_and_counts_them(
    isolated_home: Path,
) -> None:
    size = _png_size()
    with opened(isolated_home, review_max_bytes=int(size * 2.5)) as services:
        services.workspaces.create("ads")
        loop = Loop(services)
        loop.serve(image_record(0))
        first = loop.reviews.list("ads")[0]
        loop.reviews.review(first["id"], "accept")  # a person's work is never trimmed
        loop.serve(*(image_record(i) for i in range(1, 6)))
        left = loop.reviews.list("ads", status="all", limit=100)
        assert sorted(i["prediction_id"] for i in left) == ["p00000", "p00005"]
        assert loop.keeper.trimmed == 4 and loop.keeper.queued == 6
        folder = isolated_home / "review" / first["workspace_id"]
        assert sorted(p.name for p in folder.iterdir()) == sorted(f"{i['id']}.png" for i in left)
        metrics = CollectorRegistry()
        metrics.register(ReviewCollector(loop.keeper))
        text = generate_latest(metrics).decode()
        assert "appliance_review_trimmed_total 4.0" in text
        assert "appliance_review_queued_total 6.0" in text
        loop.close()


def _png_size() -> int:
    from appliance.review.candidate import png

    return len(png(noise(0)))


def test_retention_prunes_old_items_with_their_files_and_sweeps_strays(loop: Loop) -> None:
    loop.serve(image_record(1), image_record(2))
    old, new = loop.reviews.list("ads", oldest_first=True)
    loop.services.registry.write(
        lambda db: db.execute(
            "UPDATE review_items SET created_at = '2020-01-01T00:00:00.000000Z' WHERE id = ?",
            [old["id"]],
        )
    )
    folder = loop.reviews.folder / old["workspace_id"]
    stray, fresh = folder / "gone.png", folder / ".writing.png"
    stray.write_bytes(b"x")
    fresh.write_bytes(b"x")
    os.utime(stray, (time.time() - 7200, time.time() - 7200))
    gone_workspace = loop.reviews.folder / "000000000000"
    gone_workspace.mkdir()
    os.utime(gone_workspace, (time.time() - 7200, time.time() - 7200))
    assert loop.reviews.prune(retention_days=30) == 1
    assert [i["id"] for i in loop.reviews.list("ads")] == [new["id"]]
    assert not loop.reviews.input_path(old).exists()  # type: ignore[union-attr]
    assert not stray.exists() and fresh.exists() and not gone_workspace.exists()
    assert loop.reviews.input_path(new).is_file()  # type: ignore[union-attr]


def test_the_monitor_keeps_reviews_and_prunes_them_with_the_captures(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    from appliance.monitoring.monitor import Monitor

    # A box booted five minutes ago (the monotonic clock counts from boot): the first round
    # still prunes (it once waited until the clock passed the prune interval, an hour).
    real, offset = time.monotonic, time.monotonic() - 300.0
    monkeypatch.setattr(time, "monotonic", lambda: real() - offset)
    services.workspaces.create("ads")
    monitor = Monitor(services)
    try:
        monitor.observe(image_record(1))
        monitor.capture.flush()
        [item] = monitor.review.reviews.list("ads")
        services.registry.write(
            lambda db: db.execute(
                "UPDATE review_items SET created_at = '2020-01-01T00:00:00.000000Z'"
            ).close()
        )
        monitor.tick()  # its first round prunes
        assert monitor.review.reviews.list("ads", status="all") == []
        assert not monitor.review.reviews.input_path(item).exists()  # type: ignore[union-attr]
    finally:
        monitor.close()
    assert services.predictions.feedback_listeners == []


def test_a_review_happens_once_and_is_checked_before_anything_is_written(loop: Loop) -> None:
    from appliance.errors import Conflict, InvalidInput, NotFound, TooLarge

    loop.serve(image_record(1), image_record(2))
    first, second = (i["id"] for i in loop.reviews.list("ads", oldest_first=True))
    for action, text, error in [
        ("correct", "", InvalidInput), ("correct", "   ", InvalidInput),
        ("correct", None, InvalidInput), ("correct", "x" * 2001, TooLarge),
        ("approve", None, InvalidInput), ("accept", "a text", InvalidInput),
    ]:  # fmt: skip
        with pytest.raises(error):
            loop.reviews.review(first, action, text)
    with pytest.raises(NotFound):
        loop.reviews.review("nope", "accept")
    assert loop.reviews.get(first)["status"] == "pending"
    corrected = loop.reviews.review(first, "correct", "  a red mug  ", by="ann")
    assert (corrected["status"], corrected["correction"], corrected["reviewed_by"]) == (
        "corrected", "a red mug", "ann",
    )  # fmt: skip
    with pytest.raises(Conflict):
        loop.reviews.review(first, "accept")
    dismissed = loop.reviews.review(second, "dismiss")
    assert not dismissed["has_input"] and dismissed["bytes"] == 0
    with pytest.raises(NotFound, match="no longer kept"):
        loop.reviews.input(second)
    assert loop.reviews.counts("ads") == {
        "pending": 0, "accepted": 0, "corrected": 1, "dismissed": 1, "exported": 0,
    }  # fmt: skip


def test_an_export_adds_one_row_per_reviewed_item_to_a_new_version_once(
    loop: Loop, tmp_path: Path
) -> None:
    datasets = loop.services.datasets
    datasets.add("ads", "photos", generate(tmp_path / "photos", count=6, seed=1).path)
    loop.serve(*(image_record(i, keywords="used") for i in range(3)))
    a, b, c = (i["id"] for i in loop.reviews.list("ads", oldest_first=True))
    loop.reviews.review(a, "accept")
    loop.reviews.review(b, "correct", "a blue lamp")
    kept = loop.reviews.input_path(loop.reviews.get(b))
    png_b = kept.read_bytes()  # type: ignore[union-attr]

    done = export(loop.services, "ads", "captions", "photos")
    assert (done["dataset"], done["version"], sorted(done["exported"])) == (
        "photos",
        2,
        sorted([a, b]),
    )
    v1, v2 = datasets.get("ads", "photos@1"), datasets.get("ads", "photos@2")
    rows = datasets.rows(v2)
    assert rows[: len(datasets.rows(v1))] == datasets.rows(v1)
    assert rows[-2:] == [
        {"text": "answer 0", "keywords": "used", "source_prediction": "p00000",
         "file_name": f"review/{a}.png"},
        {"text": "a blue lamp", "keywords": "used", "source_prediction": "p00001",
         "file_name": f"review/{b}.png"},
    ]  # fmt: skip
    assert v2["parent_digest"] == v1["digest"]
    assert set(datasets.manifest(v2)) == set(datasets.manifest(v1)) | {
        f"review/{a}.png", f"review/{b}.png",
    }  # fmt: skip
    assert (datasets.materialize(v2) / f"review/{b}.png").read_bytes() == png_b
    assert loop.reviews.get(b)["exported_to"] == "photos@2" and not kept.exists()  # type: ignore[union-attr]
    assert list(loop.reviews.folder.glob(".export-*")) == []

    again = export(loop.services, "ads", "captions", "photos")
    assert again["version"] is None and "nothing to export" in again["message"]
    loop.reviews.review(c, "accept")
    assert export(loop.services, "ads", "captions", "photos")["version"] == 3
    assert len(datasets.versions("ads", "photos")) == 3
    assert sum("source_prediction" in r for r in datasets.rows(datasets.get("ads", "photos"))) == 3


def test_an_export_leaves_out_a_photo_that_no_longer_reads(loop: Loop, tmp_path: Path) -> None:
    loop.services.datasets.add("ads", "photos", generate(tmp_path / "photos", count=4, seed=1).path)
    loop.serve(image_record(1), image_record(2))
    a, b = (i["id"] for i in loop.reviews.list("ads", oldest_first=True))
    for item in (a, b):
        loop.reviews.review(item, "accept")
    loop.reviews.input_path(loop.reviews.get(b)).write_bytes(b"")  # type: ignore[union-attr]
    done = export(loop.services, "ads", "captions", "photos")
    assert (done["version"], done["exported"], done["skipped"]) == (2, [a], [b])
    assert loop.reviews.get(b)["exported_to"] is None


def test_an_export_never_adds_a_prediction_twice_and_refuses_a_mismatch(
    loop: Loop, tmp_path: Path
) -> None:
    from appliance.errors import InvalidInput

    datasets = loop.services.datasets
    datasets.add("ads", "photos", generate(tmp_path / "photos", count=4, seed=1).path)
    datasets.add("ads", "texts", generate_ads(tmp_path / "ads", count=20, seed=1).path)
    loop.serve(image_record(1))
    item = loop.reviews.list("ads")[0]
    loop.reviews.review(item["id"], "accept")
    with pytest.raises(InvalidInput, match="holds text rows"):
        export(loop.services, "ads", "captions", "texts")
    with pytest.raises(InvalidInput, match="not a version"):
        export(loop.services, "ads", "captions", "photos@1")
    with pytest.raises(InvalidInput, match="no dataset lineage"):
        export(loop.services, "ads", "captions")
    assert len(datasets.versions("ads", "photos")) == 1
    assert loop.reviews.get(item["id"])["exported_to"] is None
    # An export whose items were already made rows (a crash before they were marked) adds none.
    assert export(loop.services, "ads", "captions", "photos")["version"] == 2
    loop.services.registry.write(
        lambda db: db.execute("UPDATE review_items SET exported_to = NULL").close()
    )
    again = export(loop.services, "ads", "captions", "photos")
    assert again["version"] is None and "already rows of photos@2" in again["message"]
    assert len(datasets.versions("ads", "photos")) == 2


def test_text_answers_become_text_rows_with_labels_the_model_knows(
    loop: Loop, tmp_path: Path
) -> None:
    from appliance.errors import InvalidInput

    services = loop.services
    texts = services.datasets.add(
        "ads", "texts", generate_ads(tmp_path / "ads", count=20, seed=1).path
    )
    version = services.models.register(
        "ads", "router", model_folder(tmp_path), task="text-classification",
        info={"labels": ["furniture", "vehicles"]},
        dataset_id=texts.version["dataset_id"], dataset_digest=texts.version["digest"],
    )  # fmt: skip
    services.deployments.record("ads", "router", version, DeployOptions())
    record = text_record(1)
    record.model_version_id = version["id"]
    loop.serve(record)
    item = loop.reviews.list("ads", "router")[0]
    assert (item["kind"], item["answer_field"], item["fields"]) == (
        "text",
        "label",
        {"title": "table"},
    )
    assert loop.reviews.input(item["id"]) == (
        b"oak table number 1, barely used",
        "text/plain; charset=utf-8",
    )
    with pytest.raises(InvalidInput, match="furniture, vehicles"):
        loop.reviews.review(item["id"], "correct", "furnitur")
    loop.reviews.review(item["id"], "correct", "vehicles")
    done = export(services, "ads", "router")  # the deployed version's dataset
    assert (done["dataset"], done["version"]) == ("texts", 2)
    assert services.datasets.rows(services.datasets.get("ads", "texts"))[-1] == {
        "text": "oak table number 1, barely used", "label": "vehicles", "title": "table",
        "source_prediction": "t00001",
    }  # fmt: skip


# -- the CLI ---------------------------------------------------------------------------------


def invoke(*args: str, input: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), input=input)
    return result.exit_code, result.stdout, result.stderr


def test_the_cli_lists_reviews_one_by_one_and_exports(loop: Loop, tmp_path: Path) -> None:
    loop.services.datasets.add("ads", "photos", generate(tmp_path / "photos", count=4, seed=1).path)
    loop.serve(*(image_record(i) for i in range(4)))
    ids = [i["id"] for i in loop.reviews.list("ads", oldest_first=True)]

    code, out, _ = invoke("review", "ads", "captions")
    assert code == 0 and "4 pending" in out and all(i in out for i in ids)
    code, out, _ = invoke("review", "ads", "captions", "--json")
    assert code == 0 and json.loads(out)["counts"]["pending"] == 4

    # One by one, oldest first: correct the first, skip the second, accept the third, quit.
    code, out, err = invoke(
        "review", "ads", "captions", "--next", input="c\na green shoe\ns\na\nq\n"
    )
    assert code == 0, err
    assert "[1/4]" in out and "answer      answer 0" in out and str(loop.reviews.folder) in out
    assert f"corrected {ids[0]}: a green shoe" in out and f"accepted {ids[2]}" in out
    assert "reviewed 2 of 4" in out
    assert [loop.reviews.get(i)["status"] for i in ids] == [
        "corrected",
        "pending",
        "accepted",
        "pending",
    ]
    assert loop.reviews.get(ids[0])["reviewed_by"].startswith("cli")

    code, out, _ = invoke("review", "ads", "captions", "--correct", ids[1], "a red mug")
    assert code == 0 and out.strip() == f"corrected {ids[1]}: a red mug"
    code, out, _ = invoke("review", "ads", "captions", "--dismiss", ids[3])
    assert code == 0 and out.strip() == f"dismissed {ids[3]}"
    code, out, _ = invoke("review", "ads", "captions", "--next")
    assert code == 0 and "nothing to review" in out

    code, out, err = invoke("review", "ads", "captions", "--export", "photos")
    assert code == 0, err
    assert "exported to photos@2: 3 new rows" in out
    code, out, _ = invoke("review", "ads", "captions", "--export", "photos")
    assert code == 0 and "nothing to export" in out


def test_cli_errors_are_one_line_with_a_non_zero_exit(loop: Loop) -> None:
    loop.serve(image_record(1))
    item = loop.reviews.list("ads")[0]["id"]
    for args, message in [
        (("--accept", "nope"), "no review item 'nope'"),
        (("--correct", item, ""), "a correction needs its text"),
        (("--correct", item, "x" * 2001), "at most 2000 characters"),
    ]:
        code, out, err = invoke("review", "ads", "captions", *args)
        assert code == 1 and err.startswith("error: ") and message in err, err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err + out
    code, _, err = invoke("review", "ads", "elsewhere", "--accept", item)
    assert code == 1 and "not in ads/elsewhere" in err
    code, out, _ = invoke("review", "ads", "captions", "--export")
    assert code == 0 and "nothing to export" in out
    code, _, err = invoke("review", "ads", "captions", "--accept", item, "--dismiss", item)
    assert code == 2 and "give one of" in err
    code, _, err = invoke("review", "nowhere", "captions")
    assert code == 1 and "no workspace 'nowhere'" in err
    assert loop.reviews.get(item)["status"] == "pending"
    code, _, _ = invoke("review", "ads", "captions", "--accept", item)
    code, _, err = invoke("review", "ads", "captions", "--accept", item)
    assert code == 1 and "already accepted" in err
    code, _, err = invoke("review", "ads", "captions", "--export")
    assert code == 1 and "no dataset lineage: name the dataset" in err


# -- over real HTTP, with the tiny colour recipe ----------------------------------------------


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("review-home")
    with Services.open(home=home) as services:
        services.workspaces.create("ads")
        photos = generate(home.parent / "review-photos", count=16, seed=6).path
        services.datasets.add("ads", "photos", photos)
        services.recipes.add("ads", COLOUR)
        run = start_run(services, "ads", "colour", "photos", {}).wait()
        assert run["status"] == "succeeded", run["error"]
        Serving(services).deploy("ads", "captions", "colour@1", DeployOptions())
    return home


@pytest.fixture
def server(home: Path) -> Iterator[tuple[Services, httpx.Client]]:
    with Services.open(home=home) as services, running_server(services) as client:
        wait_ready(client)
        yield services, client


def photo(lighting: str = "normal", seed: int = 0, fmt: str = "PNG") -> bytes:
    rng = random.Random(seed)
    image = render(ProductAttributes("mug", "red", "plain", "white", lighting), size=64, rng=rng)
    if lighting == "low":
        image = darken(image, rng)
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


def predict(client: httpx.Client, data: bytes) -> dict[str, Any]:
    answer = client.post(PREDICT, content=data, headers={"content-type": "image/png"})
    assert answer.status_code == 200, answer.text
    return answer.json()


def queued(client: httpx.Client, prediction_id: str, status: str = "pending") -> dict[str, Any]:
    listed = client.get(
        "/v1/workspaces/ads/review", params={"endpoint": "captions", "status": status}
    )
    assert listed.status_code == 200, listed.text
    [item] = [i for i in listed.json()["items"] if i["prediction_id"] == prediction_id]
    return item


def test_a_correction_over_http_is_a_row_of_the_next_dataset_version(
    server: tuple[Services, httpx.Client],
) -> None:
    services, client = server
    dark = predict(client, photo("low", seed=1))
    sure = predict(client, photo(seed=2))
    assert "uncertain" in dark["warnings"] and "uncertain" not in sure["warnings"]
    item = queued(client, dark["id"])
    assert (item["reason"], item["answer"], item["kind"]) == (
        "uncertain",
        dark["description"],
        "image",
    )
    assert item["input_url"] == f"/v1/review/{item['id']}/input"
    assert not any(
        i["prediction_id"] == sure["id"]
        for i in client.get("/v1/workspaces/ads/review").json()["items"]
    )
    kept = client.get(item["input_url"])
    assert kept.status_code == 200 and kept.headers["content-type"] == "image/png"
    with Image.open(io.BytesIO(kept.content)) as image:
        assert image.size == (64, 64)

    corrected = client.post(
        f"/v1/review/{item['id']}", json={"action": "correct", "text": "dark red mug"}
    )
    assert corrected.status_code == 200, corrected.text
    assert corrected.json()["status"] == "corrected" and corrected.json()["reviewed_by"] == "http"
    before = services.datasets.get("ads", "photos")
    exported = client.post("/v1/workspaces/ads/review/export", json={"endpoint": "captions"})
    assert exported.status_code == 200, exported.text
    answer = exported.json()
    assert (answer["dataset"], answer["version"]) == ("photos", before["version"] + 1)
    assert item["id"] in answer["exported"]
    after = services.datasets.get("ads", "photos")
    row = next(r for r in services.datasets.rows(after) if r.get("source_prediction") == dark["id"])
    assert row == {"file_name": f"review/{item['id']}.png", "text": "dark red mug",
                   "source_prediction": dark["id"]}  # fmt: skip
    assert (services.datasets.materialize(after) / row["file_name"]).read_bytes() == kept.content
    shown = client.get(f"/v1/review/{item['id']}").json()
    assert shown["exported_to"] == f"photos@{after['version']}" and shown["input_url"] is None
    assert client.get(item["input_url"]).status_code == 404

    again = client.post("/v1/workspaces/ads/review/export", json={"endpoint": "captions"})
    assert again.status_code == 200 and again.json()["version"] is None
    assert "nothing to export" in again.json()["message"]
    assert services.datasets.get("ads", "photos")["version"] == after["version"]
    metrics = client.get("/metrics").text
    assert (
        "appliance_review_queued_total" in metrics and "appliance_review_trimmed_total" in metrics
    )

    # What a retrain job does with the dataset's name: it trains on the version with the row.
    run = start_run(services, "ads", "colour", "photos", {}).wait()
    assert run["status"] == "succeeded", run["error"]
    assert run["dataset_digest"] == after["digest"]


def test_a_low_rating_over_http_queues_the_answer(server: tuple[Services, httpx.Client]) -> None:
    _, client = server
    low, good = predict(client, photo(seed=3)), predict(client, photo(seed=4))
    for answer, rating in ((low, 1), (good, 5)):
        stored = client.post(f"/v1/predictions/{answer['id']}/feedback", json={"rating": rating})
        assert stored.status_code == 201
    item = queued(client, low["id"])
    assert item["reason"] == "low_rating" and item["confidence"] == low["confidence"]
    items = client.get(
        "/v1/workspaces/ads/review", params={"endpoint": "", "status": "all", "limit": 1000}
    ).json()
    assert low["id"] in {i["prediction_id"] for i in items["items"]} and items["endpoint"] is None
    assert good["id"] not in {i["prediction_id"] for i in items["items"]}
    assert client.post(f"/v1/review/{item['id']}", json={"action": "dismiss"}).status_code == 200


def test_bad_review_requests_are_4xx_with_a_message_and_change_nothing(
    server: tuple[Services, httpx.Client],
) -> None:
    services, client = server
    dark = predict(client, photo("low", seed=7))
    item = queued(client, dark["id"])
    url = f"/v1/review/{item['id']}"
    versions = len(services.datasets.versions("ads", "photos"))
    huge = "x" * (10 * 1024 * 1024)
    for request, status, message in [
        (lambda: client.post("/v1/review/nope", json={"action": "accept"}), 404, "no review item"),
        (lambda: client.post(url, json={"action": "correct", "text": ""}), 400, "needs its text"),
        (lambda: client.post(url, json={"action": "correct"}), 400, "needs its text"),
        (lambda: client.post(url, json={"action": "correct", "text": "x" * 2001}), 413, "2000"),
        (lambda: client.post(url, json={"action": "correct", "text": huge}), 413, "byte limit"),
        (lambda: client.post(url, json={"action": "approve"}), 400, "accept, correct or dismiss"),
        (lambda: client.post(url, json={"action": "accept", "by": "me"}), 400, "`by`"),
        (lambda: client.post(url, json={"action": 3}), 400, "Expected `str`"),
        (lambda: client.post(url, content=b"{not json", headers=JSON), 400, ""),
        (lambda: client.post(url, content=b'{"action": "accept"}',
                             headers={"content-type": "text/plain"}), 415, "application/json"),
        (lambda: client.post(url, data={"action": "accept"}), 415, "content type"),
        (lambda: client.post(url, content=b'{"action": "accept"}'), 415, "'none'"),
        (lambda: client.post("/v1/workspaces/ads/review/export", content=b'{"endpoint": "captions"}',
                             headers={"content-type": "text/plain"}), 415, "application/json"),
        (lambda: client.post("/v1/workspaces/ads/review/export",
                             json={"endpoint": "captions", "dataset": "photos@1"}), 400, "not a version"),
        (lambda: client.post("/v1/workspaces/nowhere/review/export", json={"endpoint": "captions"}),
         404, "no workspace"),
        (lambda: client.get("/v1/workspaces/ads/review", params={"status": "new"}), 400, "status"),
        (lambda: client.get("/v1/workspaces/ads/review", params={"limit": 0}), 400, "limit"),
        (lambda: client.get("/v1/review/nope/input"), 404, "no review item"),
    ]:  # fmt: skip
        answer = request()
        assert answer.status_code == status, (status, answer.text[:300])
        error = answer.json()["error"]
        assert message in error, error
    assert client.get(url).json()["status"] == "pending"
    assert len(services.datasets.versions("ads", "photos")) == versions
    assert client.post(url, json={"action": "accept"}).status_code == 200
    for action in ({"action": "accept"}, {"action": "correct", "text": "a mug"}):
        twice = client.post(url, json=action)
        assert twice.status_code == 409 and "already accepted" in twice.json()["error"]


JSON = {"content-type": "application/json"}


def test_with_a_token_every_review_route_needs_it(home: Path) -> None:
    """The queue serves what users sent: its reads need the token too."""
    with Services.open(home=home, token="s3cret") as services, running_server(services) as client:
        wait_ready(client)
        client.headers["authorization"] = "Bearer s3cret"
        dark = predict(client, photo("low", seed=9))
        del client.headers["authorization"]
        routes = [
            ("GET", "/v1/workspaces/ads/review", None),
            ("GET", "/v1/review/nope", None),
            ("GET", "/v1/review/nope/input", None),
            ("POST", "/v1/review/nope", {"action": "accept"}),
            ("POST", "/v1/workspaces/ads/review/export", {"endpoint": "captions"}),
        ]
        for method, path, body in routes:
            refused = client.request(method, path, json=body)
            assert refused.status_code == 401 and "token" in refused.json()["error"], path
        signed = {"authorization": "Bearer s3cret"}
        listed = client.get("/v1/workspaces/ads/review", headers=signed)
        assert listed.status_code == 200
        [item] = [i for i in listed.json()["items"] if i["prediction_id"] == dark["id"]]
        assert client.get(item["input_url"], headers=signed).status_code == 200
        assert (
            client.get(item["input_url"], headers={"authorization": "Bearer no"}).status_code == 401
        )


def test_a_watched_folder_s_next_version_keeps_the_reviewed_rows(
    loop: Loop, tmp_path: Path
) -> None:
    """An export adds to the dataset, not to the folder a dataset_watch versions: when that
    folder changes, its next version still holds every reviewed row, with its image."""
    from appliance.review.carry import with_reviewed_rows

    datasets = loop.services.datasets
    folder = generate(tmp_path / "photos", count=6, seed=1).path
    datasets.add("ads", "photos", folder)
    loop.serve(image_record(0), image_record(1))
    a, b = (i["id"] for i in loop.reviews.list("ads", oldest_first=True))
    loop.reviews.review(a, "correct", "a blue lamp")
    loop.reviews.review(b, "accept")
    assert export(loop.services, "ads", "captions", "photos")["version"] == 2
    before = (folder / "metadata.jsonl").read_bytes()
    with with_reviewed_rows(loop.services, "ads", "photos", folder) as unchanged:
        assert datasets.add("ads", "photos", unchanged).version["version"] == 2  # the same
    assert (folder / "metadata.jsonl").read_bytes() == before  # the folder is never written
    generate(tmp_path / "more", count=2, seed=9)  # the folder grows: two more photos
    for path in (tmp_path / "more").iterdir():
        if path.suffix == ".png":
            shutil.copyfile(path, folder / f"more-{path.name}")
    with (folder / "metadata.jsonl").open("a") as metadata:
        for line in (tmp_path / "more" / "metadata.jsonl").read_text().splitlines():
            row = json.loads(line)
            metadata.write(json.dumps({**row, "file_name": f"more-{row['file_name']}"}) + "\n")
    with with_reviewed_rows(loop.services, "ads", "photos", folder) as staged:
        assert staged != folder
        v3 = datasets.add("ads", "photos", staged).version
    rows = datasets.rows(v3)
    assert v3["version"] == 3 and len(rows) == 6 + 2 + 2
    assert {r["text"] for r in rows if "source_prediction" in r} == {"a blue lamp", "answer 1"}
    assert {f"review/{a}.png", f"review/{b}.png"} <= set(datasets.manifest(v3))
    assert not staged.exists()
