"""Column kinds from every row, chunk by chunk, and the dtypes a loaded table gets, so a
CSV and a Parquet copy of the same data describe and load identically (core/tables.py)."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd

from tuneforge.core.datasets import ColumnKind
from tuneforge.core.tables import normalized, profile


def frame(n: int = 500) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame(
        {
            "num": np.where(rng.random(n) < 0.1, np.nan, rng.normal(size=n)),
            "whole": rng.integers(0, 5, size=n),
            "text": pd.Series(rng.choice(["a", "b", None], size=n), dtype=object),
            "when": pd.date_range("2023-01-01", periods=n, freq="h"),
            "flag": rng.random(n) < 0.5,
        }
    )


def csv_and_parquet(data: pd.DataFrame) -> tuple[bytes, bytes]:
    text, binary = io.StringIO(), io.BytesIO()
    data.to_csv(text, index=False)
    data.to_parquet(binary, index=False)
    return text.getvalue().encode(), binary.getvalue()


def test_kinds_and_missing_values_from_every_row() -> None:
    info = profile([frame()])
    kinds = {c.name: c.kind for c in info.columns}
    assert kinds == {
        "num": ColumnKind.NUMERIC,
        "whole": ColumnKind.NUMERIC,
        "text": ColumnKind.CATEGORICAL,
        "when": ColumnKind.DATETIME,
        "flag": ColumnKind.BOOLEAN,
    }
    assert info.column("whole").integral and not info.column("num").integral  # type: ignore[union-attr]
    assert info.column("num").missing == int(frame()["num"].isna().sum())  # type: ignore[union-attr]
    assert info.rows == 500


def test_chunks_agree_with_the_whole_and_text_late_in_the_file_wins() -> None:
    csv, _ = csv_and_parquet(frame())
    whole = profile([pd.read_csv(io.BytesIO(csv))])
    chunked = profile(pd.read_csv(io.BytesIO(csv), chunksize=64))
    assert chunked == whole
    late = csv.decode() + "oops,1,a,2023-02-01 00:00:00,True\n"
    info = profile(pd.read_csv(io.StringIO(late), chunksize=64))
    assert info.column("num").kind == ColumnKind.CATEGORICAL  # type: ignore[union-attr]
    assert info.rows == 501


def test_csv_and_parquet_of_the_same_data_describe_and_load_identically() -> None:
    csv, parquet = csv_and_parquet(frame())
    from_csv = pd.read_csv(io.BytesIO(csv))
    from_parquet = pd.read_parquet(io.BytesIO(parquet))
    assert not from_csv.dtypes.equals(from_parquet.dtypes)  # dates: text in the CSV
    info_csv, info_parquet = profile([from_csv]), profile([from_parquet])
    assert info_csv == info_parquet
    a, b = normalized(from_csv, info_csv), normalized(from_parquet, info_parquet)
    pd.testing.assert_frame_equal(a, b)
    assert a["text"].dtype == object and a["flag"].dtype == np.float64
