"""A worker process for the store's concurrency tests: ``python store_worker.py MODE URL STUDY_ID WORKER [...]``.

Run as a separate process (never imported by pytest). Modes:

* ``run URL STUDY_ID WORKER SEED LEASE_S DEADLINE_S [GO_FILE]``: open the store, print ``ready``, wait for
  ``GO_FILE`` to exist (so all workers start together), then claim and finish trials (instant fake work)
  until the study is done; print ``{"done": [numbers], "errors": [...]}`` as JSON.
* ``hang URL STUDY_ID WORKER LEASE_S``: claim one trial, record an epoch, print its number, then sleep (the
  test kills it with SIGKILL).
* ``open URL``: open the store (first-time migration race) and print ``{"ok": true}``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import optuna

sys.path.insert(0, str(Path(__file__).parent))
from store_factories import objective, suggest_lambda  # noqa: E402

from storage import Store  # noqa: E402


def run(url: str, study_id: int, worker: str, seed: int, lease_s: float, deadline_s: float,
        go_file: str | None = None) -> dict:
    store = Store(url)
    print("ready", flush=True)
    while go_file and not Path(go_file).exists():
        time.sleep(0.01)
    sampler = optuna.samplers.RandomSampler(seed=seed)
    done: list[int] = []
    errors: list[str] = []
    stop = time.monotonic() + deadline_s
    while time.monotonic() < stop:
        try:
            claim = store.claim_trial(study_id, worker, suggest_lambda, sampler=sampler, lease_timeout_s=lease_s)
            if claim is None:
                if store.get_study(study_id).status == "done":
                    break
                time.sleep(0.05)  # the rest is running elsewhere (or waiting for a lease to expire)
                continue
            store.heartbeat(claim)
            store.record_epoch(claim, 0, {"val_accuracy": objective(claim.params)})
            store.report(claim, 0, objective(claim.params))
            store.finish_trial(claim, "complete", objective(claim.params), {"worker": worker})
            done.append(claim.number)
        except Exception as e:  # collected, so the test can show every failure of every worker
            errors.append(f"{type(e).__name__}: {e}")
    else:
        errors.append(f"deadline of {deadline_s} s reached")
    store.close()
    return {"done": done, "errors": errors}


def hang(url: str, study_id: int, worker: str, lease_s: float) -> None:
    store = Store(url)
    claim = store.claim_trial(study_id, worker, suggest_lambda, lease_timeout_s=lease_s,
                              sampler=optuna.samplers.RandomSampler(seed=99))
    assert claim is not None
    store.record_epoch(claim, 0, {"val_accuracy": 0.0})
    print(json.dumps({"number": claim.number, "attempt": claim.attempt}), flush=True)
    time.sleep(600)


def main(argv: list[str]) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    mode, url = argv[0], argv[1]
    if mode == "run":
        go_file = argv[7] if len(argv) > 7 else None
        print(json.dumps(run(url, int(argv[2]), argv[3], int(argv[4]), float(argv[5]), float(argv[6]), go_file)))
    elif mode == "hang":
        hang(url, int(argv[2]), argv[3], float(argv[4]))
    elif mode == "open":
        Store(url).close()
        print(json.dumps({"ok": True}))
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
