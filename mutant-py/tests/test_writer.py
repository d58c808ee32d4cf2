"""The streaming writer: `write` returns once queued, the `with` block once
everything is stored, and it rides out a server restart without losing or
doubling an acknowledged record."""

import threading

import numpy as np
import pytest

import mutant


def chunk(start, n_rows, dimension):
    ids = [f"w{index:06d}" for index in range(start, start + n_rows)]
    vectors = np.arange(start * dimension, (start + n_rows) * dimension, dtype=np.float32)
    return ids, vectors.reshape(n_rows, dimension)


def test_the_block_returns_once_everything_is_stored(client):
    ds = client.create_dataset("stream", dimension=4)
    with ds.writer(batch_size=100) as writer:
        for start in range(0, 2_000, 250):
            assert writer.write(*chunk(start, 250, 4), labels=["cat"] * 250) == 250
    assert writer.summary.n_records_written == 2_000
    assert writer.summary.n_batches >= 20
    assert writer.n_unacknowledged == 0
    assert ds.count() == 2_000
    assert ds.count({"label": "cat"}) == 2_000


def test_a_later_write_of_an_id_wins(client):
    ds = client.create_dataset("stream", dimension=2)
    with ds.writer(batch_size=10) as writer:
        writer.write(["a", "b"], [[1.0, 1.0], [2.0, 2.0]], labels=["old", "old"])
        writer.write(["a"], [[3.0, 3.0]], labels=["new"])
    records = ds.get(include=("label", "vector"))
    assert records.ids == ["a", "b"]
    assert records.labels == ["new", "old"]
    assert list(records.vectors[0]) == [3.0, 3.0]


def test_a_finished_writer_refuses_more_writes(client):
    ds = client.create_dataset("stream", dimension=2)
    writer = ds.writer()
    writer.write(["a"], [[1.0, 2.0]])
    summary = writer.finish()
    assert summary.n_records_written == 1
    with pytest.raises(mutant.WriterStoppedError, match="open a new writer"):
        writer.write(["b"], [[1.0, 2.0]])


def test_an_error_in_the_block_still_stores_what_was_written(client):
    ds = client.create_dataset("stream", dimension=2)
    with pytest.raises(RuntimeError, match="producer broke"):
        with ds.writer() as writer:
            writer.write(["a", "b"], [[1.0, 2.0], [3.0, 4.0]])
            raise RuntimeError("producer broke")
    assert ds.count() == 2


def test_a_batch_error_surfaces_from_write_or_the_block(client):
    ds = client.create_dataset("stream", dimension=2)
    client.delete_dataset("stream")
    with pytest.raises(mutant.UnknownDatasetError):
        with ds.writer(batch_size=1, max_in_flight=1) as writer:
            for start in range(0, 50, 5):
                writer.write(*chunk(start, 5, 2))


def test_writes_survive_a_server_restart_exactly_once(start_server):
    server = start_server()
    # Patient retries: the server is down for a moment in the middle.
    client = mutant.Client(server.url, max_attempts=60, max_backoff=0.5)
    ds = client.create_dataset("restart", dimension=8)
    n_rows, per_write = 6_000, 200
    restarter = threading.Thread(target=server.start, daemon=True)

    with ds.writer(batch_size=100, max_in_flight=4) as writer:
        for start in range(0, n_rows, per_write):
            writer.write(*chunk(start, per_write, 8))
            if start == n_rows // 3:
                # Kill it with batches in flight, then bring it back on the
                # same port while the writer keeps writing and retrying.
                server.kill()
                restarter.start()
    # The block returned: every record written is acknowledged, through the
    # restarted server.
    restarter.join()
    assert server.process is not None and server.process.poll() is None
    assert writer.n_unacknowledged == 0
    assert writer.summary.n_records_written == n_rows
    assert ds.count() == n_rows
    records = ds.get(limit=None, include=("vector",))
    expected_ids, expected_vectors = chunk(0, n_rows, 8)
    assert records.ids == expected_ids
    np.testing.assert_array_equal(records.vectors, expected_vectors)


def test_a_writer_dropped_without_finishing_warns(client):
    ds = client.create_dataset("stream", dimension=2)
    writer = ds.writer(max_batch_age=60.0)
    writer.write(["a"], [[1.0, 2.0]])
    with pytest.warns(ResourceWarning, match="dropped without finish"):
        writer.__del__()
    assert writer._native.closed
