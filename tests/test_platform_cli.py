"""`appliance feedback platform` and `appliance report platform` through the real CLI over a
real home: a rating is stored with who gave it, bad input (a rating of 0 or 6, a 10 MB comment,
an unknown workspace) is one `error:` line with exit 1 and stores nothing, and the report prints
its four parts (or the same dict as JSON)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from appliance.cli import cli
from appliance.services import Services


def invoke(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), input=stdin)
    return result.exit_code, result.stdout, result.stderr


def stored(home: Path) -> list[dict[str, object]]:
    with Services.open(home=home) as services:
        return services.registry.query(
            "SELECT f.rating, f.comment, f.source, f.user, w.name AS workspace"
            " FROM platform_feedback f LEFT JOIN workspaces w ON w.id = f.workspace_id"
            " ORDER BY f.id"
        )


@pytest.fixture
def home(isolated_home: Path) -> Path:
    assert invoke("workspace", "create", "ads")[0] == 0
    return isolated_home


def test_a_rating_is_stored_with_its_comment_and_workspace(home: Path) -> None:
    code, out, err = invoke(
        "feedback", "platform", "--rating", "4", "--comment", "good", "--workspace", "ads"
    )
    assert (code, err) == (0, ""), err
    assert out == "thank you: rated the platform 4 of 5 for ads\n"
    code, out, _ = invoke("feedback", "platform", "--rating", "2", "--comment", "-", "--json",
                          stdin="slow start\n")  # fmt: skip
    assert code == 0 and json.loads(out)["comment"] == "slow start"
    rows = stored(home)
    assert [(r["rating"], r["comment"], r["workspace"], r["source"]) for r in rows] == [
        (4, "good", "ads", "cli"),
        (2, "slow start", None, "cli"),
    ]
    assert str(rows[0]["user"]).startswith("cli")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rating", "0"], "error: rating must be a whole number from 1 to 5, got 0\n"),
        (["--rating", "6"], "error: rating must be a whole number from 1 to 5, got 6\n"),
        (["--rating", "3", "--comment", "x" * 10_000_000],
         "error: comment is 10,000,000 characters; at most 2,000 are kept\n"),
        (["--rating", "3", "--workspace", "nope"],
         "error: no workspace 'nope' (see `appliance workspace list`)\n"),
    ],
)  # fmt: skip
def test_bad_input_is_one_error_line_and_stores_nothing(
    home: Path, args: list[str], message: str
) -> None:
    code, out, err = invoke("feedback", "platform", *args)
    assert (code, out, err) == (1, "", message)
    assert stored(home) == []


def test_a_10_mb_comment_on_stdin_is_refused_without_reading_it_all(home: Path) -> None:
    # A real process: stdin is a pipe, read no further than one character past the limit.
    command = [sys.executable, "-m", "appliance", "--home", str(home), "feedback", "platform",
               "--rating", "3", "--comment", "-"]  # fmt: skip
    done = subprocess.run(command, input="x" * 10_000_000, capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stderr == "error: the comment on stdin is over 2,000 characters\n"
    assert stored(home) == []


def test_the_report_prints_its_four_parts(home: Path) -> None:
    assert invoke("feedback", "platform", "--rating", "5", "--comment", "calm")[0] == 0
    code, out, err = invoke("report", "platform", "--window", "7d")
    assert (code, err) == (0, "")
    assert "adoption: 0 of 1 workspaces (0%): none" in out
    assert "user happiness: 1 rating, mean 5.00 of 5" in out and "5★ calm" in out
    assert "WORKSPACE  DATASETS  RUNS  GATE  QUANTIZED" in out
    assert "ads        ·         ·" in out
    assert "cost per user (CPU 0.05/core-hour, GPU 2.5/hour, disk 0.1/GB-month)" in out
    assert "a user: distinct people named" in out and "energy: " in out

    code, out, _ = invoke("report", "platform", "--window", "7d", "--json")
    data = json.loads(out)
    assert code == 0 and data["window_s"] == 7 * 86_400
    assert set(data) == {"since", "until", "window_s", "adoption", "happiness", "coverage", "cost"}
    assert data["coverage"]["matrix"]["ads"]["tracked_runs"] is False
    assert len(data["happiness"]["trend"]) == 7


def test_a_bad_window_is_one_error_line(home: Path) -> None:
    code, _, err = invoke("report", "platform", "--window", "soon")
    assert code == 1
    assert err == "error: window 'soon' is not a duration: use e.g. 90s, 30m, 1h, 7d or 2w\n"
