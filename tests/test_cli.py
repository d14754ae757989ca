"""The CLI as a user meets it: real commands against a real home, in-process via CliRunner,
and in a subprocess where start-up itself is what is tested."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from conftest import write_metadata

from appliance.cli import cli


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_help_is_fast_and_does_not_import_torch() -> None:
    probe = (
        "import sys, time; t = time.perf_counter(); from appliance.cli import main; "
        "sys.argv = ['appliance', '--help']\n"
        "try: main()\nexcept SystemExit: pass\n"
        "print(time.perf_counter() - t, 'torch' in sys.modules, 'transformers' in sys.modules,"
        " 'textual' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    elapsed, torch_loaded, transformers_loaded, textual_loaded = out.stdout.split()[-4:]
    assert "workspace" in out.stdout and "up " in out.stdout  # `up` comes from the tui package
    assert (torch_loaded, transformers_loaded, textual_loaded) == ("False", "False", "False")
    assert float(elapsed) < 0.5


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix]
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found += _commands(command, (*prefix, name))
        else:
            found.append((*prefix, name))
    return found


@pytest.mark.parametrize("path", _commands(cli), ids=lambda p: " ".join(p) or "appliance")
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    code, out, _ = invoke(*path, "--help")
    assert code == 0 and "Usage:" in out
    assert len(out.splitlines()) > 3


def test_workspace_and_dataset_round_trip(photos: Path) -> None:
    assert invoke("workspace", "create", "ads")[0] == 0
    code, out, _ = invoke("dataset", "add", "ads", "photos", str(photos))
    assert code == 0 and out.startswith("added photos@1")
    code, out, _ = invoke("dataset", "add", "ads", "photos", str(photos))
    assert code == 0 and out.startswith("unchanged: the content is already photos@1")
    (photos / "metadata.jsonl").write_text(
        "\n".join((photos / "metadata.jsonl").read_text().splitlines()[:-2]) + "\n"
    )
    assert invoke("dataset", "add", "ads", "photos", str(photos))[0] == 0
    code, out, _ = invoke("dataset", "diff", "ads", "photos@1", "photos@2")
    assert code == 0 and "removed: 2" in out
    listings = [
        ("workspace", "list"), ("workspace", "show", "ads"), ("dataset", "list", "ads"),
        ("dataset", "versions", "ads", "photos"),
        ("dataset", "diff", "ads", "photos@1", "photos@2"),
        ("model", "list", "ads"), ("run", "list", "ads"), ("settings",),
    ]  # fmt: skip
    for listing in listings:
        code, out, err = invoke(*listing, "--json")
        assert code == 0, err
        json.loads(out)


def test_model_commands(tiny_model: Path) -> None:
    invoke("workspace", "create", "ads")
    code, out, _ = invoke(
        "model", "register", "ads", "lm", str(tiny_model), "--metric", "bleu=71.5"
    )
    assert code == 0 and out.startswith("registered lm@1")
    assert invoke("model", "alias", "set", "ads", "lm@1", "production")[0] == 0
    code, out, _ = invoke("model", "show", "ads", "lm@production", "--json")
    assert json.loads(out)[0]["metrics"] == {"bleu": 71.5}
    assert invoke("model", "alias", "unset", "ads", "lm", "production")[0] == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("workspace", "create", "../evil"), "must not contain '/'"),
        (("workspace", "show", "nope"), "no workspace 'nope'"),
        (("dataset", "add", "nope", "photos", "."), "no workspace 'nope'"),
        (("dataset", "versions", "ads", "nope"), "no dataset 'nope'"),
        (("dataset", "add", "ads", "photos", "/does/not/exist"), "is not a folder"),
        (("model", "show", "ads", "nope"), "no model 'nope'"),
        (("model", "register", "ads", "lm", "/does/not/exist"), "is not a folder"),
        (("model", "register", "ads", "lm", ".", "--metric", "oops"), "must look like name=0.93"),
        (("run", "show", "feedface0000"), "no run 'feedface0000'"),
        (("dataset", "generate", "OUT", "--count", "0"), "count"),
        (("dataset", "generate", "OUT", "--categories", "spaceship"), "spaceship"),
    ],
)
def test_bad_input_is_one_clear_line(args: tuple[str, ...], message: str, tmp_path: Path) -> None:
    invoke("workspace", "create", "ads")
    args = tuple(str(tmp_path / a) if a == "OUT" else a for a in args)
    code, out, err = invoke(*args)
    assert code == 1
    assert err.startswith("error: ") and message in err
    assert "Traceback" not in err + out


def test_bad_imagefolder_lists_problems(photos: Path) -> None:
    invoke("workspace", "create", "ads")
    write_metadata(photos, ['{"file_name": "nope.png", "text": "x"}', "{broken"])
    code, _, err = invoke("dataset", "add", "ads", "photos", str(photos))
    assert code == 1
    assert "line 1: 'nope.png' does not exist" in err and "line 2: not valid JSON" in err


def test_demo_refuses_a_workspace_it_did_not_make(photos: Path, tmp_path: Path) -> None:
    other = str(tmp_path / "other")
    invoke("--home", other, "workspace", "create", "classified-ads")
    invoke("--home", other, "dataset", "add", "classified-ads", "product-photos", str(photos))
    code, out, err = invoke("--home", other, "demo", "--fast")
    assert code == 1 and out.startswith(f"demo home: {other} ")
    assert err.splitlines() == [
        f"error: the home {other} already has a workspace 'classified-ads' that the demo did not "
        "create; the demo would delete it with all it holds (datasets 1, runs 0, models 0, "
        "deployments 0). Use another home (appliance --home DIR demo), or add --replace to delete it."
    ]
    code, out, _ = invoke("--home", other, "workspace", "show", "classified-ads", "--json")
    assert code == 0 and json.loads(out)["datasets"] == 1


# About 150 s alone on 2 cores here and over 300 beside the other worker; CI's machine ran the
# whole suite 1.75x slower (22 min of pytest) and this test past 600 s, so it gets 1200.
@pytest.mark.timeout(1200)
def test_demo_fast_tells_the_story_in_its_own_home(
    photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A newcomer following the README: their classified-ads is in the default home.
    from appliance.demo.home import default_demo_home
    from appliance.services import Services
    from appliance.settings import default_home

    monkeypatch.delenv("APPLIANCE_HOME")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    user_home, demo_home = default_home(), default_demo_home()
    assert user_home.parent == demo_home.parent == tmp_path / "data"  # never the real ones
    invoke("workspace", "create", "classified-ads")
    invoke("dataset", "add", "classified-ads", "product-photos", str(photos))
    mine = [("workspace", "show", "classified-ads", "--json"), ("workspace", "list", "--json")]
    mine.append(("dataset", "versions", "classified-ads", "product-photos", "--json"))
    before = [json.loads(invoke(*args)[1]) for args in mine]
    # In the demo's home, someone made a classified-ads by hand: refused, then --replace.
    invoke("--home", str(demo_home), "workspace", "create", "classified-ads")
    code, out, err = invoke("demo", "--fast")
    assert code == 1 and "did not create" in err and "or add --replace to delete it" in err
    code, out, err = invoke("demo", "--fast", "--replace")
    assert code == 0, err
    opener = f"APPLIANCE_HOME={demo_home} appliance"
    assert out.startswith(f"demo home: {demo_home} (open it afterwards with {opener})")
    assert "deleted the workspace classified-ads the demo had not made (--replace)" in out
    assert out.rstrip().endswith(f"demo finished; {opener} opens it in the terminal UI")
    assert "added dataset product-photos@1" in out
    assert "the same version, nothing stored twice" in out
    assert "registered captioner@1" in out and "promoted captioner@1 to production" in out
    assert "deployed captioner@1 (production) at endpoint captions: int8 on CPU" in out
    # Six answers over HTTP, each with its confidence (the keyword chapter's come later).
    assert len(re.findall(r"^   [✓✗] (?:normal|low) .* conf \d\.\d\d ", out, re.MULTILINE)) == 6
    # Monitoring: wrong dark answers warn, brightness drifts, the alert fires, ratings are
    # stored beside the label-free estimate.
    assert re.search(r"low +\d+/40 described exactly; uncertain warned on [1-9]\d* of the", out)
    assert "estimated exact_match without labels" in out
    # The estimate is read before the low-light ratings come in, and says which way it went.
    # (The fast demo's model is too small to know when it errs: on one machine it held at
    # 0.16. That it falls for a real v1, and the warnings' rates, are test_trust_story's, slow.)
    moved = re.search(r"estimate (fell|held) at once: (\d\.\d\d) after the ordinary photos, "
                      r"(\d\.\d\d) with the low-light ones before any of their ratings", out)  # fmt: skip
    assert moved is not None, out
    ordinary, dark = float(moved[2]), float(moved[3])  # as printed, to 2 places
    assert dark <= ordinary if moved[1] == "fell" else dark >= ordinary - 0.01, out
    assert "sellers start offering cars: 30 car photos" in out and "embedding drift (" in out
    assert "brightness psi" in out and "DRIFT" in out
    assert "alerts firing on captions: drift_psi" in out
    assert "66 predictions captured" in out and "60 ratings" in out
    # The closed loop on the server's scheduler: the watch versions the new photos, exactly one
    # retrain follows with its cause, the gate decides, and the degraded v3 is rolled back.
    # Sellers review the kept answers; what they corrected is the next dataset version, and
    # the watch's version of the changed folder keeps those rows (so it is @3 after an export).
    review = re.search(r"review queue \(GET …/review\): (\d+) answers kept.* → (.*)", out)
    assert review is not None and int(review[1]) > 0, out
    assert review[2].startswith("exported to product-photos@2")
    assert "watch-photos saw the change → product-photos@3" in out
    assert (
        "retrain-captioner ran (cause dataset:product-photos@3) and registered captioner@2" in out
    )
    assert "   gate: " in out
    assert "the watch failed captioner@3" in out and "rolled back automatically" in out
    assert re.search(r"watch_failed +captions captioner@3", out)
    assert re.search(r"rolled_back +captions v[12]", out)
    # The model change: keywords land as a column, the watch versions them, a keyword model is
    # gated on exact match and adherence, and requests with keywords are answered.
    assert "the model change: sellers may now give keywords the photo cannot show" in out
    assert re.search(
        r"the watch versioned it → product-photos@\d+ \(schema: \+keywords in \d+ rows", out
    )
    assert "   gate (exact match and keyword adherence): " in out
    assert re.search(
        r"6 sellers' photos with keywords .*: \d+ of \d+ keywords in the descriptions", out
    )
    # DORA counts the timeline's deployments and rollbacks (v2 may or may not pass its gate).
    shown = len(re.findall(r"^   \d\d:\d\d:\d\d  (?:deployed|rolled_back) ", out, re.MULTILINE))
    dora = re.search(r"DORA over the demo: (\d+) deployment\(s\).*change failure rate \d+%", out)
    assert dora is not None and int(dora[1]) == shown >= 3, out
    # The closing reports: the platform metrics and the maturity page under the demo's home.
    # (Adopted only while the endpoint serves the production version: in this short demo the
    # watch may roll the weak keyword model back.)
    assert re.search(r"platform metrics \(appliance report platform\): adoption [01] of 1 ", out)
    assert re.search(r"   coverage of classified-ads: [5-8] of 8 capabilities", out), out
    maturity = re.search(
        r"maturity \(appliance report maturity classified-ads\): (\w+), .* → (\S+)", out
    )
    assert maturity is not None and maturity[1] in ("developing", "defined", "mature"), out
    page = Path(maturity[2])
    assert page.parent.parent == demo_home and "<svg" in page.read_text()
    assert re.search(r"diff @1 → @4: (\d+) added", out)  # cars, reviewed rows, keywords
    # The user's home is as they left it: their workspace, its dataset version and its files.
    assert [json.loads(invoke(*args)[1]) for args in mine] == before
    assert [w["name"] for w in before[1]] == ["classified-ads"] and before[0]["datasets"] == 1
    with Services.open(home=user_home) as opened:
        version = opened.datasets.get("classified-ads", "product-photos")
        for entry in opened.datasets.manifest(version).values():
            assert opened.store.read_bytes(entry["sha256"])  # every file still stored


def test_up_is_contributed_by_the_tui_package_and_refuses_an_open_address() -> None:
    up = cli.commands["up"]
    assert up.callback is not None and up.callback.__module__ == "tui.command"
    code, _, err = invoke("up", "--host", "0.0.0.0")
    assert code == 1 and "needs a token" in err


def test_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    # `appliance settings | head -1`: the reader goes away; no traceback, no bug report.
    home = tmp_path / "home"
    env = {**os.environ, "APPLIANCE_HOME": str(home)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "appliance", "settings"], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(60) == 1
    assert err == "" and not (home / "logs" / "errors.log").exists()
