"""The server's look at a managed study's data file, when the study is created.

The path is first checked against the operator's policy
(:meth:`tuneforge.core.policy.ObjectivePolicy.resolve_data_path`: under a data
root once symlinks are followed; URLs only with an allowed scheme). Then only a
bounded sample is read: the header and the first :data:`SAMPLE_ROWS` rows of a
CSV (the dtypes pandas infers from them), or a Parquet file's schema and row
count (from its metadata) plus its first :data:`SAMPLE_ROWS` rows. The checks
themselves are :func:`tuneforge.core.datasets.check_objective_table`, which the
workers run again on the whole table they load.

URLs are not fetched by the server; their data is checked by the workers.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ...core.datasets import TableInfo, check_objective_table, describe_frame, read_error
from ...core.policy import ObjectivePolicy, is_url
from ...core.study import StudySpec
from ..db.engine import Database
from .dataset_store import resolve_uploaded, uploaded_table

#: Rows read to infer column types and count missing values (the rest is left on disk).
SAMPLE_ROWS = 10_000


def check_objective(
    spec: StudySpec,
    policy: ObjectivePolicy,
    db: Database | None = None,
    project_id: int | None = None,
) -> StudySpec:
    """Check what a new study's objective names against ``policy``, then its data;
    returns the spec with an uploaded dataset's reference filled in (``db`` given).

    Raises :class:`~tuneforge.core.errors.InvalidSpec` naming the field: the callable,
    estimator, pipeline or options the operator does not allow, a path outside the data
    roots, a URL scheme not allowed, an uploaded dataset that does not exist in
    ``project_id``, or data whose columns do not fit the spec.
    """
    if db is not None:
        spec = resolve_uploaded(db, spec, project_id)
    policy.check_spec(spec.objective, spec.space.parameters)
    check_objective_data(spec.objective, policy, db)
    return spec


def check_objective_data(
    objective: Mapping[str, Any] | None, policy: ObjectivePolicy, db: Database | None = None
) -> None:
    """Check the data a normalized managed objective names: an uploaded dataset's stored
    columns, or a bounded sample of a csv/parquet file (no-op otherwise)."""
    if not objective or objective.get("kind") != "sklearn":
        return
    dataset = objective["dataset"]
    if dataset["source"] == "uploaded" and db is not None:
        check_objective_table(objective, uploaded_table(db, objective))
        return
    if dataset["source"] not in ("csv", "parquet"):
        return
    path = policy.resolve_data_path(dataset["path"], os.path.realpath)
    if is_url(path):
        return
    check_objective_table(objective, sample_table(dataset["source"], path, dataset["path"]))


def sample_table(source: str, path: str, shown: str | None = None) -> TableInfo:
    """Describe the file at ``path`` from a bounded sample of its rows (errors name ``shown``,
    the path as the spec gave it)."""
    try:
        if source == "csv":
            return _csv(path)
        return _parquet(path)
    except Exception as exc:
        raise read_error(exc, source, shown if shown is not None else path) from None


def _csv(path: str) -> TableInfo:
    import pandas as pd

    frame = pd.read_csv(path, nrows=SAMPLE_ROWS + 1)
    if len(frame) > SAMPLE_ROWS:  # more rows than the sample: the count is a lower bound
        return TableInfo(describe_frame(frame.iloc[:SAMPLE_ROWS]).columns, len(frame), False)
    return describe_frame(frame)


def _parquet(path: str) -> TableInfo:
    import pyarrow.dataset as pds

    data = pds.dataset(path, format="parquet")
    return describe_frame(data.head(SAMPLE_ROWS).to_pandas(), rows=data.count_rows())
