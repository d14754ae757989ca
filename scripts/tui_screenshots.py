"""Export an SVG screenshot of every TUI screen over a home (for the README), e.g. after
`make demo`:  python scripts/tui_screenshots.py --home .demo-home docs/tui
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from appliance.services import Services
from tui.app import ApplianceApp

SCREENS = {
    "workspaces": "1", "datasets": "2", "runs": "3", "models": "4",
    "deployments": "5", "monitoring": "6", "jobs": "7", "playground": "8",
}  # fmt: skip


async def export(
    services: Services, workspace: str | None, out: Path, size: tuple[int, int]
) -> None:
    app = ApplianceApp(services, workspace=workspace)
    async with app.run_test(size=size) as pilot:
        for name, key in SCREENS.items():
            await pilot.press(key)
            for _ in range(3):
                await pilot.pause(0.2)
                await app.workers.wait_for_complete()
            app.save_screenshot(str(out / f"{name}.svg"))
            print(f"wrote {out / f'{name}.svg'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--workspace")
    parser.add_argument("--width", type=int, default=100)
    parser.add_argument("--height", type=int, default=30)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with Services.open(home=args.home) as services:
        asyncio.run(export(services, args.workspace, args.out, (args.width, args.height)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
