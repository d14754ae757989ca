"""Seller keywords: parsing, adherence by hand, the generator's keyword column, the gate's
further metrics, and feedback that says a keyword was ignored (over real HTTP)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_monitoring_http import PREDICT, open_server, photo

from appliance.datasets.synthetic import BRANDS, CONDITIONS, SIZES, generate
from appliance.errors import InvalidInput
from appliance.recipes.spec import read_recipe
from appliance.tasks import get_task
from appliance.tasks.contract import Prediction
from appliance.tasks.keywords import (
    adherence,
    honoured,
    keywords_text,
    parse_keywords,
    prompt_words,
)

REF = "acme vintage red plain shoe size 42 on a white background"


def test_keywords_are_comma_separated_phrases_or_single_words() -> None:
    assert parse_keywords("Vintage,  size 42 , ,vintage") == ["vintage", "size 42"]
    assert parse_keywords("red car") == ["red", "car"]
    assert parse_keywords("") == parse_keywords(None) == []
    assert prompt_words("like new, acme") == "like new acme"
    # As one field again (a capture, a batch row's list): the same phrases read back.
    assert keywords_text(["Vintage", "size  42"]) == "vintage, size 42"
    assert keywords_text(["size 42"]) == "size 42," and keywords_text("red car") == "red, car"
    for given in (["size 42"], ["like new", "acme"], "red car", ["x"]):
        assert parse_keywords(keywords_text(given)) == parse_keywords(given)


def test_adherence_by_hand_on_fixed_rows() -> None:
    # Every keyword there and in its place.
    assert honoured(REF, ["acme", "vintage", "size 42"], REF) == [True, True, True]
    # "size 42" moved before the product: misplaced against the reference; "acme" left out.
    moved = "vintage red plain shoe on a white background size 42"
    assert honoured(moved, ["acme", "vintage", "size 42"], REF) == [False, True, True]
    assert honoured("size 42 red plain shoe", ["size 42"], REF) == [False]
    assert honoured("red vintage plain shoe", ["vintage"], REF) == [False]
    # Part of a phrase is not the phrase; without a reference, presence alone.
    assert honoured("red plain shoe size 4", ["size 42"]) == [False]
    assert honoured("red vintage plain shoe", ["vintage"]) == [True]
    rows = [
        (REF, "acme, vintage, size 42", REF),  # 3 of 3
        ("vintage red plain shoe on a white background", "acme, vintage", REF),  # 1 of 2
        ("red plain mug on a grey background", None, "red plain mug on a grey background"),
    ]
    kept = adherence(*map(list, zip(*rows, strict=True)))
    assert (kept.given, kept.honoured, kept.share) == (5, 4, 0.8)
    assert adherence(["red mug"], [None]).share is None  # no keywords given: no figure


def test_the_generator_writes_keywords_the_photo_cannot_show(tmp_path: Path) -> None:
    plain = generate(tmp_path / "plain", count=40, seed=9, low_light_fraction=0.25).path
    summary = generate(tmp_path / "kw", count=40, seed=9, low_light_fraction=0.25,
                       keyword_fraction=0.5)  # fmt: skip
    assert summary.keyworded == 20
    rows = [json.loads(line) for line in (summary.path / "metadata.jsonl").read_text().splitlines()]
    before = [json.loads(line) for line in (plain / "metadata.jsonl").read_text().splitlines()]
    with_kw = [r for r in rows if "keywords" in r]
    assert len(with_kw) == 20
    known = {*BRANDS, *CONDITIONS, *(s for sizes in SIZES.values() for s in sizes)}
    for row, old in zip(rows, before, strict=True):
        # The photo is the same photo: keywords are what a seller knows, not what it shows.
        assert (summary.path / row["file_name"]).read_bytes() == (
            plain / old["file_name"]
        ).read_bytes()
        if "keywords" not in row:
            assert row == old
            continue
        keywords = parse_keywords(row["keywords"])
        assert 1 <= len(keywords) <= 2 and set(keywords) <= known
        assert all(k.split()[0] != "size" or row["category"] in SIZES for k in keywords)
        # The description is the old one with the keywords in their slots.
        assert adherence([row["text"]], [row["keywords"]], [row["text"]]).share == 1.0
        assert [w for w in row["text"].split() if w not in " ".join(keywords).split()] == old[
            "text"
        ].split()
    with pytest.raises(InvalidInput, match="keyword fraction"):
        generate(tmp_path / "bad", count=4, seed=0, keyword_fraction=1.5)


def test_the_task_scores_adherence_only_where_rows_give_keywords() -> None:
    task = get_task("image-to-text")
    rows = [
        {"text": REF, "keywords": "acme, size 42"},
        {"text": "red plain mug on a white background"},
    ]
    answers = [
        Prediction({"description": "acme red plain shoe on a white background"}, 0.9),
        Prediction({"description": "red plain mug on a white background"}, 0.9),
    ]
    scores = task.score(answers, rows)
    assert scores["keyword_adherence"] == 0.5
    assert "keyword_adherence" not in task.score(answers[1:], rows[1:])
    # A served request's keywords: commas kept, whitespace tidied, a long field refused.
    assert (
        task.decode({"image": photo(), "keywords": " Vintage ,size  42"}, _settings()).values[
            "keywords"
        ]
        == "vintage, size 42"
    )
    with pytest.raises(InvalidInput, match="200 characters"):
        task.decode({"image": photo(), "keywords": "x" * 201}, _settings())


def _settings():  # type: ignore[no-untyped-def]
    from appliance.settings import Settings

    return Settings()


def test_the_captioner_gate_checks_adherence_too(tmp_path: Path) -> None:
    gate = read_recipe(Path(__file__).resolve().parents[1] / "models" / "captioner").gate
    assert [c.metric for c in gate.checks] == ["exact_match", "keyword_adherence"]
    assert gate.also[0].worse_beyond_tolerance(0.85, 0.9)
    assert not gate.also[0].worse_beyond_tolerance(0.89, 0.9)
    folder = tmp_path / "recipe"
    folder.mkdir()
    (folder / "r.py").write_text("")
    (folder / "recipe.toml").write_text(
        'name = "r"\nmodule = "r.py"\n[gate]\nmetric = "m"\nalso = "keyword_adherence"\n'
    )
    with pytest.raises(InvalidInput, match=r"\[gate.also.METRIC\]"):
        read_recipe(folder)


def test_feedback_names_the_keywords_an_answer_ignored(tmp_path: Path) -> None:
    own = _colour_home(tmp_path)
    with open_server(own) as (services, client):
        answer = client.post(
            PREDICT, params={"keywords": "vintage, size 42"}, content=photo(),
            headers={"content-type": "image/png"},
        )  # fmt: skip
        assert answer.status_code == 200, answer.text
        pid = answer.json()["id"]
        said = client.post(
            f"/v1/predictions/{pid}/feedback", json={"rating": 2, "ignored_keywords": ["Size 42"]}
        )
        assert said.status_code == 201, said.text
        assert said.json()["ignored_keywords"] == ["size 42"]
        # A keyword the request never gave is refused, and nothing is stored.
        wrong = client.post(f"/v1/predictions/{pid}/feedback", json={"ignored_keywords": ["acme"]})
        assert wrong.status_code == 400 and "was given: vintage, size 42" in wrong.text
        report = client.get("/v1/workspaces/ads/monitoring/feedback").json()
        assert report["summary"]["count"] == 1 and report["summary"]["keywords_ignored"] == 1
        assert report["recent"][0]["ignored_keywords"] == ["size 42"]
        captured = services.registry.query("SELECT keywords FROM predictions WHERE id = ?", (pid,))
        assert captured[0]["keywords"] == "vintage, size 42"


def _colour_home(tmp_path: Path) -> Path:
    from test_monitoring_http import COLOUR

    from appliance.runs.launcher import start_run
    from appliance.services import Services
    from appliance.serving.options import DeployOptions
    from appliance.serving.service import Serving

    home = tmp_path / "home"
    with Services.open(home=home) as services:
        services.workspaces.create("ads")
        photos = generate(tmp_path / "photos", count=20, seed=4).path
        services.datasets.add("ads", "photos", photos)
        services.recipes.add("ads", COLOUR)
        run = start_run(services, "ads", "colour", "photos", {}).wait()
        assert run["status"] == "succeeded", run["error"]
        Serving(services).deploy("ads", "captions", "colour@1", DeployOptions(max_batch_size=8))
    return home


def test_the_monitor_counts_the_keywords_live_answers_honoured(tmp_path: Path) -> None:
    import base64

    from click.testing import CliRunner

    from appliance.cli import cli

    own = _colour_home(tmp_path)
    sent: list[tuple[str, str]] = []  # (keywords as sent, description answered)
    with open_server(own) as (_services, client):
        raw = client.post(PREDICT, params={"keywords": "Acme"}, content=photo(seed=1),
                          headers={"content-type": "image/png"})  # fmt: skip
        image = base64.b64encode(photo(seed=2)).decode()
        as_json = client.post(PREDICT, json={"image": image, "keywords": "vintage, size 42"})
        form = client.post(PREDICT, files={"image": ("a.png", photo(seed=3), "image/png")},
                           data={"keywords": "product, acme"})  # fmt: skip
        plain = client.post(PREDICT, content=photo(seed=4), headers={"content-type": "image/png"})
        for answer, given in (
            (raw, "acme"),
            (as_json, "vintage, size 42"),
            (form, "product, acme"),
        ):
            assert answer.status_code == 200, answer.text
            sent.append((given, answer.json()["description"]))
        assert plain.status_code == 200, plain.text  # no keywords: not counted
        infer = client.post("/v2/models/captions/infer", json={"inputs": [
            {"name": "image", "datatype": "BYTES", "shape": [1], "data": [image]},
            {"name": "keywords", "datatype": "BYTES", "shape": [1], "data": ["size 42,"]},
        ]})  # fmt: skip
        assert infer.status_code == 200, infer.text
        sent.append(("size 42,", infer.json()["outputs"][0]["data"][0]))
        # The colour model answers "<first word of the keywords> product".
        assert [d for _, d in sent] == [
            "acme product", "vintage, product", "product, product", "size product",
        ]  # fmt: skip
        # By hand: acme is there; "vintage," is not the word vintage, size 42 is absent;
        # product is there, acme not; "size 42" is one phrase (the trailing comma), absent.
        assert [honoured(d, parse_keywords(k)) for k, d in sent] == [
            [True], [False, False], [True, False], [False],
        ]  # fmt: skip
        pid = as_json.json()["id"]
        said = client.post(
            f"/v1/predictions/{pid}/feedback", json={"ignored_keywords": ["size 42"]}
        )
        assert said.status_code == 201, said.text
        rated = client.post(f"/v1/predictions/{raw.json()['id']}/feedback", json={"rating": 5})
        assert rated.status_code == 201, rated.text
        found = client.get("/v1/workspaces/ads/monitoring/summary", params={"endpoint": "captions"})
        assert found.status_code == 200, found.text
        (figures,) = found.json()["endpoints"]
        assert figures["predictions"] == 5
        assert figures["keywords"] == {
            "requests": 4, "given": 6, "honoured": 2, "adherence": 0.3333, "ignored_feedback": 1,
        }  # fmt: skip
    result = CliRunner().invoke(cli, ["--home", str(own), "monitor", "summary", "ads"])
    assert result.exit_code == 0, result.output
    lines = [line.strip() for line in result.output.splitlines()]
    assert "keywords     4 requests, 2 of 6 honoured (33%), 1 said ignored" in lines
    as_data = CliRunner().invoke(cli, ["--home", str(own), "monitor", "summary", "ads", "--json"])
    assert json.loads(as_data.output)["endpoints"][0]["keywords"]["honoured"] == 2


def test_the_monitor_summary_has_no_keyword_line_without_keywords(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from appliance.cli import cli

    own = _colour_home(tmp_path)
    with open_server(own) as (_services, client):
        answer = client.post(PREDICT, content=photo(), headers={"content-type": "image/png"})
        assert answer.status_code == 200, answer.text
        found = client.get("/v1/workspaces/ads/monitoring/summary").json()["endpoints"][0]
        assert found["keywords"] == {
            "requests": 0, "given": 0, "honoured": 0, "adherence": None, "ignored_feedback": 0,
        }  # fmt: skip
    result = CliRunner().invoke(cli, ["--home", str(own), "monitor", "summary", "ads"])
    assert result.exit_code == 0 and "predictions" in result.output
    assert "keywords" not in result.output
