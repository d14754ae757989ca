"""`appliance demo`"""

from __future__ import annotations

import click

from appliance.cli.context import services


@click.command()
@click.option("--fast", is_flag=True, help="A smaller dataset, for a quick look or a test.")
@click.option("--seed", type=int, default=0, show_default=True)
def demo(fast: bool, seed: int) -> None:
    """Run the reference story offline: the classified-ads workspace, versioned product photos,
    and (as later parts land) training, serving and monitoring."""
    from appliance.demo import DemoOptions, run_demo

    options = DemoOptions(seed=seed)
    if fast:
        options = DemoOptions(count=120, new_category_count=20, seed=seed)
    run_demo(services(), options, click.echo)
    click.echo("demo finished")
