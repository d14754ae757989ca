"""The generated docs are current, the tutorial's commands exist, and the docs' links resolve."""

from __future__ import annotations

import json
import re
import runpy
import shlex
from pathlib import Path

import click
import pytest

from appliance.cli import cli

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
ROUTE_ROW = re.compile(r"^\| (GET|POST|PUT|PATCH|DELETE) \| `([^`]+)` \|", re.MULTILINE)


@pytest.mark.parametrize(
    ("script", "page"), [("docs_cli.py", "cli.md"), ("docs_openapi.py", "openapi.json")]
)
def test_generated_docs_are_current(script: str, page: str) -> None:
    render = runpy.run_path(str(ROOT / "scripts" / script))["render"]
    assert (DOCS / page).read_text() == render(), f"docs/{page} is stale: run scripts/{script}"


def _sh_commands(markdown: str) -> list[list[str]]:
    """The `appliance …` command lines of the ```sh blocks, as argument lists."""
    commands = []
    for block in re.findall(r"^```sh\n(.*?)^```", markdown, re.MULTILINE | re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            if "appliance " not in f"{line} ":
                continue  # curl with JSON spread over lines, shell loops
            words = shlex.split(line, comments=True)
            while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):  # VAR=value before it
                words.pop(0)
            if words and words[0] == "appliance":
                # `job pause|resume|remove …` is shorthand for three commands.
                alternatives = [
                    i for i, w in enumerate(words) if re.fullmatch(r"[a-z-]+(\|[a-z-]+)+", w)
                ]
                if alternatives:
                    i = alternatives[0]
                    for word in words[i].split("|"):
                        commands.append([*words[1:i], word, *words[i + 1 :]])
                else:
                    commands.append(words[1:])
    return commands


def _check_parses(args: list[str]) -> None:
    """Resolve the command path in the Click tree, then parse the rest with the leaf's parser:
    unknown commands or options, a missing option value, or a wrong number of arguments fail.
    Values are not converted, so paths need not exist here."""
    command: click.Command = cli
    ctx = click.Context(cli, info_name="appliance")
    while isinstance(command, click.Group):
        # Root options (--home) come before the subcommand.
        while args and args[0].startswith("-"):
            args = args[2:] if args[0] == "--home" else args[1:]
        if not args:
            return  # `appliance` alone opens the UI
        name = args[0]
        sub = command.get_command(ctx, name)
        if sub is None:
            default = getattr(command, "default_command", None)
            assert default is not None, f"'{ctx.command_path}' has no command '{name}'"
            name, sub = default, command.get_command(ctx, default)
            assert sub is not None
        else:
            args = args[1:]
        ctx = click.Context(sub, info_name=name, parent=ctx)
        command = sub
    usage = f"{ctx.command_path} {' '.join(command.collect_usage_pieces(ctx))}"
    try:
        values, extra, _ = command.make_parser(ctx).parse_args(list(args))
    except click.UsageError as exc:
        raise AssertionError(f"{ctx.command_path} {shlex.join(args)}: {exc}") from None
    assert not extra, f"{shlex.join(args)}: unexpected {extra}; usage: {usage}"
    for param in command.params:
        if isinstance(param, click.Argument) and param.required:
            value = values.get(param.name)
            given = value not in (None, ()) and type(value).__name__ != "Sentinel"
            assert given, f"{shlex.join(args)}: {param.human_readable_name} missing; {usage}"


@pytest.mark.parametrize("page", ["tutorial.md", "scheduler.md", "outgrowing.md", "../README.md"])
def test_documented_commands_parse(page: str) -> None:
    commands = _sh_commands((DOCS / page).read_text())
    assert commands
    if page == "tutorial.md":
        assert len(commands) > 30
    for args in commands:
        _check_parses(args)


def test_the_check_rejects_a_wrong_command() -> None:
    for args in (
        ["dataset", "adds", "ws", "name", "folder"],
        ["run", "start", "ws", "--recipes", "captioner"],
        ["model", "promote", "ws", "captioner"],
    ):
        with pytest.raises(AssertionError):
            _check_parses(args)
    _check_parses(["deploy", "ws", "captions", "captioner@production", "--quantization", "int8"])


@pytest.mark.parametrize("page", [*sorted(p.name for p in DOCS.glob("*.md")), "../README.md"])
def test_relative_links_resolve(page: str) -> None:
    path = (DOCS / page).resolve()
    text = path.read_text()
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):
            continue  # http:, https:, mailto:
        file, _, anchor = target.partition("#")
        if file:
            assert (path.parent / file).exists(), f"{page}: link to {target} does not resolve"
        elif anchor:
            headings = {
                re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-")
                for h in re.findall(r"^#+ (.+)$", text, re.MULTILINE)
            }
            assert anchor in headings, f"{page}: no heading for #{anchor}"


def test_every_documented_route_is_in_the_schema() -> None:
    paths = json.loads((DOCS / "openapi.json").read_text())["paths"]
    rows = ROUTE_ROW.findall((DOCS / "http.md").read_text())
    assert len(rows) >= 25
    for method, route in rows:
        assert route in paths, f"http.md documents {route}, which the app does not have"
        assert method.lower() in paths[route], f"http.md documents {method} {route}"
    documented = {(m.lower(), r) for m, r in rows}
    for route, item in paths.items():
        for method in ("get", "post", "put", "patch", "delete"):
            if method in item:
                assert (method, route) in documented, f"http.md does not list {method} {route}"
