"""pandas in and out: upsert_dataframe (a column of vectors, or one column
per component; missing values; metadata columns), Records.to_pandas."""

import numpy as np
import pandas as pd
import pytest


def test_upsert_dataframe_with_an_embedding_column(client):
    ds = client.create_dataset("frame", dimension=3)
    df = pd.DataFrame(
        {
            "id": [10, 11, 12],
            "embedding": [np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0]), [0.0, 0.0, 1.0]],
            "label": ["cat", None, np.nan],
            "prediction": pd.Series(["cat", "dog", pd.NA], dtype="string"),
            "camera": ["front", "rear", None],
            "score": [0.5, np.nan, 2.0],
        }
    )
    written = ds.upsert_dataframe(
        df, id="id", vector="embedding", label="label", prediction="prediction",
        metadata=["camera", "score"],
    )
    assert written == 3
    records = ds.get(include=("label", "prediction", "metadata", "vector"))
    assert records.ids == ["10", "11", "12"]
    assert records.labels == ["cat", None, None]
    assert records.predictions == ["cat", "dog", None]
    assert records.metadata == [{"camera": "front", "score": 0.5}, {"camera": "rear"}, {"score": 2.0}]
    np.testing.assert_array_equal(records.vectors, np.eye(3, dtype=np.float32))


def test_upsert_dataframe_with_one_column_per_component(client):
    ds = client.create_dataset("frame", dimension=2)
    df = pd.DataFrame({"key": ["a", "b"], "x": [1.0, 3.0], "y": [2.0, 4.0], "label": ["p", "q"]})
    ds.upsert_dataframe(df, id="key", vector=["x", "y"], label="label")
    hits = ds.knn([[3.0, 4.1]], k=1, include="label")
    assert hits.ids == [["b"]] and hits.labels == [["q"]]


def test_upsert_dataframe_names_a_missing_column(client):
    ds = client.create_dataset("frame", dimension=2)
    with pytest.raises(ValueError, match="no column 'embedding'"):
        ds.upsert_dataframe(pd.DataFrame({"id": ["a"], "vec": [[1.0, 2.0]]}))
    assert ds.count() == 0


def test_a_writer_takes_dataframes_and_records_come_back_as_one(client):
    ds = client.create_dataset("frame", dimension=2)
    df = pd.DataFrame({"id": ["a", "b"], "embedding": [[1.0, 2.0], [3.0, 4.0]], "uri": ["s3://a", None]})
    with ds.writer() as writer:
        writer.write_dataframe(df, uri="uri")
    frame = ds.get(include=("uri", "vector")).to_pandas()
    assert list(frame.columns) == ["id", "vector", "uri"]
    assert frame["id"].tolist() == ["a", "b"]
    assert frame["uri"][0] == "s3://a" and frame["uri"].isna().tolist() == [False, True]
    np.testing.assert_array_equal(frame["vector"][1], np.array([3.0, 4.0], np.float32))
