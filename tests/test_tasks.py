"""The task registry: built-in tasks by name, third-party ones through the `appliance.tasks`
entry point group (a real distribution's metadata on sys.path), and the image-to-text contract
on plain bytes and dicts."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from appliance import tasks
from appliance.errors import InvalidInput, UnsupportedMedia
from appliance.settings import Settings
from appliance.tasks import Prediction, get_task, task_names

PLUGIN = """
from appliance.tasks import Field, PredictInput, Prediction


class Shout:
    name = "shout"
    noun = "text"
    inputs = (Field("text", "BYTES", "What to shout.", True),)
    outputs = (Field("text", "BYTES", "Louder."),)
    features = ("length",)
    hint = 'send JSON {"text": "..."}'

    def from_json(self, item, where):
        return {"text": item["text"]}

    def decode(self, raw, settings):
        return PredictInput({"text": raw["text"]}, {"length": float(len(raw["text"]))})
"""


@pytest.fixture
def plugin(tmp_path: Path) -> Iterator[None]:
    """An installed distribution `shout-task` whose entry point names the task class."""
    (tmp_path / "shout_task.py").write_text(PLUGIN)
    info = tmp_path / "shout_task-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: shout-task\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[appliance.tasks]\nshout = shout_task:Shout\n")
    sys.path.insert(0, str(tmp_path))
    tasks._known.cache_clear()
    get_task.cache_clear()
    yield
    sys.path.remove(str(tmp_path))
    sys.modules.pop("shout_task", None)
    tasks._known.cache_clear()
    get_task.cache_clear()


def test_a_builtin_task_by_name_and_an_unknown_name_says_which_exist() -> None:
    task = get_task("image-to-text")
    assert task is get_task("image-to-text")  # one instance per process
    assert [f.name for f in task.inputs] == ["image", "keywords"]
    with pytest.raises(InvalidInput, match=r"no task 'nope' \(known: .*image-to-text"):
        get_task("nope")


def test_a_third_party_task_comes_through_its_entry_point(plugin: None) -> None:
    assert "shout" in task_names()
    shout = get_task("shout")
    item = shout.decode(shout.from_json({"text": "hey"}, "the body"), Settings())
    assert item.values == {"text": "hey"} and item.features == {"length": 3.0}


def test_a_plugin_cannot_replace_a_builtin_task(plugin: None) -> None:
    assert type(get_task("image-to-text")).__name__ == "ImageToText"


def png(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), colour).save(buffer, "PNG")
    return buffer.getvalue()


def test_image_to_text_reads_decodes_warns_and_encodes_on_plain_values() -> None:
    task, settings = get_task("image-to-text"), Settings()
    raw = task.from_raw(png((10, 10, 10)), {"keywords": " red,  mug "})
    item = task.decode(raw, settings)
    assert item.values["keywords"] == "red, mug" and item.values["image"].size == (32, 32)
    assert set(item.features) == set(task.features)
    unsure = Prediction({"description": "a mug"}, 0.5)
    # Uncalibrated: below low_light_confidence is uncertain, and a dark photo says so too.
    assert task.warnings(item, unsure, settings) == ["uncertain", "low_light"]
    assert task.warnings(item, Prediction({"description": "a mug"}, 0.99), settings) == []
    # Calibrated: the version's own threshold decides, unless settings override it.
    sure = Prediction({"description": "a mug"}, 0.5, uncertain=False)
    assert task.warnings(item, sure, settings) == []
    assert task.warnings(item, sure, Settings(uncertain_confidence=0.6)) == [
        "uncertain", "low_light",
    ]  # fmt: skip
    bright = task.decode(task.from_raw(png((250, 250, 250)), {}), settings)
    assert task.warnings(bright, unsure, settings) == ["uncertain"]
    assert task.answer(unsure) == {"description": "a mug"}
    assert task.capture(item, None) == {"keywords": "red, mug", "description": None}
    assert [t["name"] for t in task.tensors([unsure])] == ["description", "confidence"]
    with pytest.raises(UnsupportedMedia):
        task.decode({"image": b"not an image"}, settings)
    with pytest.raises(InvalidInput, match="instances\\[2\\]: 'image' is not valid base64"):
        task.from_json({"image": "***"}, "instances[2]")


def test_the_words_drift_watches_are_the_same_for_a_live_input_and_a_training_row() -> None:
    text = get_task("text-classification")
    item = text.decode(
        text.from_json({"text": " Red mug. ", "title": "Mug"}, "the body"), Settings()
    )
    row = {"id": "ad-1", "label": "mug", "title": "Mug", "text": "Red mug."}
    assert text.words(item.values) == text.words(row) == "Mug\nRed mug."
    assert text.words({"text": "Red mug."}) == "Red mug."
    image = get_task("image-to-text")
    photo = image.decode(image.from_raw(png((200, 0, 0)), {"keywords": "ikea, used"}), Settings())
    assert image.words(photo.values) == "ikea used"
    assert image.words({"file_name": "a.png", "text": "a red mug"}) == ""  # the answer is no input
    assert image.words({"file_name": "a.png", "keywords": ["ikea", "used"]}) == "ikea used"
