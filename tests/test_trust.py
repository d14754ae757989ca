"""Calibration (appliance/trust/): a run's version is calibrated on its held-out rows and their
shifts by the runtime that serves it, stores its calibrator and reference embeddings, and serves
calibrated confidences with an uncertain warning and its reason."""

from __future__ import annotations

import base64
import io
import json
import random
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from serving_harness import running_server, wait_ready

from appliance.cli import cli
from appliance.datasets.synthetic import ProductAttributes, darken, generate, render
from appliance.models.describe import calibration_lines
from appliance.runs.launcher import start_run
from appliance.services import Services
from appliance.serving.options import DeployOptions
from appliance.serving.service import Serving
from appliance.tasks import Prediction, get_task
from appliance.trust import calibration as cal
from appliance.trust import store
from appliance.trust.apply import Trust
from appliance.trust.fit import fit
from appliance.trust.measure import Measured, Outcome, measure

COLOUR = Path(__file__).parent / "recipes" / "colour"


@pytest.fixture
def colour(services: Services, tmp_path: Path) -> dict:
    """colour@1, a deliberately overconfident model: it always says the commonest first word
    (right about one time in eight) with a confidence of 1.0 on any bright photo."""
    photos = generate(tmp_path / "photos", count=240, seed=7).path
    # Descriptions of the colour model's own kind ("red product"), so that it is right
    # exactly when the photo's colour is the commonest one.
    metadata = photos / "metadata.jsonl"
    rows = [json.loads(line) for line in metadata.read_text().splitlines()]
    metadata.write_text("".join(
        json.dumps({**r, "text": f"{r['text'].split()[0]} product"}) + "\n" for r in rows
    ))  # fmt: skip
    services.workspaces.create("ads")
    services.datasets.add("ads", "photos", photos)
    services.recipes.add("ads", COLOUR)
    run = start_run(services, "ads", "colour", "photos", {}).wait()
    assert run["status"] == "succeeded", run["error"]
    version = services.models.by_run(run["id"])
    assert version is not None
    return version


def test_a_run_calibrates_its_version_and_serving_answers_the_calibrated_chance(
    services: Services, colour: dict
) -> None:
    metrics = colour["metrics"]
    # Raw: confidence ~1.0 for answers right ~1 time in 8; calibrated: close to the truth.
    assert metrics["ece_raw"] > 0.5 and metrics["ece"] < metrics["ece_raw"] / 4
    assert 0.0 <= metrics["uncertain_recall"] <= 1.0
    stored = store.load(services.registry, colour["id"])
    assert stored is not None
    trust, reference = stored
    assert trust["signal"] == "confidence" and reference is None  # no signals, no embeddings
    assert trust["rows"]["shifted"] == trust["rows"]["held_out"] >= 20

    Serving(services).deploy("ads", "captions", "colour@1", DeployOptions(max_batch_size=4))
    with running_server(services) as client:
        wait_ready(client)
        body = {"image": base64.b64encode(_png("normal")).decode()}
        answer = client.post("/v1/endpoints/captions/predict", json=body).json()
    accuracy = trust["metrics"]["heldout_accuracy"]
    assert abs(answer["confidence"] - accuracy) < 0.25  # ~ the share it gets right, not 1.0
    assert "uncertain" in answer["warnings"]
    assert "check it before using it" in answer["reasons"]["uncertain"]
    assert f"{answer['confidence']:.0%}" in answer["reasons"]["uncertain"]

    shown = CliRunner().invoke(cli, ["model", "show", "ads", "colour@1"])
    assert shown.exit_code == 0, shown.output
    assert "calibration: confidence by" in shown.output and "reliability" in shown.output


def test_calibrate_measures_a_version_again_and_says_what_it_kept(
    services: Services, colour: dict
) -> None:
    result = CliRunner().invoke(cli, ["model", "calibrate", "ads", "colour@1", "--json"])
    assert result.exit_code == 0, result.output
    assert '"kept": "plain"' in result.output and '"dataset": "photos@1"' in result.output
    missing = CliRunner().invoke(cli, ["model", "calibrate", "ads", "colour@9"])
    assert missing.exit_code != 0 and "Traceback" not in missing.output


def test_measure_gives_a_hugging_face_classifier_signals_and_embeddings(
    tiny_model: Path, tmp_path: Path
) -> None:
    from appliance.runtimes.huggingface.detect import detect
    from appliance.runtimes.huggingface.runtime import HuggingFaceRuntime

    task = get_task("text-classification")
    runtime = HuggingFaceRuntime(tiny_model, detect(tiny_model), DeployOptions(), task)
    runtime.load()
    labels = sorted(detect(tiny_model).labels or ["a", "b"])
    rows = [{"text": f"ad number {i} for a {labels[i % 2]}", "label": labels[i % 2]}
            for i in range(12)]  # fmt: skip
    measured = measure(runtime.predict, task, tmp_path, rows[:8], rows[8:])
    runtime.unload()
    assert {o.shift for o in measured.outcomes} == {"", *task.shifts}
    assert set(measured.outcomes[0].signals) == {"max_prob", "margin", "entropy"}
    assert measured.reference is not None and measured.reference.shape[0] == 8
    assert len(measured.outcomes[0].embedding) == measured.reference.shape[1]


