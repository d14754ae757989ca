"""The HTTP server: the Litestar app (`create_app`), its routes and its access rules."""
