"""Workers started by hand (or as compose replicas) without ``--stream`` draw λ from different seed streams."""

from __future__ import annotations

import pytest

from storage import Store
from tests.tuner.execution.test_study_run import _wait, spec_dict, worker_proc
from tuner.execution.faults import worker_stream
from tuner.execution.submit import create_or_resume
from tuner.spec import parse_spec


def test_worker_ids_give_distinct_streams_in_numpys_seed_range() -> None:
    streams = {worker_stream(f"host-{pid}-abcdef") for pid in range(1000)}
    assert len(streams) == 1000 and all(0 <= s < 2**31 for s in streams)


@pytest.mark.parametrize("algorithm", ["random", "tpe"])
def test_two_workers_without_stream_never_repeat_a_lambda_set(tmp_path, algorithm: str) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'streams.db'}"
    n = 10
    with Store(url) as store:
        # trials long enough (~1 s each, idle) that the second process is up (it imports torch: seconds on a loaded
        # machine) before the first has run them all
        study = create_or_resume(store, parse_spec(spec_dict("two-hands", n_trials=n, epochs=300,
                                                             algorithm=algorithm)))
        workers = [worker_proc(url, study.name, None, 10.0) for _ in range(2)]
        try:
            outs = [w.communicate(timeout=300)[0] for w in workers]
        finally:
            for w in workers:
                if w.poll() is None:
                    w.kill()
        assert [w.returncode for w in workers] == [0, 0], outs
        _wait(lambda: store.get_study(study.id).status == "done", 10, "the study to finish")
        rows = store.trials(study.id, limit=100)
        assert len(rows) == n and all(t.state == "complete" for t in rows)
        assert len({t.worker_id for t in rows}) == 2, "both workers should have run trials"
        searched = [tuple(sorted(t.params.items())) for t in rows if t.number >= 2]  # 0 and 1 are the controls
        assert len(set(searched)) == len(searched), sorted(searched)
