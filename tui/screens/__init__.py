"""The TUI's screens, one module each: the four main ones (app modes) and their modals."""
