"""Write docs/cli.md from the Click command tree, so the reference cannot drift from the code.

Usage: python scripts/docs_cli.py [--check]   (--check exits 1 when the page is stale)

Only Click's own metadata is read (names, help, parameters): nothing imports torch.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Iterator
from pathlib import Path

import click

from appliance.cli import cli

PAGE = Path(__file__).resolve().parents[1] / "docs" / "cli.md"

INTRO = """# Command line reference

Every command of `appliance`, generated from the code by `python scripts/docs_cli.py`
(`tests/test_docs.py` fails when this page is out of date). `appliance COMMAND --help` prints the
same text. Errors a user can fix print one `error: …` line and exit 1; listings take `--json`.
Commands contributed by installed packages through the `appliance.commands` entry point group
(the terminal UI's `up`) are included when they are installed. Every command also takes
`-h`/`--help`.
"""


def _walk(
    command: click.Command, parent: click.Context | None, name: str
) -> Iterator[tuple[click.Command, click.Context]]:
    ctx = click.Context(command, info_name=name, parent=parent, terminal_width=100)
    yield command, ctx
    if isinstance(command, click.Group):
        for sub_name in sorted(command.list_commands(ctx)):
            sub = command.get_command(ctx, sub_name)
            if sub is not None and (not sub.hidden or _is_default(command, sub_name)):
                yield from _walk(sub, ctx, sub_name)


def _is_default(group: click.Group, name: str) -> bool:
    """The subcommand a group runs when its first argument names none (`appliance deploy`)."""
    return getattr(group, "default_command", None) == name


def _help_text(command: click.Command) -> str:
    """The command's help as Markdown: Click's `\\b` paragraphs (kept unwrapped) as code."""
    text = inspect.cleandoc(command.help or "").split("\f", 1)[0]
    paragraphs = []
    for paragraph in text.split("\n\n"):
        lines = paragraph.strip("\n").splitlines()
        if lines and lines[0].strip() == "\b":
            paragraphs.append("\n".join(["```sh", *lines[1:], "```"]))
        elif lines:
            paragraphs.append("\n".join(lines))
    return "\n\n".join(paragraphs)


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _default(param: click.Parameter, ctx: click.Context) -> str:
    if isinstance(param, click.Option) and (param.is_flag and not param.secondary_opts):
        return ""
    default = param.get_default(ctx, call=False)
    unset = type(default).__name__ == "Sentinel"  # Click 8.3's UNSET: no default
    if default == "":
        return '`""`'
    if default is None or unset or callable(default) or default == () or default == []:
        return ""
    if isinstance(default, list | tuple):
        return ", ".join(f"`{item}`" for item in default)
    return f"`{default}`"


def _type(param: click.Parameter) -> str:
    if isinstance(param, click.Option) and param.is_flag:
        return "flag"
    if isinstance(param.type, click.Choice):
        return " \\| ".join(f"`{choice}`" for choice in param.type.choices)
    return param.type.name.lower()


def _section(command: click.Command, ctx: click.Context) -> str:
    path = ctx.command_path
    usage = " ".join([path, *command.collect_usage_pieces(ctx)])
    out = [f"## {path}", "", "```", usage, "```", ""]
    parent = ctx.parent
    group = parent.command if parent is not None else None
    if isinstance(group, click.Group) and parent and _is_default(group, ctx.info_name or ""):
        short = " ".join([parent.command_path, *command.collect_usage_pieces(ctx)])
        out[3:3] = [short]
        out += [f"The default command of `{parent.command_path}`: it can be left out.", ""]
    help_text = _help_text(command)
    if help_text:
        out += [help_text, ""]
    arguments = [p for p in command.params if isinstance(p, click.Argument)]
    if arguments:
        out += ["| argument | type | required |", "| --- | --- | --- |"]
        for arg in arguments:
            name = _cell(arg.human_readable_name + ("…" if arg.nargs == -1 else ""))
            out.append(f"| `{name}` | {_type(arg)} | {'yes' if arg.required else 'no'} |")
        out.append("")
    help_option = command.get_help_option(ctx)
    options = [
        p
        for p in command.get_params(ctx)
        if isinstance(p, click.Option) and not p.hidden and p is not help_option
    ]
    if options:
        out += ["| option | type | default | what it does |", "| --- | --- | --- | --- |"]
        for opt in options:
            names = ", ".join(f"`{n}`" for n in [*opt.opts, *opt.secondary_opts])
            env = ""
            if isinstance(opt.envvar, str) and opt.envvar not in (opt.help or ""):
                env = f" [env `{opt.envvar}`]"
            help_text = _cell(opt.help or "") + env
            out.append(f"| {names} | {_type(opt)} | {_default(opt, ctx)} | {help_text} |")
        out.append("")
    if isinstance(command, click.Group):
        subs = [
            (name, command.get_command(ctx, name)) for name in sorted(command.list_commands(ctx))
        ]
        out += ["| command | what it does |", "| --- | --- |"]
        for name, sub in subs:
            if sub is not None and (not sub.hidden or _is_default(command, name)):
                anchor = f"{path} {name}".replace(" ", "-")
                summary = _cell(sub.get_short_help_str(limit=1000))
                out.append(f"| [`{name}`](#{anchor}) | {summary} |")
        out.append("")
    return "\n".join(out)


def render() -> str:
    sections = [_section(command, ctx) for command, ctx in _walk(cli, None, "appliance")]
    return INTRO + "\n" + "\n".join(sections).rstrip("\n") + "\n"


def main() -> int:
    from generated_page import write_or_check  # beside this script, on sys.path when it runs

    return write_or_check(PAGE, render, "docs_cli.py", __doc__.splitlines()[0])


if __name__ == "__main__":
    sys.exit(main())
