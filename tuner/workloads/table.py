"""``table``: the user's own tabular data, no code (the pets recipe).

- ``data``: a CSV or Parquet file of numeric (or boolean, read as 0/1) feature columns plus a ``label``
  column (the main task's classes, numbers or strings).
- ``attributes`` (optional): a CSV/Parquet file with one row per class: a column named like ``label``, then
  attribute columns with scores in [0, 1] (per-class soft targets).
- ``target_data`` (optional): a target domain for domain adaptation (``tuner.engine.domain``): a CSV/Parquet file with
  the same feature columns, from the population the model is meant for. Its rows are unlabelled inputs for the
  aux task ``domain`` (loss ``mmd``), standardised with the *source* training statistics (so a shift stays a
  shift). If it also has the ``label`` column, its rows are split like the data (``val_fraction``,
  ``test_fraction``; the rest is the unlabelled pool) and the ``target_val_*`` metrics are measured, so
  ``objective: {metric: target_val_accuracy}`` can choose λ_mmd.

An aux task named ``X`` takes its per-sample target from attribute column ``X`` of the sample's class, or
else from a column ``X`` of the data file (a per-sample target; such a column is then not a feature).
Class labels match between the two files by their text, with integral numbers written without a decimal
point (a label ``3.0`` in one file matches ``3`` in the other). Features are standardised with the training
split's mean and std. Every check that does not depend on the chosen aux tasks runs in ``describe_tasks``, so
a spec that parses is a spec that builds.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from pydantic import Field, model_validator

from tuner.workloads._base import (
    Split,
    TargetDomain,
    TaskInfo,
    Workload,
    WorkloadData,
    WorkloadError,
    WorkloadParams,
)
from tuner.workloads._limits import Seed
from tuner.workloads.table_files import TableTooLarge, read_table

if TYPE_CHECKING:
    import pandas as pd
    import torch

P = "workload.params"
#: The aux task a ``target_data`` file offers (kind ``domain``, loss ``mmd``).
DOMAIN_TASK = "domain"


class TableParams(WorkloadParams):
    data: str = Field(min_length=1, description="CSV or Parquet file: features + label column")
    label: str = Field(min_length=1, description="column of the main task's class")
    attributes: str | None = Field(None, description="optional per-class attribute table")
    features: list[str] | None = Field(None, description="feature columns; default: all other columns")
    target_data: str | None = Field(None, description="optional target-domain CSV/Parquet with the same feature "
                                                      "columns (and, for target metrics, the label column); "
                                                      "offers the aux task 'domain' with loss mmd")
    val_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    split_seed: Seed = 0

    @model_validator(mode="after")
    def _fractions(self) -> TableParams:
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ValueError("val_fraction + test_fraction must be < 1 to leave training data")
        return self


@lru_cache(maxsize=16)
def _read(path: str, mtime_ns: int, size: int) -> pd.DataFrame:
    """Read once per file version (path, mtime, size), within the limits of ``table_files`` (a spec may name a
    file by path, so a worker measures it as the API measures uploads); callers must not modify the frame."""
    frame = read_table(path)
    frame.columns = [str(c) for c in frame.columns]  # Parquet allows non-string column names
    return frame


def read_frame(path: str, field: str) -> pd.DataFrame:
    """Read a CSV/Parquet file, or raise a ``WorkloadError`` naming ``field``."""
    p = Path(path)
    if not p.is_file():
        raise WorkloadError(field, f"file not found: {path}; give a path to an existing CSV or Parquet file")
    try:
        st = p.stat()
        return _read(str(p.resolve()), st.st_mtime_ns, st.st_size)
    except TableTooLarge as exc:
        raise WorkloadError(field, f"{path} {exc}") from None
    except Exception as exc:  # pandas raises many types for unreadable files
        raise WorkloadError(field, f"cannot read {path} as CSV/Parquet: {exc}") from None


def _is_numeric(series: pd.Series) -> bool:
    """Numbers or booleans (read as 0/1)."""
    import pandas as pd

    return bool(pd.api.types.is_numeric_dtype(series))


def class_keys(series: pd.Series) -> pd.Series:
    """Class labels as strings, so the data file and the attribute table match whatever dtype each was read
    with: integral numbers are written without a decimal point (``3.0`` and ``3`` are both ``"3"``)."""
    import numpy as np
    import pandas as pd

    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        if np.all(np.isfinite(values) & (values == np.round(values))):
            return series.astype(np.int64).astype(str)
    return series.astype(str)


def _class_order(labels: pd.Series, keys: pd.Series) -> list[str]:
    """Distinct class keys, in numeric order for numeric labels, else in string order."""
    import pandas as pd

    distinct = sorted(set(keys))
    if pd.api.types.is_numeric_dtype(labels) and not pd.api.types.is_bool_dtype(labels):
        return sorted(distinct, key=float)
    return distinct


def _kind(series: pd.Series) -> TaskInfo:
    lo, hi = float(series.min()), float(series.max())
    if 0.0 <= lo and hi <= 1.0:
        return TaskInfo(str(series.name), "soft", 1, "scores in [0, 1]")
    return TaskInfo(str(series.name), "real", 1, f"values in [{lo:g}, {hi:g}], outside [0, 1]")


class TableWorkload(Workload):
    name: ClassVar[str] = "table"
    description: ClassVar[str] = "your CSV/Parquet data + optional per-class attribute table"
    params_model: ClassVar[type[WorkloadParams]] = TableParams
    path_params: ClassVar[tuple[str, ...]] = ("data", "attributes", "target_data")

    @property
    def p(self) -> TableParams:
        return self.params  # type: ignore[return-value]

    # -- reading and checking (no torch: runs when a spec is parsed) -----------------------------------
    def _frames(self) -> tuple[pd.DataFrame, pd.DataFrame | None]:
        """Both tables, checked: everything that does not depend on the chosen aux tasks fails here, so a
        spec that parses is a spec that builds."""
        p = self.p
        data = read_frame(p.data, f"{P}.data")
        if p.label not in data.columns:
            raise WorkloadError(f"{P}.label", f"column {p.label!r} is not in {p.data}; "
                                              f"columns: {list(data.columns)}")
        if data[p.label].isna().any():
            raise WorkloadError(f"{P}.data", f"column {p.label!r} has empty labels; fill or drop those rows")
        n_classes = data[p.label].nunique()
        if n_classes < 2:
            raise WorkloadError(f"{P}.label", f"column {p.label!r} has one class only; the main task needs ≥ 2")
        self._check_features(data)
        n_train = self._split_sizes(len(data))[0]
        if n_train < 2:
            raise WorkloadError(f"{P}.data", f"{len(data)} rows leave {n_train} for training after the "
                                             f"validation and test splits; give more rows")
        if p.attributes is None:
            return data, None
        return data, self._check_attributes(data, read_frame(p.attributes, f"{P}.attributes"))

    def _check_features(self, data: pd.DataFrame) -> None:
        # A column that is not numeric or has empty cells can never be an aux task, so unless ``features``
        # says otherwise it would be a feature: refuse it now rather than when a worker builds the data.
        p = self.p
        if p.features is not None:
            absent = [c for c in p.features if c not in data.columns]
            if absent:
                raise WorkloadError(f"{P}.features", f"columns {absent} are not in {p.data}")
            if p.label in p.features:
                raise WorkloadError(f"{P}.features", f"{p.label!r} is the label, not a feature; remove it")
            candidates = list(p.features)
        else:
            candidates = [c for c in data.columns if c != p.label]
        bad = [c for c in candidates if not _is_numeric(data[c])]
        if bad:
            raise WorkloadError(f"{P}.data", f"feature column(s) {bad} are not numeric; encode them as numbers "
                                             "or list only numeric columns in workload.params.features")
        empty = [c for c in candidates if data[c].isna().any()]
        if empty:
            raise WorkloadError(f"{P}.data", f"feature column(s) {empty} have empty cells; fill or drop them")

    def _check_attributes(self, data: pd.DataFrame, attrs: pd.DataFrame) -> pd.DataFrame:
        p = self.p
        if p.label not in attrs.columns:
            raise WorkloadError(f"{P}.attributes", f"the attribute table needs a column named {p.label!r} "
                                                   f"(like the label); it has {list(attrs.columns)}")
        keys = class_keys(attrs[p.label])
        if keys.duplicated().any():
            raise WorkloadError(f"{P}.attributes", f"classes {sorted(set(keys[keys.duplicated()]))} have "
                                                   "more than one row; keep one row per class")
        missing = sorted(set(class_keys(data[p.label])) - set(keys))
        if missing:
            raise WorkloadError(f"{P}.attributes", f"classes {missing[:10]} of {p.label!r} have no row in the "
                                                   "attribute table; add a row for each class")
        for col in attrs.columns:
            if col == p.label:
                continue
            if not _is_numeric(attrs[col]) or attrs[col].isna().any():
                raise WorkloadError(f"{P}.attributes", f"attribute column {col!r} must hold numbers, "
                                                       "no empty cells")
        return attrs

    def _target(self, data: pd.DataFrame) -> pd.DataFrame | None:
        """The target-domain table, checked against ``data`` (None without ``target_data``); the feature columns
        are checked again in ``build``, once the per-sample aux tasks (not features) are known."""
        p = self.p
        if p.target_data is None:
            return None
        field = f"{P}.target_data"
        target = read_frame(p.target_data, field)
        if DOMAIN_TASK in data.columns:
            raise WorkloadError(field, f"{p.data} has a column named {DOMAIN_TASK!r}, the name of the target-domain "
                                       "aux task; rename that column")
        if p.features is not None:
            absent = [c for c in p.features if c not in target.columns]
            if absent:
                raise WorkloadError(field, f"feature column(s) {absent} are not in {p.target_data}; the target "
                                           f"domain needs the same feature columns as data; it has "
                                           f"{list(target.columns)}")
        candidates = p.features if p.features is not None else [c for c in data.columns if c != p.label]
        shared = [c for c in candidates if c in target.columns]
        if not shared:
            raise WorkloadError(field, f"{p.target_data} has none of the feature columns of {p.data}; the target "
                                       f"domain needs the same feature columns; it has {list(target.columns)}")
        bad = [c for c in shared if not _is_numeric(target[c]) or target[c].isna().any()]
        if bad:
            raise WorkloadError(field, f"feature column(s) {bad} of {p.target_data} are not numeric or have empty "
                                       "cells; the target domain's features must be numbers like the data's")
        if p.label in target.columns:
            labels = target[p.label]
            if labels.isna().any():
                raise WorkloadError(field, f"column {p.label!r} of {p.target_data} has empty labels; fill them, or "
                                           "drop the column for an unlabelled target domain")
            unknown = sorted(set(class_keys(labels)) - set(class_keys(data[p.label])))
            if unknown:
                raise WorkloadError(field, f"classes {unknown[:10]} of {p.label!r} in {p.target_data} are not "
                                           f"classes of {p.data}; the target domain has the same classes")
            if self._split_sizes(len(target))[0] < 1:
                raise WorkloadError(field, f"{len(target)} labelled target rows leave none for the unlabelled "
                                           "pool after the validation and test splits; give more rows")
        elif len(target) < 2:
            raise WorkloadError(field, f"{p.target_data} has {len(target)} row(s); give at least 2")
        return target

    def target_labelled(self) -> bool:
        if self.p.target_data is None:
            return False
        target = self._target(self._frames()[0])
        return target is not None and self.p.label in target.columns

    def _target_domain(self, target: pd.DataFrame, features: list[str], index: dict[str, int], mean: torch.Tensor,
                       std: torch.Tensor) -> TargetDomain:
        """The target rows as tensors, standardised like the source; labelled: pool / val / test."""
        import numpy as np
        import torch

        p = self.p
        absent = [c for c in features if c not in target.columns]
        if absent:
            raise WorkloadError(f"{P}.target_data", f"feature column(s) {absent} are not in {p.target_data}; the "
                                                    "target domain needs every feature column of data: add them, "
                                                    "or list the shared ones in workload.params.features")
        x = (torch.tensor(target[features].to_numpy(dtype=np.float32)) - mean) / std
        if p.label not in target.columns:  # unlabelled: the mmd pool only (its labels are never read)
            return TargetDomain(train=Split(x, torch.zeros(len(x), dtype=torch.long)))
        y = torch.tensor(class_keys(target[p.label]).map(index).to_numpy(dtype=np.int64))
        whole = Split(x, y)
        order = torch.randperm(len(y), generator=torch.Generator().manual_seed(p.split_seed + 1))
        n_pool, n_val, _ = self._split_sizes(len(y))
        return TargetDomain(train=whole.take(order[:n_pool]), val=whole.take(order[n_pool:n_pool + n_val]),
                            test=whole.take(order[n_pool + n_val:]))

    def _split_sizes(self, n: int) -> tuple[int, int, int]:
        n_val, n_test = max(1, round(n * self.p.val_fraction)), max(1, round(n * self.p.test_fraction))
        return n - n_val - n_test, n_val, n_test

    def describe_tasks(self) -> dict[str, TaskInfo]:
        data, attrs = self._frames()
        tasks: dict[str, TaskInfo] = {}
        for col in data.columns:
            if col != self.p.label and _is_numeric(data[col]) and not data[col].isna().any():
                info = _kind(data[col])
                tasks[col] = TaskInfo(col, info.kind, 1, f"per-sample column, {info.description}")
        if attrs is not None:  # attribute columns take precedence over same-named data columns
            for col in attrs.columns:
                if col != self.p.label:
                    info = _kind(attrs[col])
                    tasks[col] = TaskInfo(col, info.kind, 1, f"per-class attribute, {info.description}")
        if self._target(data) is not None:
            tasks[DOMAIN_TASK] = TaskInfo(DOMAIN_TASK, "domain", 1, "source vs the target domain of target_data "
                                                                    "(loss mmd)")
        return tasks

    def _features(self, data: pd.DataFrame, attrs: pd.DataFrame | None, aux_tasks: Sequence[str]) -> list[str]:
        """The feature columns when ``aux_tasks`` are the aux tasks: per-sample targets are not features."""
        p = self.p
        available = self.describe_tasks()
        unknown = [t for t in aux_tasks if t not in available]
        if unknown:
            raise WorkloadError("aux_tasks", f"unknown aux task(s) {unknown}; available: {sorted(available)}")
        attr_cols = set(attrs.columns) - {p.label} if attrs is not None else set()
        target = self._target(data)
        domain = target is not None and DOMAIN_TASK in aux_tasks
        per_sample = {t for t in aux_tasks if t not in attr_cols and not (domain and t == DOMAIN_TASK)}
        if p.features is not None:
            clash = sorted(set(p.features) & per_sample)
            if clash:
                raise WorkloadError(f"{P}.features", f"columns {clash} are aux-task targets, not features; "
                                                     "remove them from features")
            features = list(p.features)
        else:
            features = [c for c in data.columns if c != p.label and c not in per_sample]
        if not features:
            raise WorkloadError(f"{P}.data", "no feature columns left; the data needs numeric feature columns "
                                             "besides the label and the per-sample aux-task targets")
        return features

    def describe_shapes(self, aux_tasks: Sequence[str] = ()) -> tuple[tuple[int, ...], int]:
        data, attrs = self._frames()
        return (len(self._features(data, attrs, aux_tasks)),), len(set(class_keys(data[self.p.label])))

    # -- tensors ---------------------------------------------------------------------------------------
    def build(self, aux_tasks: Sequence[str] = ()) -> WorkloadData:
        import numpy as np
        import torch

        p = self.p
        data, attrs = self._frames()
        available = self.describe_tasks()
        features = self._features(data, attrs, aux_tasks)
        attr_cols = set(attrs.columns) - {p.label} if attrs is not None else set()
        target = self._target(data)
        domain = target is not None and DOMAIN_TASK in aux_tasks

        labels = class_keys(data[p.label])
        classes = _class_order(data[p.label], labels)
        index = {c: i for i, c in enumerate(classes)}
        y = torch.tensor(labels.map(index).to_numpy(dtype=np.int64))
        x = torch.tensor(data[features].to_numpy(dtype=np.float32))
        aux: dict[str, torch.Tensor] = {}
        for t in aux_tasks:
            if domain and t == DOMAIN_TASK:
                aux[t] = torch.zeros(len(y))  # the mmd task has no per-sample target
            elif t in attr_cols:
                assert attrs is not None
                table = attrs.set_index(class_keys(attrs[p.label]))[t]
                aux[t] = torch.tensor(labels.map(table).to_numpy(dtype=np.float32))
            else:
                aux[t] = torch.tensor(data[t].to_numpy(dtype=np.float32))

        order = torch.randperm(len(y), generator=torch.Generator().manual_seed(p.split_seed))
        n_train, n_val, _ = self._split_sizes(len(y))
        train_x = x[order[:n_train]]
        # Standardise with the training split's statistics only, so val/test stay unseen.
        mean, std = train_x.mean(0), train_x.std(0).clamp_min(1e-6)
        full = Split((x - mean) / std, y, aux)
        return WorkloadData(
            train=full.take(order[:n_train]),
            val=full.take(order[n_train:n_train + n_val]),
            test=full.take(order[n_train + n_val:]),
            input_shape=(len(features),),
            n_classes=len(classes),
            tasks=available,
            class_names=classes,
            target=None if target is None else self._target_domain(target, features, index, mean, std),
        )
