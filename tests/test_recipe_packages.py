"""A recipe folder imports as a package of its own: a copy and its original, whose sibling
modules share a file name, each run their own code in one process, loaded and served over HTTP."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from serving_harness import running_server, wait_ready

from appliance.datasets.synthetic import generate
from appliance.recipes.catalog import copy_recipe, load_module
from appliance.recipes.spec import read_recipe
from appliance.runs.launcher import start_run
from appliance.services import Services
from appliance.serving.options import DeployOptions
from appliance.serving.service import Serving

COLOUR = Path(__file__).parent / "recipes" / "colour"

# The colour recipe, answering with the word of its sibling colour_words.py, imported relatively.
TWIN = '''"""The colour recipe, saying its sibling's word instead of the one it learnt."""

from .colour import evaluate, train
from .colour import load as load_colour
from .colour_words import WORD

__all__ = ["WORD", "evaluate", "load", "train"]


def load(model_dir, device="cpu", quantization="none"):
    predictor = load_colour(model_dir, device, quantization)
    predictor.first_word = WORD
    return predictor
'''


def _twin(folder: Path, word: str, name: str = "twin") -> Path:
    folder.mkdir(parents=True)
    shutil.copy(COLOUR / "colour.py", folder / "colour.py")
    toml = (COLOUR / "recipe.toml").read_text()
    toml = toml.replace('name = "colour"', f'name = "{name}"')
    (folder / "recipe.toml").write_text(toml.replace('module = "colour.py"', 'module = "twin.py"'))
    (folder / "twin.py").write_text(TWIN)
    _say(folder, word)
    return folder


def _say(folder: Path, word: str) -> None:
    (folder / "colour_words.py").write_text(f'WORD = "{word}"\n')


def test_two_folders_of_one_recipe_name_load_their_own_siblings(tmp_path: Path) -> None:
    first = read_recipe(_twin(tmp_path / "first", "alpha"))
    second_folder = _twin(tmp_path / "second", "beta")
    # An __init__.py is optional; when there is one, it is the package.
    (second_folder / "__init__.py").write_text("from .colour_words import WORD as PACKAGE_WORD\n")
    second = read_recipe(second_folder)
    assert first.name == second.name == "twin"

    a, b = load_module(first), load_module(second)
    assert (a.WORD, b.WORD) == ("alpha", "beta")
    assert a.__name__ != b.__name__
    assert a.__name__.startswith("appliance_recipe_twin_") and a.__name__.endswith(".twin")
    assert sys.modules[b.__package__].PACKAGE_WORD == "beta"
    assert load_module(first) is a and load_module(read_recipe(first.folder)) is a
    assert str(first.folder) not in sys.path and str(second.folder) not in sys.path
    assert "colour_words" not in sys.modules and "twin" not in sys.modules


def test_a_recipe_changed_on_disk_loads_as_new_code(tmp_path: Path) -> None:
    folder = _twin(tmp_path / "twin", "alpha")
    before = load_module(read_recipe(folder))
    _say(folder, "changed")
    after = load_module(read_recipe(folder))
    assert after is not before and after.__name__ != before.__name__
    assert (before.WORD, after.WORD) == ("alpha", "changed")  # a loaded model keeps its code


def test_a_copy_and_its_original_serve_side_by_side(services: Services, tmp_path: Path) -> None:
    original = _twin(tmp_path / "twin", "alpha")
    copy = copy_recipe(read_recipe(original), tmp_path / "twin-copy")  # as `appliance new` does
    _say(copy.folder, "beta")
    services.workspaces.create("ads")
    photos = generate(tmp_path / "photos", count=20, seed=6, size=32).path
    services.datasets.add("ads", "photos", photos)
    for folder in (original, copy.folder):
        name = services.recipes.add("ads", folder).name
        run = start_run(services, "ads", name, "photos", {}).wait()
        assert run["status"] == "succeeded", run["error"]
    serving = Serving(services)
    try:
        serving.deploy("ads", "original", "twin@1", DeployOptions())
        serving.deploy("ads", "copy", "twin-copy@1", DeployOptions())
    finally:
        serving.close()

    image = next(photos.glob("*.png")).read_bytes()
    with running_server(services) as client:  # restores both endpoints in this process
        wait_ready(client)
        for endpoint, word in (("original", "alpha"), ("copy", "beta"), ("original", "alpha")):
            answer = client.post(
                f"/v1/endpoints/{endpoint}/predict", content=image,
                headers={"content-type": "image/png"},
            )  # fmt: skip
            assert answer.status_code == 200, answer.text
            assert answer.json()["description"] == f"{word} product"
