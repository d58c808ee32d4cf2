"""Records: upsert from NumPy (float32, float64) and lists, count, get with
paging, delete, kNN with its arrays and included fields."""

import numpy as np
import pytest

import mutant


def matrix(n_rows, dimension, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).normal(size=(n_rows, dimension)).astype(dtype)


def ids_of(n_rows, prefix="r"):
    return [f"{prefix}{index:05d}" for index in range(n_rows)]


def test_upsert_float32_round_trips_exactly(client):
    ds = client.create_dataset("train", dimension=8)
    vectors = matrix(50, 8)
    assert ds.upsert(ids_of(50), vectors, labels=["cat", "dog"] * 25) == 50
    assert ds.count() == 50
    records = ds.get(limit=None)
    assert records.ids == ids_of(50)
    assert records.vectors.dtype == np.float32 and records.vectors.shape == (50, 8)
    np.testing.assert_array_equal(records.vectors, vectors)
    assert records.labels == ["cat", "dog"] * 25


def test_upsert_float64_and_lists_are_converted_to_float32(client):
    ds = client.create_dataset("train", dimension=3)
    doubles = np.array([[0.1, 0.2, 0.3], [1e-3, -2.5, 7.0]], dtype=np.float64)
    ds.upsert(["d0", "d1"], doubles)
    ds.upsert(["l0", "l1"], [[1, 2, 3], [4.5, 5.5, 6.5]])
    ds.upsert(["t0"], doubles[:1, :])
    records = ds.get(ids=["d0", "d1", "l0", "l1", "t0"], include="vector")
    by_id = dict(zip(records.ids, records.vectors))
    np.testing.assert_array_equal(by_id["d1"], doubles[1].astype(np.float32))
    np.testing.assert_array_equal(by_id["l0"], np.array([1, 2, 3], dtype=np.float32))
    np.testing.assert_array_equal(by_id["t0"], doubles[0].astype(np.float32))


def test_strided_and_fortran_ordered_arrays_are_read_correctly(client):
    ds = client.create_dataset("train", dimension=4)
    wide = matrix(10, 8)
    strided = wide[:, ::2]
    fortran = np.asfortranarray(matrix(10, 4, seed=1))
    ds.upsert(ids_of(10, "s"), strided)
    ds.upsert(ids_of(10, "f"), fortran)
    got = ds.get(filter={"id": {"$in": ids_of(10, "s") + ids_of(10, "f")}}, include="vector", limit=None)
    by_id = dict(zip(got.ids, got.vectors))
    np.testing.assert_array_equal(by_id["s00003"], strided[3])
    np.testing.assert_array_equal(by_id["f00007"], fortran[7])


def test_all_fields_and_metadata_round_trip(client):
    ds = client.create_dataset("train", dimension=2)
    ds.upsert(
        ["a", "b"],
        np.ones((2, 2), np.float32),
        labels=["cat", None],
        predictions=[None, "dog"],
        uris=["s3://bucket/a.jpg", None],
        metadata=[{"camera": "front", "score": 0.5, "night": False, "n": np.int64(3)}, None],
    )
    records = ds.get(include=("label", "prediction", "uri", "metadata"))
    assert list(records) == [
        {
            "id": "a",
            "label": "cat",
            "prediction": None,
            "uri": "s3://bucket/a.jpg",
            "metadata": {"camera": "front", "score": 0.5, "night": False, "n": 3},
        },
        {"id": "b", "label": None, "prediction": "dog", "uri": None, "metadata": None},
    ]
    with pytest.raises(AttributeError, match="include=\\('vector',\\)"):
        records.vectors


def test_upsert_replaces_an_existing_id(client):
    ds = client.create_dataset("train", dimension=2)
    ds.upsert(["a"], [[1.0, 1.0]], labels=["cat"])
    ds.upsert(["a"], [[2.0, 2.0]], labels=["dog"])
    assert ds.count() == 1
    record = ds.get(ids=["a"])[0]
    assert record["label"] == "dog" and list(record["vector"]) == [2.0, 2.0]


def test_upsert_of_many_batches_stores_every_record(client):
    ds = client.create_dataset("train", dimension=4)
    n_rows = 12_345
    assert ds.upsert(ids_of(n_rows), matrix(n_rows, 4), batch_size=1000) == n_rows
    assert ds.count() == n_rows
    assert ds.upsert([], np.zeros((0, 4), np.float32)) == 0


def test_get_pages_past_the_server_limit_and_honours_offset(client):
    ds = client.create_dataset("train", dimension=2)
    n_rows = 10_500
    ds.upsert(ids_of(n_rows), matrix(n_rows, 2))
    everything = ds.get(limit=None, include=())
    assert everything.ids == ids_of(n_rows)
    page = ds.get(limit=10_200, offset=100, include=("vector",))
    assert page.ids == ids_of(n_rows)[100:10_300]
    assert page.vectors.shape == (10_200, 2)
    assert len(ds.get()) == 100


