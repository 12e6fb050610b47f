"""The ``images`` workload: an image folder read from disk per item, end to end through the CLI, and its refusals."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.factories.images import images_spec, write_image_folder
from tuner.engine.loop import run_trial
from tuner.engine.prepared import prepare
from tuner.spec import SpecError, parse_spec

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Four classes of 12 generated 16×16 PNGs, and their attributes CSV."""
    return write_image_folder(tmp_path_factory.mktemp("pets") / "images", per_class=12)


def test_a_trial_runs_through_the_cli_with_paths_relative_to_the_spec(folder: tuple[Path, Path],
                                                                      tmp_path: Path) -> None:
    root, attributes = folder
    spec = images_spec(root, attributes, augment={"flip": True, "crop_padding": 2, "jitter": 0.1})
    spec["workload"]["params"].update(root=str(root.relative_to(root.parent)), attributes=attributes.name)  # type: ignore[index]
    path = root.parent / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    r = subprocess.run([sys.executable, "-m", "tuner.cli", "trial", str(path), "--json"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["status"] == "complete" and out["sanity"]["passed"]
    assert len(out["epochs"]) == 2 and set(out["epochs"][0]["val_loss"]) >= {"main", "ear", "coat", "total"}
    assert out["test_accuracy"] is not None


def test_describing_it_reads_no_image_and_imports_no_torch(folder: tuple[Path, Path]) -> None:
    root, attributes = folder
    code = ("import sys; from tuner.workloads import make_workload; "
            f"w = make_workload('images', {{'root': {str(root)!r}, 'attributes': {str(attributes)!r}}}); "
            "print(sorted(w.describe_tasks()), w.describe_shapes()); assert 'torch' not in sys.modules")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "['coat', 'ear'] ((3, 64, 64), 4)"


def _refusal(spec: dict[str, object]) -> tuple[str, str]:
    with pytest.raises(SpecError) as info:
        parse_spec(spec)
    return info.value.errors[0]


def test_bad_folders_and_tables_are_refused_naming_the_field(folder: tuple[Path, Path], tmp_path: Path) -> None:
    root, attributes = folder
    empty = tmp_path / "empty"
    empty.mkdir()
    field, message = _refusal(images_spec(empty, attributes))
    assert field == "workload.params.root" and message.startswith(f"no class sub-folders in {empty}")
    (empty / "cat").mkdir()
    (empty / "cat" / "notes.txt").write_text("no images here")
    assert _refusal(images_spec(empty, attributes))[1].startswith("no images")
    missing = tmp_path / "missing.csv"
    missing.write_text("class,ear,coat\nbeagle,0.5,0.5\n")
    field, message = _refusal(images_spec(root, missing))
    assert field == "workload.params.attributes" and "'persian'" in message and "no row" in message
    out_of_range = tmp_path / "range.csv"
    out_of_range.write_text(attributes.read_text().replace("0.9", "1.7"))
    field, message = _refusal(images_spec(root, out_of_range))
    assert field == "workload.params.attributes" and "1.7" in message and "[0, 1]" in message
    assert _refusal(images_spec(root, attributes, image_size=100_000))[0] == "workload.params.image_size"
    assert _refusal(images_spec(root, attributes, augment={"jitter": 3}))[0] == "workload.params.augment.jitter"


def test_per_image_targets_and_an_unreadable_image(folder: tuple[Path, Path], tmp_path: Path) -> None:
    root, attributes = folder
    files = sorted(str(p.relative_to(root)) for p in root.glob("*/*.png"))
    targets = tmp_path / "targets.csv"
    targets.write_text("file,size\n" + "".join(f"{f},{i * 0.1:.1f}\n" for i, f in enumerate(files)))
    spec = images_spec(root, attributes, targets=str(targets))
    spec["aux_tasks"] = [{"name": "size", "loss": "mse"}]  # values past 1: a real-valued task
    prep = prepare(parse_spec(spec))
    assert prep.data.tasks["size"].kind == "real"
    assert run_trial(prep, {"size": 0.5}, seed=0).status == "complete"
    targets.write_text("file,size\n" + "".join(f"{f},0.5\n" for f in files[1:]))
    field, message = _refusal(images_spec(root, attributes, targets=str(targets)))
    assert field == "workload.params.targets" and "1 images have no row" in message
    broken = tmp_path / "broken"
    write_image_folder(broken, per_class=6)
    (broken / "pug" / "00002.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"workload.params.root: cannot read image 'pug/00002.png'"):
        prepare(parse_spec(images_spec(broken, attributes)))


def test_a_kd_teacher_is_refused_at_submission_naming_the_field(folder: tuple[Path, Path]) -> None:
    # a teacher predicts every input once, in memory; an image folder is read per item: refused before it is
    # queued, not only by the worker that would build the data
    root, attributes = folder
    spec = images_spec(root, attributes)
    spec["aux_tasks"] = [*spec["aux_tasks"], {"name": "distil", "loss": "kd", "teacher": "teacher/3"}]  # type: ignore[misc]
    field, message = _refusal(spec)
    assert field == "aux_tasks.2.teacher" and "reads its splits per item" in message and "trunk.from_trial" in message
