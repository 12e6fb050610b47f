"""``python -m tuner.cli``: the same program as ``auxtune``."""

from tuner.cli.main import main

main()
