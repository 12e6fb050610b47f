"""``auxtune launch slurm`` (``tuner/launch_slurm.py``): workers as submitit jobs.

No Slurm runs here, so the jobs run on submitit's real ``LocalExecutor`` (``--cluster local``): the same pickled
tasks, the same controller, signals and requeue path. What Slurm itself would get is checked as the sbatch script
submitit writes from our parameters.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from storage import Store, StudyRecord, WorkerRecord
from tests.tuner.execution.test_study_run import ROOT, _wait, spec_dict
from tuner.cli.main import app
from tuner.execution.slurm import LaunchError, LaunchPlan, parse_time, slurm_parameters
from tuner.execution.submit import create_or_resume
from tuner.execution.worker import Worker, WorkerConfig
from tuner.spec import parse_spec


def new_study(url: str, name: str, n_trials: int, epochs: int, **search: object) -> StudyRecord:
    with Store(url) as store:
        return create_or_resume(store, parse_spec(spec_dict(name, n_trials=n_trials, epochs=epochs, **search)))


def launch(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    """``auxtune launch slurm --cluster local ARGS`` as its own process in its own session (as in a terminal: a
    Ctrl-C there reaches the whole group), logs under ``tmp_path/logs``."""
    cmd = [sys.executable, "-m", "tuner.cli", "launch", "slurm", "--cluster", "local",
           "--log-dir", str(tmp_path / "logs"), *args]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def finish(proc: subprocess.Popen[str], timeout: float = 240) -> str:
    try:
        out, _ = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
    return out


def worker_training(store: Store, study: StudyRecord) -> WorkerRecord | None:
    """The registered worker that holds a running trial of ``study``, if one does."""
    return next((w for w in store.workers() if w.current_study_id == study.id and w.current_trial_number is not None),
                None)


def test_local_cluster_finishes_a_study(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'local.db'}"
    study = new_study(db_url, "slurm-local", n_trials=4, epochs=1)
    proc = launch(tmp_path, "--workers", "2", "--db", db_url, "--study", "slurm-local", "--time", "10")
    out = finish(proc)
    assert proc.returncode == 0, out
    assert "started 2 local job(s)" in out and "progress: auxtune status STUDY --db" in out
    with Store(db_url) as store:
        assert store.get_study(study.id).status == "done"
        rows = store.trials(study.id)
        assert sorted(t.number for t in rows) == [0, 1, 2, 3]
        assert all(t.state == "complete" and t.attempt == 1 for t in rows), [(t.number, t.state) for t in rows]
        workers = {w.id for w in store.workers()}
    # two array tasks, each a worker named after its submitit job ("JOBID@HOST-PID"), each reporting its trials
    assert len(workers) == 2 and {t.worker_id for t in rows} <= workers
    ran = [line for line in out.splitlines() if line.startswith("job ")]
    assert len(ran) == 2 and all(line.split(":")[0][4:] == line.split("worker ")[1].split("@")[0] for line in ran)
    assert sum(int(line.split(" ran ")[1].split()[0]) for line in ran) == 4


def test_sigterm_of_a_launched_worker_gives_its_trial_back(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'term.db'}"
    # ~50 ms an epoch here: seconds of training
    study = new_study(url, "slurm-term", n_trials=1, epochs=60, controls=False)
    proc = launch(tmp_path, "--workers", "1", "--db", url)
    try:
        with Store(url) as store:
            _wait(lambda: worker_training(store, study) is not None, 120, "the launched worker training", every=0.05)
            victim = worker_training(store, study)
            assert victim is not None
            os.kill(victim.pid, signal.SIGTERM)
            out = finish(proc)
            assert proc.returncode == 0, out
            assert f"worker {victim.id} ran 0 trial(s), stopped by SIGTERM" in out
            number = victim.current_trial_number
            given_back = store.get_trial(study.id, number)
            assert given_back.state == "queued" and given_back.attempt == 1 and given_back.worker_id is None
            assert store.epochs(study.id, number) == [], "a given-back attempt leaves no rows"
            # and it completes: the next worker takes it as the same first attempt (an expired lease would be 2)
            assert Worker(store, config=WorkerConfig(poll_s=0.1)).run([study.name]) >= 1
            done = store.get_trial(study.id, number)
            assert done.state == "complete" and done.attempt == 1 and done.worker_id != victim.id
    finally:
        if proc.poll() is None:
            proc.kill()


def test_ctrl_c_of_the_launcher_gives_the_trials_back(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ctrl-c.db'}"
    study = new_study(url, "slurm-ctrl-c", n_trials=2, epochs=60)
    proc = launch(tmp_path, "--workers", "1", "--db", url)
    try:
        with Store(url) as store:
            _wait(lambda: worker_training(store, study) is not None, 120, "the launched worker training", every=0.05)
            victim = worker_training(store, study)
            assert victim is not None and victim.current_trial_number is not None
            os.killpg(proc.pid, signal.SIGINT)  # the terminal's Ctrl-C: the launcher, its local jobs and tasks
            out = finish(proc)
            assert proc.returncode == 130, out
            assert f"worker {victim.id} ran 0 trial(s), stopped by" in out
            given_back = store.get_trial(study.id, victim.current_trial_number)
            assert given_back.state == "queued" and given_back.attempt == 1, given_back
    finally:
        if proc.poll() is None:
            proc.kill()


def test_preemption_signal_with_requeue_gives_the_trial_back_and_requeues_the_task(fresh_pg_url: str,
                                                                                     tmp_path: Path) -> None:
    url = fresh_pg_url  # the other tests' studies are SQLite files: this one runs on PostgreSQL
    study = new_study(url, "slurm-requeue", n_trials=2, epochs=40)
    proc = launch(tmp_path, "--workers", "1", "--db", url, "--requeue")
    try:
        with Store(url) as store:
            _wait(lambda: worker_training(store, study) is not None, 120, "the launched worker training", every=0.05)
            victim = worker_training(store, study)
            assert victim is not None and victim.current_trial_number is not None
            os.kill(victim.pid, signal.SIGUSR2)  # what Slurm sends --signal-delay s before the limit, or on preemption
            out = finish(proc)
            assert proc.returncode == 0, out
            rows = {t.number: t for t in store.trials(study.id)}
            workers = {w.id for w in store.workers()}
            status = store.get_study(study.id).status
    finally:
        if proc.poll() is None:
            proc.kill()
    assert status == "done" and sorted(rows) == [0, 1]
    assert all(t.state == "complete" and t.attempt == 1 for t in rows.values()), rows
    # the signalled trial was finished by the requeued task: the same submitit job, a new process
    again = rows[victim.current_trial_number]
    assert again.worker_id != victim.id
    assert len(workers) == 2 and again.worker_id.split("@")[0] == victim.id.split("@")[0]
    [line] = [line for line in out.splitlines() if line.startswith("job ")]
    assert f"worker {again.worker_id} ran" in line and "stopped by" not in line
    log = next((tmp_path / "logs").glob("*_0_log.out")).read_text()
    assert "Requeued job" in log


@pytest.mark.parametrize(("args", "flag"), [
    (["--gpus", "1", "--workers", "2"], "--gpus/--workers: give one"),
    ([], "--gpus/--workers: say how many"),
    (["--workers", "0"], "--workers: 0 tasks"),
    (["--workers", "1", "--cluster", "pbs"], "--cluster: 'pbs'"),
    (["--workers", "1", "--cluster", "slurm"], "--db: a Slurm job's workers run on other nodes"),
    (["--workers", "1", "--time", "soon"], "--time: 'soon' is not a Slurm time"),
    (["--workers", "1", "--time", "0:30"], "--time: '0:30' is under a minute"),
    (["--workers", "1", "--time", "1", "--signal-delay", "90"], "--signal-delay: 90 s"),
    (["--workers", "1", "--sbatch", "account"], "--sbatch: 'account': expected KEY=VALUE"),
    (["--workers", "1", "--study", "nope"], "no study 'nope'"),
])
def test_bad_flags_exit_2_naming_the_flag(tmp_path: Path, args: list[str], flag: str) -> None:
    url = f"sqlite:///{tmp_path / 'flags.db'}"
    cluster = [] if "--cluster" in args else ["--cluster", "local"]
    result = CliRunner().invoke(app, ["launch", "slurm", "--db", url, "--log-dir", str(tmp_path / "logs"),
                                      *cluster, *args])
    assert result.exit_code == 2, result.output
    assert flag in " ".join(result.output.split()), result.output
    assert not (tmp_path / "logs").exists(), "nothing is submitted"


def test_no_slurm_here_is_refused_before_the_database_is_touched(tmp_path: Path) -> None:
    unreachable = "postgresql://nobody@127.0.0.1:1/nothing"
    result = CliRunner().invoke(app, ["launch", "slurm", "--db", unreachable, "--gpus", "2"])
    assert result.exit_code == 2, result.output
    assert "--cluster: slurm: no Slurm here (srun is not on PATH)" in " ".join(result.output.split())


def test_local_gpus_beyond_this_machine_are_refused(tmp_path: Path) -> None:
    import torch

    url = f"sqlite:///{tmp_path / 'gpus.db'}"
    n = torch.cuda.device_count() + 1
    result = CliRunner().invoke(app, ["launch", "slurm", "--cluster", "local", "--db", url, "--gpus", str(n)])
    assert result.exit_code == 2, result.output
    assert f"--gpus: {n} GPU(s) asked, and this machine has {n - 1}" in " ".join(result.output.split())


@pytest.mark.parametrize(("text", "minutes"), [("90", 90), ("1:30", 2), ("2:00:00", 120), ("1-12", 2160),
                                               ("1-0:30", 1470), ("0-0:0:61", 2)])
def test_slurm_times_in_minutes(text: str, minutes: int) -> None:
    assert parse_time(text) == minutes


def test_bad_slurm_time_names_the_flag() -> None:
    with pytest.raises(LaunchError, match="--time: '1:2:3:4' is not a Slurm time"):
        parse_time("1:2:3:4")


def test_the_sbatch_script_asks_one_gpu_per_array_task(tmp_path: Path) -> None:
    from submitit.slurm.slurm import _make_sbatch_string  # what SlurmExecutor writes and sbatch reads

    plan = LaunchPlan(url="postgresql://u@db/auxtune", count=4, gpus=True, partition="gpu", time_min=90,
                      signal_delay_s=120, requeue=True, sbatch={"account": "proj"})
    script = _make_sbatch_string(command="python -m submitit.core._submit x", folder=tmp_path, map_count=4,
                                 **slurm_parameters(plan))
    lines = set(script.splitlines())
    assert {"#SBATCH --array=0-3%4", "#SBATCH --gpus-per-node=1", "#SBATCH --partition=gpu", "#SBATCH --time=90",
            "#SBATCH --signal=USR2@120", "#SBATCH --requeue", "#SBATCH --account=proj", "#SBATCH --nodes=1",
            "#SBATCH --ntasks-per-node=1", "#SBATCH --job-name=auxtune-worker"} <= lines, script
    cpu = slurm_parameters(LaunchPlan(url="postgresql://u@db/auxtune", count=2, gpus=False, cpus_per_task=4))
    assert "gpus_per_node" not in cpu and cpu["cpus_per_task"] == 4 and "additional_parameters" not in cpu
