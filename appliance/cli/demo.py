"""`appliance demo`"""

from __future__ import annotations

import shlex

import click

from appliance.cli.context import home_unless_chosen, services


@click.command()
@click.option("--fast", is_flag=True, help="A small dataset and a short training, for a test.")
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Seed of the generated photos and of training: same seed, same story.",
)
@click.option(
    "--replace",
    is_flag=True,
    help="Delete a classified-ads workspace the demo did not create in this home (with all it "
    "holds) instead of refusing.",
)
def demo(fast: bool, seed: int, replace: bool) -> None:
    """Run the reference story offline in the classified-ads workspace: versioned product
    photos, a captioner trained, evaluated, registered, promoted and served; rated traffic with
    low-light photos that monitoring flags as drift; and a new category landing.

    The demo runs in a home of its own, appliance-demo beside the default home (for example
    ~/.local/share/appliance-demo), unless --home or APPLIANCE_HOME chooses one; it prints the
    home first. Each run deletes and remakes the classified-ads workspace an earlier demo made
    there; one it did not make (yours) is refused unless --replace."""
    from appliance.cli.output import emit_table
    from appliance.cli.progress import ProgressLine
    from appliance.demo import SUMMARY_METRICS, DemoOptions, run_demo, summary_rows
    from appliance.demo.home import default_demo_home

    options = DemoOptions(seed=seed)
    if fast:
        options = DemoOptions(
            count=400,
            new_category_count=40,
            seed=seed,
            train_params={"epochs": "15"},
            traffic_normal=20,
            traffic_low_light=40,
            car_traffic=30,
            watch_seconds=8,
        )
    home_unless_chosen(default_demo_home())
    svc = services()
    opener = f"APPLIANCE_HOME={shlex.quote(str(svc.settings.home))} appliance"
    click.echo(f"demo home: {svc.settings.home} (open it afterwards with {opener})")
    bar = ProgressLine(svc.runs)

    def say(line: str) -> None:
        bar.close()
        click.echo(line)

    result = run_demo(svc, options, say, bar.update, replace=replace)
    click.echo()
    emit_table(summary_rows(result["models"]), ("version", "aliases", *SUMMARY_METRICS))
    click.echo(f"demo finished; {opener} opens it in the terminal UI")
