"""The ``auxtune`` program: one module per command group, all on one Typer app (``tuner.cli.main``)."""

from tuner.cli.main import app, main

__all__ = ["app", "main"]
