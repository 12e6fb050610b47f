"""``/api/v1/datasets``: upload a CSV/Parquet table (the ``table`` workload) or a .zip of a data folder (``images``);
read what was stored."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Path, Response, UploadFile

from api.datasets import ID_PATTERN
from api.deps import CurrentPrincipal, DatasetsDep, SettingsDep
from api.errors import error_responses
from api.schemas import DatasetPublic

router = APIRouter(prefix="/datasets", tags=["datasets"])


@router.post("", status_code=201, response_model=DatasetPublic, responses=error_responses(401, 413, 422))
def create_dataset(
    file: Annotated[UploadFile, File(description="a .csv or .parquet table, or a .zip of a data folder")],
    datasets: DatasetsDep, settings: SettingsDep, principal: CurrentPrincipal,
    label: Annotated[str, Form(min_length=1, max_length=200,
                               description="a table's column holding the class (ignored for a .zip)")] = "label",
    unlabelled: Annotated[bool, Form(description="the table may lack the label column (a table workload's "
                                                 "target_data: an unlabelled target domain)")] = False,
) -> DatasetPublic:
    """Upload a data file, a per-class attribute table, a target domain, or a .zip of a data folder (an image
    folder with one sub-folder per class, and CSV tables). A table is parsed (never executed) and refused unless
    every column but ``label`` is numeric with no empty cells; a zip is refused past its limits (entries, sizes,
    compression ratio), for any absolute path, ``..``, link or duplicate, and unless it holds only images Pillow
    opens (.png, .jpg, .jpeg) and CSVs. Refer to it in a spec as ``dataset:<id>`` (a file inside a folder:
    ``dataset:<id>/<path>``). It is kept in the database, so every worker can fetch it."""
    return datasets.save(file.file, file.filename or "", label, principal.owner, settings.max_upload_bytes,
                         unlabelled)


@router.get("/{dataset_id}", response_model=DatasetPublic, responses=error_responses(401, 403, 404, 422))
def read_dataset(
    dataset_id: Annotated[str, Path(pattern=ID_PATTERN, description="the id POST /datasets returned")],
    datasets: DatasetsDep, principal: CurrentPrincipal,
) -> DatasetPublic:
    return datasets.get(dataset_id, principal, ["path", "dataset_id"])


@router.delete("/{dataset_id}", status_code=204, response_class=Response,
               responses=error_responses(401, 403, 404, 409, 422))
def delete_dataset(
    dataset_id: Annotated[str, Path(pattern=ID_PATTERN, description="the id POST /datasets returned")],
    datasets: DatasetsDep, principal: CurrentPrincipal,
) -> Response:
    """Delete an uploaded data set, and its bytes unless another upload has the same. Refused (409, naming your
    studies) while a stored study refers to it: a study keeps its data so it can resume and be confirmed; delete
    those studies first."""
    datasets.delete(dataset_id, principal, ["path", "dataset_id"])
    return Response(status_code=204)
