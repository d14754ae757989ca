"""The Textual terminal UI over the appliance's services (arrives with the TUI issue).

It talks to the core through `appliance.services.Services`, never through SQL, and the core
never imports this package.
"""
