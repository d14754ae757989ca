"""`appliance demo`"""

from __future__ import annotations

import click

from appliance.cli.context import services


@click.command()
@click.option("--fast", is_flag=True, help="A small dataset and a short training, for a test.")
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Seed of the generated photos and of training: same seed, same story.",
)
def demo(fast: bool, seed: int) -> None:
    """Run the reference story offline in the classified-ads workspace: versioned product
    photos, a captioner trained, evaluated, registered, promoted and served; rated traffic with
    low-light photos that monitoring flags as drift; and a new category landing."""
    from appliance.cli.output import emit_table
    from appliance.cli.progress import ProgressLine
    from appliance.demo import SUMMARY_METRICS, DemoOptions, run_demo, summary_rows

    options = DemoOptions(seed=seed)
    if fast:
        options = DemoOptions(
            count=400,
            new_category_count=40,
            seed=seed,
            train_params={"epochs": "15"},
            traffic_normal=20,
            traffic_low_light=40,
            watch_seconds=8,
        )
    svc = services()
    bar = ProgressLine(svc.runs)

    def say(line: str) -> None:
        bar.close()
        click.echo(line)

    result = run_demo(svc, options, say, bar.update)
    click.echo()
    emit_table(summary_rows(result["models"]), ("version", "aliases", *SUMMARY_METRICS))
    click.echo("demo finished")
