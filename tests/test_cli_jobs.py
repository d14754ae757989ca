"""Jobs as a user meets them: `appliance job …` against a real home (real SQLite), and the jobs
routes over real HTTP. Running and approving belong to the scheduler's own tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from serving_harness import running_server

from appliance.cli import cli
from appliance.errors import Conflict
from appliance.services import Services


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def ads(services: Services) -> Services:
    services.workspaces.create("ads")
    return services


RETRAIN = (
    "--kind",
    "retrain",
    "--target",
    "captioner",
    "--recipe",
    "colour",
    "--dataset",
    "photos",
)


@pytest.mark.parametrize(
    ("args", "said"),
    [
        ((*RETRAIN, "--every", "10m"), "job j added: retrain on captioner, every 10m"),
        ((*RETRAIN, "--every", "every 2h"), "job j added: retrain on captioner, every 2h"),
        ((*RETRAIN, "--every", "90"), "job j added: retrain on captioner, every 90s"),
        ((*RETRAIN, "--cron", "0 3 * * *"), "job j added: retrain on captioner, cron 0 3 * * *"),
        (("--kind", "dataset_watch", "--target", "photos", "--source", "/data/in", "--retrain", "nightly", "--every", "5m"),
         "job j added: dataset_watch on photos, every 5m"),
        (("--kind", "alert_trigger", "--target", "captions", "--retrain", "nightly", "--every", "1m"),
         "job j added: alert_trigger on captions, every 1m"),
        (("--kind", "batch_predict", "--target", "captions", "--source", "in", "--output", "out", "--cron", "30 1 * * 1-5"),
         "job j added: batch_predict on captions, cron 30 1 * * 1-5"),
        (("--kind", "housekeeping", "--every", "1d"), "job j added: housekeeping, every 1d"),
    ],
)  # fmt: skip
def test_add_each_kind_and_trigger(ads: Services, args: tuple[str, ...], said: str) -> None:
    code, out, err = invoke("job", "add", "ads", "j", *args)
    assert code == 0, err
    assert out.strip() == said


def test_add_stores_params(ads: Services) -> None:
    code, _, err = invoke(
        "job", "add", "ads", "nightly", *RETRAIN, "--cron", "0 3 * * *",
        "--endpoint", "captions", "--policy", "approve", "--watch", "5m",
        "--param", "epochs=3", "--param", "lr=0.5", "--param", "note=plain text",
        "--param", "tags=[\"a\", \"b\"]", "--param", "flag=true",
    )  # fmt: skip
    assert code == 0, err
    row = ads.jobs.get("ads", "nightly")
    assert row["trigger"] == {"cron": "0 3 * * *"}
    assert row["params"] == {
        "recipe": "colour", "dataset": "photos", "endpoint": "captions", "policy": "approve",
        "watch_s": 300, "epochs": 3, "lr": 0.5, "note": "plain text", "tags": ["a", "b"],
        "flag": True,
    }  # fmt: skip
    assert row["enabled"] is True


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--kind", "nope", "--every", "1m"), "unknown job kind 'nope'"),
        (("--kind", "retrain", "--recipe", "colour", "--dataset", "photos", "--every", "1m"), "needs a target"),
        (("--kind", "retrain", "--target", "m", "--recipe", "colour", "--every", "1m"), "parameter(s) dataset"),
        (("--kind", "batch_predict", "--target", "captions", "--every", "1m"), "parameter(s) source, output"),
        ((*RETRAIN, "--cron", "61 * * * *"), "cron expression '61 * * * *' is not valid"),
        ((*RETRAIN, "--cron", "* * *"), "is not valid"),
        ((*RETRAIN, "--every", "0m"), "neither 'every N[s|m|h|d]'"),
        ((*RETRAIN, "--every", "soon"), "neither 'every N[s|m|h|d]'"),
        ((*RETRAIN, "--every", "1m", "--watch", "a while"), "--watch 'a while' is not a duration"),
        ((*RETRAIN, "--every", "1m", "--param", "policy=\"sometimes\""), "policy must be one of"),
    ],
)  # fmt: skip
def test_add_refuses_bad_jobs_with_one_error_line(
    ads: Services, args: tuple[str, ...], message: str
) -> None:
    code, out, err = invoke("job", "add", "ads", "j", *args)
    assert code == 1 and out == ""
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert message in err
    assert ads.jobs.list("ads") == []


@pytest.mark.parametrize(
    "args",
    [
        (*RETRAIN,),  # no trigger
        (*RETRAIN, "--every", "1m", "--cron", "0 3 * * *"),
        (*RETRAIN, "--every", "1m", "--param", "noequals"),
        (*RETRAIN, "--every", "1m", "--param", "recipe=other"),  # also given as --recipe
        (*RETRAIN, "--every", "1m", "--policy", "sometimes"),
        ("--every", "1m"),  # no --kind
    ],
)
def test_add_option_conflicts_are_usage_errors(ads: Services, args: tuple[str, ...]) -> None:
    code, _, err = invoke("job", "add", "ads", "j", *args)
    assert code == 2 and "Usage:" in err
    assert ads.jobs.list("ads") == []


def test_duplicates_and_unknowns(ads: Services) -> None:
    assert invoke("job", "add", "ads", "j", "--kind", "housekeeping", "--every", "1d")[0] == 0
    code, _, err = invoke("job", "add", "ads", "j", "--kind", "housekeeping", "--every", "1h")
    assert code == 1 and "already has a job 'j'" in err
    with pytest.raises(Conflict):
        ads.jobs.add("ads", "j", "housekeeping", {"interval_s": 60})
    for args in (("show", "ads", "nope"), ("pause", "ads", "nope"), ("remove", "ads", "nope")):
        code, _, err = invoke("job", *args)
        assert code == 1 and err.strip() == "error: no job 'nope' in workspace 'ads'"
    code, _, err = invoke("job", "list", "nowhere")
    assert code == 1 and err.startswith("error: ")
    code, _, err = invoke(
        "job", "add", "ads", "Bad Name!", "--kind", "housekeeping", "--every", "1d"
    )
    assert code == 1 and err.startswith("error: ")


def test_list_show_pause_resume_remove(ads: Services) -> None:
    assert invoke("job", "list", "ads") == (0, "(none)\n", "")
    invoke("job", "add", "ads", "nightly", *RETRAIN, "--cron", "0 3 * * *")
    invoke("job", "add", "ads", "tidy", "--kind", "housekeeping", "--every", "1d")

    code, out, _ = invoke("job", "list", "ads")
    assert code == 0
    header, *lines = out.splitlines()
    assert header.split() == [
        "NAME",
        "KIND",
        "TARGET",
        "TRIGGER",
        "ENABLED",
        "LAST_RUN_AT",
        "LAST_STATUS",
    ]
    assert lines[0].split()[:3] == ["nightly", "retrain", "captioner"]
    assert "cron 0 3 * * *" in lines[0] and "every 1d" in lines[1]

    code, out, _ = invoke("job", "list", "ads", "--json")
    rows = json.loads(out)
    assert [r["name"] for r in rows] == ["nightly", "tidy"]
    assert rows[1]["trigger"] == {"interval_s": 86_400} and rows[1]["enabled"] is True
    assert rows[1]["last_run_at"] is None and rows[1]["last_status"] is None

    job = ads.jobs.get("ads", "nightly")
    done = ads.jobs.begin(job["id"], "schedule")
    ads.jobs.finish(done, "succeeded", note="trained and deployed")
    code, out, _ = invoke("job", "show", "ads", "nightly", "--json")
    shown = json.loads(out)
    assert shown["kind"] == "retrain" and shown["params"] == {
        "recipe": "colour",
        "dataset": "photos",
    }
    assert [(r["id"], r["cause"], r["status"]) for r in shown["runs"]] == [
        (done, "schedule", "succeeded")
    ]
    assert shown["runs"][0]["detail"] == {"note": "trained and deployed"}
    code, out, _ = invoke("job", "show", "ads", "nightly")
    assert (
        code == 0 and "cron 0 3 * * *" in out and done in out and "note=trained and deployed" in out
    )
    code, out, _ = invoke("job", "list", "ads")
    assert "succeeded" in out.splitlines()[1]

    assert invoke("job", "pause", "ads", "nightly") == (0, "job nightly paused\n", "")
    assert ads.jobs.get("ads", "nightly")["enabled"] is False
    code, out, _ = invoke("job", "list", "ads", "--json")
    assert [r["enabled"] for r in json.loads(out)] == [False, True]
    assert invoke("job", "resume", "ads", "nightly") == (
        0,
        "job nightly resumed: cron 0 3 * * *\n",
        "",
    )
    assert ads.jobs.get("ads", "nightly")["enabled"] is True

    assert invoke("job", "remove", "ads", "nightly") == (0, "job nightly removed\n", "")
    assert [r["name"] for r in ads.jobs.list("ads")] == ["tidy"]
    assert ads.registry.query("SELECT * FROM job_runs") == []


def test_pending_lists_runs_awaiting_approval(ads: Services) -> None:
    assert invoke("job", "pending", "ads") == (0, "(none)\n", "")
    ads.jobs.add("ads", "nightly", "retrain", {"interval_s": 3600}, "captioner",
                 {"recipe": "colour", "dataset": "photos", "policy": "approve"})  # fmt: skip
    job = ads.jobs.get("ads", "nightly")
    waiting = ads.jobs.begin(job["id"], "schedule")
    ads.jobs.finish(waiting, "awaiting_approval", version=2)
    ads.jobs.finish(ads.jobs.begin(job["id"], "manual"), "failed", error="boom")
    code, out, _ = invoke("job", "pending", "ads", "--json")
    assert code == 0
    assert [(r["id"], r["job"], r["detail"]) for r in json.loads(out)] == [
        (waiting, "nightly", {"version": 2})
    ]
    code, out, _ = invoke("job", "pending", "ads")
    assert waiting in out and "nightly" in out
    code, _, err = invoke("job", "approve", "ads", "not-a-run")
    assert code == 1 and "no job run not-a-run awaits approval" in err


def test_jobs_over_http(ads: Services) -> None:
    base = "/v1/workspaces/ads/jobs"
    body = {"name": "nightly", "kind": "retrain", "trigger": "cron 0 3 * * *",
            "target": "captioner", "params": {"recipe": "colour", "dataset": "photos"}}  # fmt: skip
    with running_server(ads, restore=False) as client:
        assert client.get(f"{base}/").json() == []
        added = client.post(f"{base}/", json=body)
        assert added.status_code == 201, added.text
        assert added.json()["trigger"] == {"cron": "0 3 * * *"} and added.json()["enabled"] is True
        again = client.post(f"{base}/", json=body)
        assert again.status_code == 409 and "already has a job" in again.json()["error"]
        tidy = client.post(
            f"{base}/", json={"name": "tidy", "kind": "housekeeping", "trigger": "every 1d"}
        )
        assert tidy.status_code == 201 and tidy.json()["trigger"] == {"interval_s": 86_400}

        for bad, status, said in [
            ({**body, "name": "x", "kind": "nope"}, 400, "unknown job kind"),
            ({**body, "name": "x", "target": ""}, 400, "needs a target"),
            ({**body, "name": "x", "params": {"recipe": "colour"}}, 400, "dataset"),
            ({**body, "name": "x", "trigger": "cron 99 * * * *"}, 400, "not valid"),
            ({**body, "name": "x", "trigger": "sometimes"}, 400, "neither"),
            ({"name": "x"}, 400, ""),
        ]:
            answer = client.post(f"{base}/", json=bad)
            assert answer.status_code == status, answer.text
            assert said in answer.json()["error"]

        listed = client.get(f"{base}/")
        assert listed.status_code == 200
        assert [r["name"] for r in listed.json()] == ["nightly", "tidy"]
        shown = client.get(f"{base}/nightly")
        assert shown.status_code == 200 and shown.json()["runs"] == []

        paused = client.post(f"{base}/nightly/pause")
        assert paused.status_code == 200 and paused.json()["enabled"] is False
        assert ads.jobs.get("ads", "nightly")["enabled"] is False
        resumed = client.post(f"{base}/nightly/resume")
        assert resumed.status_code == 200 and resumed.json()["enabled"] is True

        removed = client.delete(f"{base}/nightly")
        assert removed.status_code == 204 and removed.content == b""
        assert [r["name"] for r in client.get(f"{base}/").json()] == ["tidy"]

        for method, path in [("GET", "/nightly"), ("DELETE", "/nightly"), ("POST", "/nightly/pause"),
                             ("POST", "/nope/resume")]:  # fmt: skip
            answer = client.request(method, base + path)
            assert answer.status_code == 404 and "no job" in answer.json()["error"]
        assert client.get("/v1/workspaces/nowhere/jobs/").status_code == 404


def test_job_routes_need_the_token(isolated_home: Path) -> None:
    with Services.open(home=isolated_home, token="s3cret") as services:
        services.workspaces.create("ads")
        with running_server(services, restore=False) as client:
            body = {"name": "tidy", "kind": "housekeeping", "trigger": "every 1d"}
            denied = client.post("/v1/workspaces/ads/jobs/", json=body)
            assert denied.status_code == 401
            assert client.get("/v1/workspaces/ads/jobs/").status_code == 401  # reads too
            allowed = client.post(
                "/v1/workspaces/ads/jobs/", json=body, headers={"authorization": "Bearer s3cret"}
            )
            assert allowed.status_code == 201
