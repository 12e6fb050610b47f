"""``python -m api [--host H] [--port P] [--db URL] [--no-auth]``: serve the API alone with uvicorn.

Settings not given here come from ``AUXTUNE_*`` (see ``api.config``). ``auxtune serve`` (API plus embedded
workers) builds on the same app factory.
"""

from __future__ import annotations

import argparse
import logging
import sys

import optuna
import uvicorn

from api.auth import admin_token_problem
from api.config import Settings
from api.main import create_app
from api.origin import is_loopback


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m api", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--db", help="store URL (default: $AUXTUNE_DB, else sqlite:///./auxtune.db)")
    parser.add_argument("--no-auth", action="store_true", help="no tokens: for localhost demos only")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    if args.no_auth and not is_loopback(args.host):
        print(f"refusing --no-auth on {args.host}: without tokens anyone who reaches the port can do anything; "
              "serve on 127.0.0.1, or drop --no-auth", file=sys.stderr)
        return 2
    overrides: dict[str, object] = {}
    if args.db:
        overrides["db"] = args.db
    if args.no_auth:
        overrides["auth"] = False
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    # Optuna logs a line per study created at INFO; the API's own log says what happened, with the study id.
    optuna.logging.set_verbosity(max(logging.WARNING, logging.getLevelName(args.log_level.upper())))
    settings = Settings().model_copy(update=overrides)  # flags win over AUXTUNE_* variables
    problem = admin_token_problem(settings)
    if problem is not None:
        print(f"refusing to start: {problem}", file=sys.stderr)
        return 2
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level=args.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