def test_count_get_and_delete_by_filter_and_ids(client):
    ds = client.create_dataset("train", dimension=2)
    ds.upsert(ids_of(10), matrix(10, 2), labels=["cat"] * 6 + ["dog"] * 4,
              metadata=[{"score": index / 10} for index in range(10)])
    assert ds.count({"label": "cat"}) == 6
    assert ds.count({"metadata.score": {"$gte": 0.5}}) == 5
    assert ds.get(filter={"label": "dog"}, include=()).ids == ids_of(10)[6:]
    assert ds.delete(ids=["r00000", "r00001", "missing"]) == 2
    assert ds.delete(filter={"label": "dog"}) == 4
    assert ds.count() == 4
    with pytest.raises(ValueError, match="filter=\\{\\}"):
        ds.delete()
    assert ds.delete(filter={}) == 4
    assert ds.count() == 0


def test_knn_returns_ids_and_float32_distances_nearest_first(client):
    ds = client.create_dataset("train", dimension=16)
    data = matrix(300, 16)
    ds.upsert(ids_of(300), data, labels=[f"class-{index % 3}" for index in range(300)])
    queries = matrix(7, 16, seed=9)
    hits = ds.knn(queries, k=5, include=("label",))
    assert len(hits) == 7
    assert hits.distances.dtype == np.float32 and hits.distances.shape == (7, 5)
    expected = np.linalg.norm(data[None, :, :] - queries[:, None, :], axis=2)
    for query_index in range(7):
        order = np.argsort(expected[query_index])[:5]
        assert hits.ids[query_index] == [ids_of(300)[i] for i in order]
        np.testing.assert_allclose(hits.distances[query_index], expected[query_index][order], rtol=1e-4)
        assert hits.labels[query_index] == [f"class-{i % 3}" for i in order]
    assert hits[0][0]["id"] == hits.ids[0][0] and hits[0][0]["label"] == hits.labels[0][0]
    with pytest.raises(AttributeError, match="include"):
        hits.uris


def test_knn_with_a_filter_one_query_vectors_and_padding(client):
    ds = client.create_dataset("train", dimension=3, metric="cosine")
    data = matrix(6, 3)
    ds.upsert(ids_of(6), data, labels=["cat", "dog"] * 3, metadata=[{"i": i} for i in range(6)])
    hits = ds.knn(data[0], k=10, filter={"label": "cat"}, include=("vector", "metadata"))
    assert hits.distances.shape == (1, 3)
    assert hits.ids[0][0] == "r00000" and abs(hits.distances[0, 0]) < 1e-5
    assert set(hits.ids[0]) == {"r00000", "r00002", "r00004"}
    assert hits.vectors.shape == (1, 3, 3)
    np.testing.assert_array_equal(hits.vectors[0, 0], data[0])
    assert hits.metadata[0][0] == {"i": 0}
    ragged = ds.knn(np.stack([data[0], data[1]]), k=2, filter={"id": {"$in": ["r00000"]}})
    assert ragged.distances.shape == (2, 1)
    empty = client.create_dataset("empty", dimension=3)
    nothing = empty.knn([[1.0, 2.0, 3.0]], k=4)
    assert nothing.ids == [[]] and nothing.distances.shape == (1, 0)


def test_knn_accepts_float64_and_lists(client):
    ds = client.create_dataset("train", dimension=2)
    ds.upsert(["a", "b"], [[0.0, 0.0], [10.0, 10.0]])
    assert ds.knn(np.array([[9.0, 9.0]]), k=1).ids == [["b"]]
    assert ds.knn([[0.5, 0.1], [11.0, 11.0]], k=1).ids == [["a"], ["b"]]


def test_knn_of_more_queries_than_one_request_takes(client):
    ds = client.create_dataset("train", dimension=2)
    ds.upsert(["a", "b", "c"], [[0.0, 0.0], [5.0, 5.0], [9.0, 9.0]], labels=["x", "y", "z"])
    queries = np.repeat(np.array([[0.1, 0.1], [8.0, 8.0]], np.float32), 5_001, axis=0)
    hits = ds.knn(queries, k=2, include=("label", "vector"))
    assert len(hits) == 10_002 and hits.distances.shape == (10_002, 2)
    assert hits.ids[0] == ["a", "b"] and hits.ids[-1] == ["c", "b"]
    assert hits.labels[10_001] == ["z", "y"]
    assert hits.vectors.shape == (10_002, 2, 2)
