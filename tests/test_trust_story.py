"""The seed's warning, on a real captioner: the demo's v1 (the captioner recipe's defaults on
2,000 generated photos, trained without low-light augmentation) is calibrated by its run, and
served as the demo serves it (int8 on CPU) to photos it has not seen. Its uncertain warning
fires on most of its wrong low-light answers and on few of its right answers, and the
label-free estimate (the mean calibrated confidence) falls with the low-light photos and stays
near the share of right answers of a stream that is half low light.

Slow (about 3 minutes on 2 cores, most of it the training): `make test-slow`. The fast demo
test trains a model too small to show any of this (every answer about equally unsure)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from appliance.datasets.synthetic import generate
from appliance.runs.launcher import start_run
from appliance.runtimes.choose import runtime_for
from appliance.services import Services
from appliance.serving.options import DeployOptions
from appliance.tasks import get_task

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]


def answered(
    services: Services, version: dict, folder: Path
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each photo of `folder`: whether it was described exactly, whether it was warned
    uncertain, and its served (calibrated) confidence."""
    rows = [json.loads(line) for line in (folder / "metadata.jsonl").read_text().splitlines()]
    runtime = runtime_for(services, version, DeployOptions("int8", "cpu", 32, 0))
    task = get_task("image-to-text")
    inputs = [task.example(folder, row) for row in rows]
    runtime.load()
    try:
        answers = [a for start in range(0, len(inputs), 32)
                   for a in runtime.predict(inputs[start:start + 32])]  # fmt: skip
    finally:
        runtime.unload()
    right = np.array([task.correct(a, row) for a, row in zip(answers, rows, strict=True)])
    warned = np.array([bool(a.uncertain) for a in answers])
    return right, warned, np.array([a.confidence for a in answers])


def test_the_demos_v1_warns_on_its_wrong_low_light_answers_and_rarely_on_right_ones(
    services: Services, tmp_path: Path
) -> None:
    services.workspaces.create("ads")
    photos = generate(tmp_path / "photos", count=2000, seed=0, low_light_fraction=0.1).path
    services.datasets.add("ads", "photos", photos)
    run = start_run(services, "ads", "captioner", "photos", {"low_light_fraction": "0"}).wait()
    assert run["status"] == "succeeded", run["error"]
    version = services.models.by_run(run["id"])
    assert version is not None and version["metrics"]["exact_match_normal"] > 0.9
    normal = generate(tmp_path / "normal", count=200, seed=21).path
    low = generate(tmp_path / "low", count=120, seed=22, low_light_fraction=1.0).path
    n_right, n_warned, n_conf = answered(services, version, normal)
    l_right, l_warned, l_conf = answered(services, version, low)
    figures = (
        f"normal: {n_right.sum()}/{len(n_right)} right, warned {n_warned[~n_right].sum()} of the "
        f"wrong, {n_warned[n_right].sum()} of the right, mean confidence {n_conf.mean():.3f}; "
        f"low: {l_right.sum()}/{len(l_right)} right, warned {l_warned[~l_right].sum()} of the "
        f"wrong, {l_warned[l_right].sum()} of the right, mean confidence {l_conf.mean():.3f}"
    )
    print(figures)
    assert (~l_right).sum() >= 10, figures  # low light does hurt a model that never saw it
    # Most wrong low-light answers are warned (the word: more than half; the same
    # recipe and seed trained 19 of 27 on one 2-core Intel machine, 11 of 20 on an AMD one,
    # whose arithmetic trains another v1), and few right answers are, in either light.
    assert l_warned[~l_right].mean() > 0.5, figures
    right_warned = np.concatenate([n_warned[n_right], l_warned[l_right]])
    assert right_warned.mean() <= 0.2, figures
    # The estimate falls with the low light, and on a stream half in low light it is near the
    # share of right answers (item 3's ±0.07).
    assert l_conf.mean() < n_conf.mean() - 0.03, figures
    half = np.concatenate([n_right[: len(l_right)], l_right])
    estimate = np.concatenate([n_conf[: len(l_right)], l_conf]).mean()
    assert abs(estimate - half.mean()) <= 0.07, figures
