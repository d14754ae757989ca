"""The terminal UI in a browser (`appliance web`): textual-serve runs the TUI once per browser
tab, behind a login with a token (`login.py`) and server-side sessions (`sessions.py`).

Nothing here is imported before the command runs: `command.py` is what the CLI loads, and it
imports aiohttp and textual-serve (`server.py`) only when `appliance web` is invoked."""
