"""The maturity report over hand-built registries (real SQLite through the services): a workspace
that does everything meets every indicator, an empty one is immature and each "no" says what is
missing, gaps turn a "yes" into a "partly" with the reason, the stage rule at its boundaries, and
unknown workspaces, bad windows and bad formats are refused by the CLI and over HTTP."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils
from click.testing import CliRunner
from serving_harness import running_server
from test_quality_estimate import ago, predictions

from appliance.access.actor import acting_as
from appliance.cli import cli
from appliance.events import record_event
from appliance.maturity import render
from appliance.maturity.observed import NO, PARTLY, YES, Indicator
from appliance.maturity.report import maturity_report
from appliance.maturity.stage import judge, stage_for
from appliance.monitoring import report as monitoring_report
from appliance.monitoring.dora import parse_time
from appliance.services import Services
from appliance.serving.options import DeployOptions

D1, D2 = (hashlib.sha256(name.encode()).hexdigest() for name in ("photos@1", "photos@2"))
IDS = [
    "versioned", "tracking", "gate", "cicd", "monitoring", "rollback", "serving",
    "iteration", "feedback", "deployments", "failures", "review", "retraining",
]  # fmt: skip


def build_mature(services: Services, workspace: str = "ads") -> dict[str, str]:
    """A workspace that shows every practice within the last 7 days: two dataset versions, two
    tracked runs whose versions carry lineage, a gate decision, a dataset watch → retrain (gate
    on, auto-deploy, post-deploy watch) that ran, two int8 deployments with lead times of 3 h and
    2 h, captured traffic with drift judged, 12 ratings, a reviewed and exported answer."""
    ws = services.workspaces.create(workspace)
    ws_id = ws["id"]

    def data(db: sqlite_utils.Database) -> None:
        db.table("datasets").insert(
            {"id": "ds1", "workspace_id": ws_id, "name": "photos", "created_at": ago(days=9)}
        )
        versions = ((1, D1, ago(days=6, hours=4)), (2, D2, ago(days=3, hours=2)))
        for number, digest, created in versions:
            db.table("dataset_versions").insert(
                {"digest": digest, "dataset_id": "ds1", "version": number, "file_count": 3,
                 "total_bytes": 10, "row_count": 3, "created_at": created}
            )  # fmt: skip

    services.registry.write(data)
    run1 = services.runs.create(
        workspace, recipe="captioner", params={"epochs": 2}, seed=0, code_hash="c0de",
        dataset_id="ds1", dataset_digest=D1,
    )  # fmt: skip
    run2 = services.runs.create(
        workspace, recipe="captioner", params={"epochs": 3}, seed=1, code_hash="c0de",
        dataset_id="ds1", dataset_digest=D2,
    )  # fmt: skip
    for run in (run1, run2):
        services.runs.log_metric(run["id"], "loss", 0.5, step=1)
        services.runs.set_status(run["id"], "succeeded")
    nightly = services.jobs.add(
        workspace, "nightly", "retrain", {"cron": "0 3 * * *"}, target="captioner",
        params={"recipe": "captioner", "dataset": "photos", "endpoint": "captions",
                "watch_s": 60},
    )  # fmt: skip
    watch = services.jobs.add(
        workspace, "photos-watch", "dataset_watch", {"interval_s": 600}, target="photos",
        params={"source": "/srv/photos", "retrain": "nightly"},
    )  # fmt: skip

    def write(db: sqlite_utils.Database) -> None:
        # The runs started 3 h and 1 h before their deploys: the lead times (from the earlier
        # of run and dataset version) are 3 h (v1, run first) and 2 h (v2, data first).
        db.execute(
            "UPDATE runs SET created_at = ? WHERE id = ?", [ago(days=6, hours=3), run1["id"]]
        )
        db.execute(
            "UPDATE runs SET created_at = ?, job_id = ?, cause = 'dataset:photos@2' WHERE id = ?",
            [ago(days=3, hours=1), nightly["id"], run2["id"]],
        )
        db.table("models").insert(
            {"id": "m1", "workspace_id": ws_id, "name": "captioner", "created_at": ago(days=6)}
        )
        for vid, number, run, digest in (("v1", 1, run1, D1), ("v2", 2, run2, D2)):
            db.table("model_versions").insert(
                {"id": vid, "model_id": "m1", "version": number, "path": f"models/{vid}",
                 "digest": vid, "size": 1, "run_id": run["id"], "dataset_id": "ds1",
                 "dataset_digest": digest, "created_at": ago(days=6)}
            )  # fmt: skip
        db.table("deployments").insert(
            {"id": "dep1", "workspace_id": ws_id, "endpoint": "captions",
             "model_version_id": "v2", "quantization": "int8", "created_at": ago(days=6),
             "updated_at": ago(days=3)}
        )  # fmt: skip
        events = [  # by ann, bob, and the retrain job on the box
            ("deployed", "captions", "v1", ago(days=6, hours=1), {}, "ann"),
            ("promoted", "captioner@production", "v2", ago(days=3, hours=0.5),
             {"metric": "exact_match", "forced": False, "version": 2}, "bob"),
            ("deployed", "captions", "v2", ago(days=3), {}, "local"),
        ]  # fmt: skip
        for kind, subject, vid, at, detail, actor in events:
            db.table("events").insert(
                {"workspace_id": ws_id, "kind": kind, "subject": subject,
                 "model_version_id": vid, "detail": json.dumps(detail), "created_at": at,
                 "actor": actor}
            )  # fmt: skip
        db.table("alerts").insert(
            {"workspace_id": ws_id, "endpoint": "captions", "rule": "drift_psi", "state": "ok",
             "value": 0.02, "threshold": 0.2, "since": ago(days=1), "updated_at": ago(minutes=5)}
        )  # fmt: skip
        for item, status, exported in (("r1", "corrected", "photos@3"), ("r2", "pending", None)):
            db.table("review_items").insert(
                {"id": item, "workspace_id": ws_id, "endpoint": "captions",
                 "prediction_id": f"captions-{item}", "reason": "uncertain", "kind": "image",
                 "answer_field": "text", "status": status, "exported_to": exported,
                 "created_at": ago(days=1)}
            )  # fmt: skip

    services.registry.write(write)
    services.jobs.finish(services.jobs.begin(watch["id"], "schedule"), "succeeded", changed=True)
    retrain_run = services.jobs.begin(nightly["id"], "dataset:photos@2")
    services.jobs.finish(retrain_run, "succeeded", run2["id"], deployed=True)
    ids = predictions(services, ws_id, "captions", "v2", [0.9] * 12, minutes_ago=20)
    for prediction_id in ids:
        services.predictions.add_feedback(prediction_id, rating=4)
    return {"ws_id": ws_id, "watch": watch["id"], "nightly": nightly["id"]}


def by_id(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {i["id"]: i for i in report["indicators"]}


def test_a_workspace_that_does_everything_is_mature(services: Services) -> None:
    build_mature(services)
    report = maturity_report(services, "ads", "7d")
    found = by_id(report)
    assert list(found) == IDS
    assert {i: found[i]["verdict"] for i in IDS} == dict.fromkeys(IDS, YES)
    assert report["stage"] | {"rule": ""} == {
        "name": "mature", "score": 1.0, "yes": 13, "partly": 0, "no": 0, "total": 13, "rule": "",
    }  # fmt: skip
    assert found["versioned"]["figures"] == {
        "datasets": 1, "dataset_versions": 2, "model_versions": 2, "with_lineage": 2,
    }  # fmt: skip
    assert found["cicd"]["evidence"] == (
        "dataset watch photos-watch → retrain nightly → gate → auto-deploy to captions:"
        " last ran just now, last deployed just now"
    )
    assert found["iteration"]["evidence"].startswith("median lead time 2.5 h")
    assert found["iteration"]["figures"]["lead_time_hours"] == pytest.approx(2.5, abs=0.01)
    assert found["feedback"]["evidence"] == "12 ratings in 7 d (mean rating 4)"
    assert found["deployments"]["figures"]["level"] == "high"  # 2 in 7 days
    assert (
        found["failures"]["evidence"] == "change failure rate 0%, no failed deployment to restore"
    )
    assert found["review"]["figures"] == {"queued": 2, "reviewed": 1, "exported": 1}
    assert found["rollback"]["figures"]["watching_jobs"] == ["nightly"]
    assert found["serving"]["figures"]["quantized"] == ["captions"]
    assert found["gate"]["figures"]["metrics"] == ["exact_match"]
    assert found["retraining"]["figures"]["causes"] == ["dataset"]
    assert found["monitoring"]["figures"] == {
        "predictions": 12, "rules_judged": ["drift_psi"], "alerts_fired": 0,
    }  # fmt: skip
    assert all(
        i["area"] == ("tech" if n < 7 else "process") for n, i in enumerate(report["indicators"])
    )


def test_its_dora_figures_are_the_monitor_dora_figures(services: Services) -> None:
    build_mature(services)
    report = maturity_report(services, "ads", "7d")
    monitored = monitoring_report.dora(services, "ads", parse_time(report["since"]))
    for key in ("deployments", "lead_time_hours", "change_failure_rate", "failures", "level"):
        assert report["dora"][key] == monitored[key], key
    trend = report["trends"]["dora"]
    assert report["trends"]["bucket"] == "day" and len(trend) == 7
    assert sum(p["deployments"] for p in trend) == 2
    assert sorted(p["lead_time_hours"] for p in trend if p["lead_time_hours"]) == pytest.approx(
        [2.0, 3.0], abs=0.01
    )


def test_the_report_names_who_deployed_promoted_and_approved(services: Services) -> None:
    built = build_mature(services)  # ann deployed v1, bob promoted v2, the job deployed v2
    v2 = {"id": "v2", "name": "captioner", "version": 2}
    with acting_as("cy"):  # redeployed by hand just now, through the deployment records
        services.deployments.record("ads", "captions", v2, DeployOptions())
    with acting_as("dee"):  # as `appliance job approve` records it, for dee's request
        services.registry.write(
            lambda db: record_event(
                db, built["ws_id"], "deploy_approved", "captions", version="captioner@2"
            )
        )
    report = maturity_report(services, "ads", "7d")
    found = by_id(report)
    deployments = found["deployments"]
    assert deployments["figures"]["deployed_by"] == {"ann": 1, "cy": 1, "local": 1}
    assert deployments["figures"]["approved_by"] == {"dee": 1}
    assert deployments["evidence"] == (
        "3 deployments in 7 d by ann (1), cy (1), local (1), approved by dee (1)"
        " (0.429 a day): DORA level high"
    )
    assert found["gate"]["figures"]["promoted_by"] == {"bob": 1}
    assert found["gate"]["evidence"].endswith("on exact_match; promoted by bob (1)")
    assert report["dora"]["authors"]["bob"] == {"deployments": 0, "promotions": 1, "approvals": 0}
    assert [(c["kind"], c["version"], c["actor"]) for c in report["dora"]["changes"]] == [
        ("deploy_approved", "captioner@2", "dee"),
        ("deployed", "captioner@2", "cy"),
        ("deployed", None, "local"),  # hand-written without the detail that names the version
        ("promoted", "captioner@2", "bob"),
        ("deployed", None, "ann"),
    ]
    people = (
        "ann: 1 deployment; bob: 1 promotion; cy: 1 deployment; dee: 1 approval;"
        " local: 1 deployment"
    )
    assert f"- changes by: {people}\n" in render.markdown(report)
    assert f"changes by: {people}\nstage rule:" in render.terminal(report)
    assert f'<p class="people">Changes by: {people}</p>' in render.html(report)
    with running_server(services, restore=False) as client:
        body = client.get("/v1/workspaces/ads/reports/maturity", params={"window": "7d"}).json()
    assert body["dora"]["authors"] == report["dora"]["authors"]
    assert body["dora"]["changes"] == report["dora"]["changes"]


def test_an_empty_workspace_is_immature_and_says_what_is_missing(services: Services) -> None:
    services.workspaces.create("empty")
    report = maturity_report(services, "empty")
    assert report["stage"]["name"] == "immature" and report["stage"]["score"] == 0
    for item in report["indicators"]:
        assert item["verdict"] == NO, item
        assert item["evidence"].startswith(("no ", "nothing ")), item["evidence"]
        assert ":" in item["evidence"], item["evidence"]  # "no X: how to get it"
    assert report["trends"]["bucket"] == "day" and len(report["trends"]["dora"]) == 30


def test_gaps_make_partly_verdicts_that_name_the_gap(services: Services) -> None:
    built = build_mature(services)
    services.jobs.set_enabled("ads", "photos-watch", False)

    def change(db: sqlite_utils.Database) -> None:
        db.execute(
            "UPDATE jobs SET params = json_set(params, '$.policy', 'approve') WHERE id = ?",
            [built["nightly"]],
        )
        db.execute("UPDATE deployments SET quantization = 'none'")
        db.execute("UPDATE review_items SET status = 'pending', exported_to = NULL")
        db.execute("UPDATE events SET detail = json_set(detail, '$.forced', json('true'))"
                   " WHERE kind = 'promoted'")  # fmt: skip

    services.registry.write(change)
    found = by_id(maturity_report(services, "ads", "7d"))
    assert found["cicd"]["verdict"] == PARTLY
    assert found["cicd"]["figures"]["missing"] == [
        "dataset watch photos-watch is paused", "it deploys only after approval",
    ]  # fmt: skip
    assert found["cicd"]["evidence"].endswith(
        ": dataset watch photos-watch is paused; it deploys only after approval"
    )
    assert found["serving"]["verdict"] == PARTLY and "0 quantized" in found["serving"]["evidence"]
    assert found["review"]["verdict"] == PARTLY
    # Forced promotions skip the gate; the retrain job still gates (gate on by default).
    assert found["gate"]["verdict"] == PARTLY
    assert "only forced promotions" in found["gate"]["evidence"]


def test_a_slow_and_failing_history(services: Services) -> None:
    build_mature(services)
    ws_id = services.workspaces.get("ads")["id"]

    def fail(db: sqlite_utils.Database) -> None:
        # v2's run and data now date from 5 days before its deploy: lead times 3 h and 120 h,
        # median 61.5 h (within a week: partly). v2 fails and is rolled back an hour and a half
        # later: 1 failure of 2 deployed (50 %), restored in 1.5 h.
        db.execute("UPDATE dataset_versions SET created_at = ? WHERE digest = ?", [ago(days=8), D2])
        db.table("events").insert(
            {"workspace_id": ws_id, "kind": "rolled_back", "subject": "captions",
             "model_version_id": "v1", "detail": "{}", "created_at": ago(days=2, hours=22.5)}
        )  # fmt: skip

    services.registry.write(fail)
    found = by_id(maturity_report(services, "ads", "7d"))
    assert found["iteration"]["verdict"] == PARTLY
    assert found["iteration"]["figures"]["lead_time_hours"] == pytest.approx(61.5, abs=0.01)
    assert found["failures"]["figures"]["change_failure_rate"] == 0.5
    assert found["failures"]["verdict"] == PARTLY  # restored fast, but fails too often
    assert "median time to restore 1.5 h" in found["failures"]["evidence"]


def _indicators(*verdicts: str) -> list[Indicator]:
    return [Indicator(f"i{n}", "tech", f"i{n}", v, "e") for n, v in enumerate(verdicts)]


@pytest.mark.parametrize(
    ("verdicts", "stage", "score"),
    [
        ((NO, NO, NO, NO), "immature", 0.0),
        ((PARTLY, NO, NO, NO), "immature", 0.125),
        ((YES, NO, NO, NO), "developing", 0.25),  # the floor itself reaches the stage
        ((PARTLY, PARTLY, NO, NO), "developing", 0.25),
        ((YES, PARTLY, NO, NO), "developing", 0.375),
        ((YES, YES, NO, NO), "defined", 0.5),
        ((YES, YES, PARTLY, NO), "defined", 0.625),
        ((YES, YES, YES, NO), "mature", 0.75),
        ((YES, YES, YES, YES), "mature", 1.0),
        ((YES,) * 3 + (NO,) * 9, "developing", 0.25),  # 3 of 12: exactly a quarter
        ((YES,) * 3 + (NO,) * 10, "immature", 0.2308),  # 3 of 13: just under
    ],
)
def test_the_stage_rule_at_its_boundaries(
    verdicts: tuple[str, ...], stage: str, score: float
) -> None:
    judged = judge(_indicators(*verdicts))
    assert (judged.name, judged.score) == (stage, score)
    assert judged.yes + judged.partly + judged.no == judged.total == len(verdicts)


def test_the_stage_rule_refuses_what_it_cannot_judge() -> None:
    assert stage_for(0.2499) == "immature" and stage_for(0.7499) == "defined"
    with pytest.raises(ValueError, match="unknown verdict"):
        judge(_indicators(YES, "maybe"))
    with pytest.raises(ValueError, match="no indicator"):
        judge([])


# -- the CLI -----------------------------------------------------------------------------------


def test_cli_outputs(services: Services, tmp_path: Path) -> None:
    build_mature(services)
    runner = CliRunner()
    table = runner.invoke(cli, ["report", "maturity", "ads", "--window", "7d"])
    assert table.exit_code == 0, table.output
    assert table.output.startswith("ads · last 7d · stage: mature (score 1.00")
    assert "✔ yes     Automated rollback" in table.output
    data = runner.invoke(cli, ["report", "maturity", "ads", "--window", "7d", "--json"])
    assert json.loads(data.output)["stage"]["name"] == "mature"
    md = runner.invoke(cli, ["report", "maturity", "ads", "--markdown"])
    assert md.exit_code == 0 and "| indicator | verdict | evidence |" in md.output
    assert "| Automated rollback | yes |" in md.output
    page = tmp_path / "maturity.html"
    written = runner.invoke(cli, ["report", "maturity", "ads", "--html", str(page)])
    assert written.exit_code == 0 and f"wrote {page}" in written.output
    assert page.read_text().startswith("<!DOCTYPE html>")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope"], "error: no workspace 'nope' (see `appliance workspace list`)"),
        (["ads", "--window", "3x"], "error: window '3x' is not a duration: use e.g. 90s, 30m, 1h, 7d or 2w"),
        (["ads", "--html", "/no/such/folder/m.html"], "error: cannot write /no/such/folder/m.html: the folder /no/such/folder does not exist"),
    ],
)  # fmt: skip
def test_cli_refusals_are_one_line(services: Services, args: list[str], message: str) -> None:
    services.workspaces.create("ads")
    result = CliRunner().invoke(cli, ["report", "maturity", *args])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [message]


def test_cli_json_and_markdown_together_is_a_usage_error(services: Services) -> None:
    services.workspaces.create("ads")
    result = CliRunner().invoke(cli, ["report", "maturity", "ads", "--json", "--markdown"])
    assert result.exit_code == 2 and "choose one of --json and --markdown" in result.output


def test_a_failed_html_write_keeps_the_earlier_page(services: Services, tmp_path: Path) -> None:
    services.workspaces.create("ads")
    page = tmp_path / "page.html"
    page.write_text("earlier")
    (tmp_path / ".page.html.partial").mkdir()  # where the new page would be written first
    result = CliRunner().invoke(cli, ["report", "maturity", "ads", "--html", str(page)])
    assert result.exit_code == 1
    assert result.output.strip() == f"error: cannot write {page}: Is a directory"
    assert page.read_text() == "earlier"


# -- HTTP --------------------------------------------------------------------------------------


def test_http_formats_and_refusals(services: Services) -> None:
    build_mature(services)
    url = "/v1/workspaces/ads/reports/maturity"
    with running_server(services, restore=False) as client:
        answer = client.get(url, params={"window": "7d"})
        assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
        body = answer.json()
        assert body["stage"]["name"] == "mature" and [i["id"] for i in body["indicators"]] == IDS
        md = client.get(url, params={"format": "markdown"})
        assert md.status_code == 200 and md.headers["content-type"].startswith("text/markdown")
        assert md.text.startswith("# Maturity of ads")
        page = client.get(url, params={"format": "html"})
        assert page.headers["content-type"].startswith("text/html") and "<svg" in page.text
        missing = client.get("/v1/workspaces/nope/reports/maturity")
        assert missing.status_code == 404
        assert missing.json() == {"error": "no workspace 'nope' (see `appliance workspace list`)"}
        bad = client.get(url, params={"window": "3x"})
        assert bad.status_code == 400 and "window '3x' is not a duration" in bad.json()["error"]
        pdf = client.get(url, params={"format": "pdf"})
        assert pdf.status_code == 400
        assert pdf.json()["error"] == "format must be one of json, markdown, html, got 'pdf'"
        schema = client.get("/schema/openapi.json").json()
    documented = schema["components"]["schemas"]["Maturity"]["properties"]
    assert {"stage", "indicators", "dora", "trends"} <= set(documented)