def test_the_distance_makes_an_input_unlike_the_training_data_uncertain(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A decoder as sure on far inputs as on near ones, but wrong on them: only the distance
    can tell them apart. (Here the held-out rows are nearly separable by the signal alone, so
    the distance calibrations lose held-out Brier against the plain one: any is let through,
    to test what a distance calibration does once kept.)"""
    monkeypatch.setattr("appliance.trust.fit.HELD_OUT_TOLERANCE", (10.0, 1.0))
    rng = np.random.default_rng(0)
    reference = rng.normal(0, 1, (300, 16)) + 5.0

    def outcomes(n: int, centre: float, accuracy: float, shift: str) -> list[Outcome]:
        embeddings = rng.normal(0, 1, (n, 16)) + centre
        right = rng.random(n) < accuracy
        # Near the training data the decoder knows when it errs; far from it, it never does.
        unsure = rng.uniform(0.6, 0.95, n) if centre == 5.0 else rng.uniform(0.8, 0.97, n)
        sure = np.where(right, rng.uniform(0.8, 0.97, n), unsure)
        return [Outcome({"mean_prob": float(s)}, float(s), e.tolist(), bool(r), shift)
                for s, e, r in zip(sure, embeddings, right, strict=True)]  # fmt: skip

    held = outcomes(200, 5.0, 0.95, "")
    shifted = [o for kind, centre in (("dark", -3.0), ("blur", 1.0), ("noise", -1.0))
               for o in outcomes(70, centre, 0.1, kind)]  # fmt: skip
    fitted = fit(Measured(held + shifted, reference))
    trust = fitted.trust
    assert trust["kept"].startswith("distance@")
    assert trust["metrics"]["ece_shifted"] < trust["judged"]["plain"]["shifted"]["ece"]
    served = Trust(trust, fitted.reference)
    near, far = outcomes(50, 5.0, 1, ""), outcomes(50, -2.0, 1, "")
    answers = served.apply([Prediction({}, o.confidence, o.signals, o.embedding)
                            for o in near + far])  # fmt: skip
    near_conf = np.mean([a.confidence for a in answers[:50]])
    far_conf = np.mean([a.confidence for a in answers[50:]])
    assert near_conf > 0.8 and far_conf < 0.4
    assert sum(bool(a.uncertain) for a in answers[50:]) >= 45
    assert sum(bool(a.uncertain) for a in answers[:50]) <= 20


def test_an_input_farther_than_the_held_out_rows_is_unfamiliar_whatever_calibration_won() -> None:
    """Without shifted rows the plain calibration wins, and the distance still marks an input
    farther from the training rows than 99% of the held-out rows as unfamiliar (the review
    queue keeps those); a version fitted before this was measured marks none."""
    rng = np.random.default_rng(2)
    reference = rng.normal(0, 1, (300, 16)) + 5.0

    def predictions(n: int, centre: float) -> list[Prediction]:
        embeddings = rng.normal(0, 1, (n, 16)) + centre
        sure = rng.uniform(0.6, 0.99, n)
        return [Prediction({}, float(c), {"mean_prob": float(c)}, e.tolist())
                for c, e in zip(sure, embeddings, strict=True)]  # fmt: skip

    held = [Outcome(p.signals, p.confidence, p.embedding, bool(rng.random() < p.confidence), "")
            for p in predictions(200, 5.0)]  # fmt: skip
    fitted = fit(Measured(held, reference))
    trust = fitted.trust
    assert trust["kept"] == "plain" and trust["distance"]["unfamiliar"] > 1.0
    far_text = f"unfamiliar beyond distance {trust['distance']['unfamiliar']:.2f}"
    assert any(line.strip().startswith(far_text) for line in calibration_lines(trust))
    served = Trust(trust, fitted.reference)
    near, far = served.apply(predictions(100, 5.0)), served.apply(predictions(50, 0.0))
    assert sum(bool(a.unfamiliar) for a in near) <= 5 and all(a.unfamiliar for a in far)
    assert {a.unfamiliar for a in near} <= {True, False}  # measured for every one
    older = {**trust, "distance": None}  # fitted before `unfamiliar` was measured
    assert [a.unfamiliar for a in Trust(older, fitted.reference).apply(far)] == [None] * 50


def test_a_calibration_survives_the_registry_as_it_was_fitted(services: Services) -> None:
    rng = np.random.default_rng(1)
    reference = rng.normal(0, 1, (40, 8)).astype(np.float32)
    held = [
        Outcome(
            {"mean_prob": float(p)},
            float(p),
            (reference[i % 40] + 0.1).tolist(),
            bool(rng.random() < p),
            "",
        )
        for i, p in enumerate(rng.uniform(0.3, 1, 120))
    ]
    fitted = fit(Measured(held, reference))
    services.workspaces.create("ws")
    version = services.models.register("ws", "m", _folder(services.settings.home / "m"))
    store.save(services.registry, version["id"], fitted)
    trust, loaded = store.load(services.registry, version["id"]) or ({}, None)
    assert trust == fitted.trust
    predictions = [Prediction({}, o.confidence, o.signals, o.embedding) for o in held]
    again = Trust(trust, loaded).apply(predictions)
    first = Trust(fitted.trust, fitted.reference).apply(predictions)
    assert [a.confidence for a in again] == pytest.approx([a.confidence for a in first], abs=1e-3)
    # Calibrated on these rows, it is close to calibrated on them (out of fold, as reported).
    correct = [o.correct for o in held]
    assert cal.ece([a.confidence for a in again], correct) < 0.12


def _png(lighting: str) -> bytes:
    rng = random.Random(3)
    image = render(ProductAttributes("mug", "red", "striped", "white", lighting), size=64, rng=rng)
    image = darken(image, rng) if lighting == "low" else image
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _folder(path: Path) -> Path:
    from transformers import GPT2Config, GPT2LMHeadModel

    GPT2LMHeadModel(GPT2Config(vocab_size=8, n_positions=4, n_embd=4, n_layer=1, n_head=1)
                    ).save_pretrained(path, safe_serialization=True)  # fmt: skip
    Image.new("RGB", (1, 1)).save(path / "unused.png")
    return path
