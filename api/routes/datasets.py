"""``/datasets``: upload a CSV or Parquet table, list, read, download and delete.

The upload's body is the file itself (any content type), streamed into the
artifact store; one over ``TUNEFORGE_MAX_DATASET_BYTES`` is answered 413 and
nothing is stored. Studies name a dataset by id or name
(``objective.dataset: {"source": "uploaded", "name": ...}``); workers download
its bytes from ``/datasets/{id}/content`` and cache them by fingerprint.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from ..artifacts import ArtifactTooLarge, dataset_key
from ..auth import CurrentProject
from ..db.engine import Database
from ..limits import BodyTooLarge
from ..openapi import BODY, errors
from ..schemas.common import TRIMMED, decode_page_token, encode_page_token
from ..schemas.datasets import DatasetPage, DatasetPublic, dataset_public
from ..services import dataset_store as service
from .deps import MAX_ID, PageSize, Store, get_db, page_size_of

router = APIRouter(prefix="/datasets", tags=["datasets"])
DB = Annotated[Database, Depends(get_db)]
DatasetId = Annotated[int, Path(ge=0, le=MAX_ID, description="the dataset's id")]
#: The path pattern of the upload, for the body-size middleware.
UPLOAD_PATH = r"/api/v1/datasets"
BINARY: dict[str, Any] = {"schema": {"type": "string", "format": "binary"}}
ONE = (404, 422, 503)


@router.post(
    "",
    status_code=201,
    response_model=DatasetPublic,
    operation_id="uploadDataset",
    summary="Upload a CSV or Parquet table",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/octet-stream": BINARY},
        }
    },
    responses=errors(*BODY, 409, 503),
)
async def upload_dataset(
    request: Request,
    db: DB,
    store: Store,
    project: CurrentProject,
    name: Annotated[
        str,
        Query(
            description="unique per project",
            json_schema_extra={"minLength": 1, "maxLength": 200, "pattern": TRIMMED},
        ),
    ],
    format: Annotated[
        Literal["csv", "parquet"] | None,
        Query(description="csv or parquet (default: detected from the bytes)"),
    ] = None,
    target: Annotated[
        str | None,
        Query(
            description="the column studies predict by default",
            json_schema_extra={"minLength": 1, "maxLength": 500},
        ),
    ] = None,
    groups: Annotated[
        str | None,
        Query(
            description="a group-label column (group_kfold)",
            json_schema_extra={"minLength": 1, "maxLength": 500},
        ),
    ] = None,
) -> DatasetPublic:
    """Store the body (the file's bytes, any content type but JSON) as a dataset: the
    server reads it once to detect each column's kind (numeric, boolean, categorical,
    datetime) and missing values, and fingerprints it."""
    limit = request.app.state.settings.max_dataset_bytes
    try:
        record = await service.upload(
            db,
            store,
            request.stream(),
            name=name,
            fmt=format,
            target=target,
            groups=groups,
            project_id=project,
            limit=limit,
        )
    except ArtifactTooLarge:
        raise BodyTooLarge from None  # the size-limit middleware answers 413
    return dataset_public(record)


@router.get(
    "",
    response_model=DatasetPage,
    operation_id="listDatasets",
    summary="List datasets",
    responses=errors(422, 503),
)
def list_datasets(
    db: DB,
    project: CurrentProject,
    name: str | None = None,
    page_size: PageSize = 100,
    page_token: str | None = None,
) -> DatasetPage:
    """The project's datasets in upload order, one page at a time (``name`` filters)."""
    found, last = service.list_datasets(
        db,
        name=name,
        after_id=decode_page_token(page_token),
        page_size=page_size_of(page_size),
        project_id=project,
    )
    return DatasetPage(
        datasets=[dataset_public(d) for d in found], next_page_token=encode_page_token(last)
    )


@router.get(
    "/{dataset_id}",
    response_model=DatasetPublic,
    operation_id="getDataset",
    summary="Get a dataset",
    responses=errors(*ONE),
)
def get_dataset(dataset_id: DatasetId, db: DB, project: CurrentProject) -> DatasetPublic:
    """The dataset with its rows and columns."""
    return dataset_public(service.get_dataset(db, dataset_id, project))


@router.get(
    "/{dataset_id}/content",
    response_class=StreamingResponse,
    operation_id="downloadDataset",
    summary="Download a dataset's bytes",
    responses={
        200: {
            "description": "The uploaded bytes; `X-Dataset-Sha256` is their fingerprint.",
            "content": {"application/octet-stream": BINARY},
        },
        **errors(*ONE),
    },
)
def download_dataset(
    dataset_id: DatasetId, db: DB, store: Store, project: CurrentProject
) -> StreamingResponse:
    """The bytes as uploaded (what workers fetch once and cache by fingerprint)."""
    record = service.get_dataset(db, dataset_id, project)
    key = dataset_key(record.sha256)
    headers = {
        "X-Dataset-Sha256": record.sha256,
        "X-Dataset-Format": record.format,
        "ETag": f'"{record.sha256}"',
        "Content-Length": str(record.size_bytes),
    }
    return StreamingResponse(
        store.read_chunks(key), media_type="application/octet-stream", headers=headers
    )


@router.delete(
    "/{dataset_id}",
    status_code=204,
    response_class=Response,
    operation_id="deleteDataset",
    summary="Delete a dataset",
    responses={204: {"description": "Deleted, with its bytes."}, **errors(409, *ONE)},
)
async def delete_dataset(
    dataset_id: DatasetId, db: DB, store: Store, project: CurrentProject
) -> Response:
    """Delete a dataset that no unfinished study uses (409 names those that do)."""
    await run_in_threadpool(service.delete_dataset, db, store, dataset_id, project)
    return Response(status_code=204)
