"""The ``auxtune`` program: every command group on one Typer app, and ``main``, the process around it.

The commands live one group per module: ``spec_cmds`` (validate, trial, workloads), ``study`` (run, best, studies,
trials, submit, status, report), ``serve``, ``worker``, ``trust`` (confirm, affinity) and ``launch`` (launch
slurm); their shared pieces are in ``common``, ``options`` and ``source``.
"""

from __future__ import annotations

import logging

import typer

from tuner.cli import launch, serve, spec_cmds, study, trust, worker
from tuner.cli.common import closing_stores, err_console
from tuner.execution.exiting import exit_now

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="auxtune: tune the loss weights λ of auxiliary tasks in multi-task networks.")

for command in (spec_cmds.validate, spec_cmds.trial, spec_cmds.workloads, study.run, study.best, study.studies,
                study.trials, serve.serve, worker.worker, study.submit, study.status, study.report, trust.confirm,
                trust.affinity):
    app.command()(command)
app.add_typer(launch.launch_app, name="launch")


def main() -> None:
    """``auxtune`` (and ``python -m tuner.cli``): run the command, close its stores, exit without the teardown."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    code: object = 0
    with closing_stores():
        try:
            app()  # typer ends with SystemExit, also on success
        except KeyboardInterrupt:
            err_console.print("interrupted")
            code = 130
        except SystemExit as exc:
            code = exc.code
    exit_now(code)  # without the interpreter's teardown (~0.5 s with torch loaded): tuner.execution.exiting


if __name__ == "__main__":
    main()
