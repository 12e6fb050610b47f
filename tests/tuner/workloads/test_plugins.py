"""Third-party workloads: registered through the ``auxtune.workloads`` entry point, chosen by name only.

Uses the demo plugin in ``tests/plugin_pkg`` installed as a real distribution; the test run installs it
(``pip install ./tests/plugin_pkg``), so a missing plugin is a failure here, not a skip.
"""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path
from typing import Any

import pytest

from tuner.engine.loop import run_trial
from tuner.engine.prepared import prepare
from tuner.spec import SpecError, parse_spec
from tuner.workloads import ENTRY_POINT_GROUP, Workload, get_workload, registered_workloads

DISTRIBUTION = "auxtune-demo-plugin"
INSTALL = "run: pip install ./tests/plugin_pkg"


@pytest.fixture(autouse=True, scope="module")
def _plugin_installed() -> None:
    try:
        dist = importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        pytest.fail(f"the demo plugin distribution {DISTRIBUTION!r} is not installed; {INSTALL}")
    names = [ep.name for ep in dist.entry_points if ep.group == ENTRY_POINT_GROUP]
    if "xor-demo" not in names:
        pytest.fail(f"{DISTRIBUTION!r} is installed without its 'xor-demo' entry point (stale install?); "
                    f"{INSTALL}")


def xor_spec(workload: str = "xor-demo", **params: Any) -> dict[str, Any]:
    return {"name": "plugin-test", "workload": {"name": workload, "params": params},
            "aux_tasks": [{"name": "signs", "loss": "bce"}],
            "training": {"epochs": 3, "batch_size": 32, "lr": 0.01, "device": "cpu"}}


def test_registry_lists_the_plugin_with_its_tasks() -> None:
    registry = registered_workloads()
    assert {"digits", "synthetic", "table", "xor-demo"} <= set(registry)
    cls = get_workload("xor-demo")
    assert issubclass(cls, Workload) and cls.name == "xor-demo"
    assert cls.__module__ == "auxtune_demo_plugin"
    tasks = cls({}).describe_tasks()
    assert set(tasks) == {"signs"}
    assert tasks["signs"].kind == "soft" and tasks["signs"].dim == 2 and "bce" in tasks["signs"].losses


def test_spec_naming_the_plugin_parses_and_a_trial_runs() -> None:
    spec = parse_spec(xor_spec(n=200, noise_dims=1))
    prep = prepare(spec)
    assert prep.data.input_shape == (3,) and prep.data.n_classes == 2
    result = run_trial(prep, spec.default_lambdas(), seed=0)
    assert result.status == "complete", result.reason
    assert result.sanity is not None and result.sanity.passed
    assert len(result.epochs) == 3


def test_plugin_params_are_checked_like_built_ins() -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(xor_spec(n=5))
    assert info.value.errors[0][0] == "workload.params.n"
    with pytest.raises(SpecError) as info:
        parse_spec({**xor_spec(), "aux_tasks": [{"name": "signs", "loss": "ce"}]})
    assert info.value.errors[0][0] == "aux_tasks.0.loss"


@pytest.mark.parametrize("name", [
    "os.path",
    "auxtune_demo_plugin:DemoWorkload",
    "auxtune_demo_plugin.DemoWorkload",
    "tuner.workloads.digits:DigitsWorkload",
    "spec_bait_module",
    "spec_bait_module:Bait",
])
def test_module_paths_are_unknown_workloads_and_nothing_is_imported(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # An importable module that would announce being imported: a spec must never get it imported.
    (tmp_path / "spec_bait_module.py").write_text(
        "import tuner\ntuner.BAIT_IMPORTED = True\nclass Bait:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registered_workloads()  # plugins load through the registry (entry points), not through the spec
    before = set(sys.modules)
    with pytest.raises(SpecError) as info:
        parse_spec(xor_spec(name))
    field, message = info.value.errors[0]
    assert field == "workload.name"
    assert "unknown workload" in message and "xor-demo" in message  # lists what is registered
    assert "spec_bait_module" not in sys.modules
    assert not hasattr(__import__("tuner"), "BAIT_IMPORTED")
    assert set(sys.modules) - before == set()
