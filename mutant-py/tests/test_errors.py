"""Errors the server reports arrive as their own subclasses of
mutant.MutantError, with the protocol's code and a message saying what to
do; client-side failures (connection, token) have theirs too."""

import pickle
import socket
import threading
import uuid

import numpy as np
import pytest

import mutant
from mutant import errors


def test_unknown_dataset_on_every_record_call(client):
    ghost = client.create_dataset("ghost", dimension=2)
    client.delete_dataset("ghost")
    for call in (
        lambda: ghost.count(),
        lambda: ghost.get(),
        lambda: ghost.knn([[1.0, 2.0]], k=1),
        lambda: ghost.upsert(["a"], [[1.0, 2.0]]),
        lambda: ghost.delete(ids=["a"]),
    ):
        with pytest.raises(mutant.UnknownDatasetError) as error:
            call()
        assert error.value.code == "unknown_dataset"
        assert "ghost" in str(error.value)


def test_a_wrong_dimension_the_server_finds_is_a_dimension_mismatch(client):
    stale = client.create_dataset("shape", dimension=2)
    client.delete_dataset("shape")
    client.create_dataset("shape", dimension=3)
    # The handle still believes in dimension 2, so only the server can tell.
    with pytest.raises(mutant.DimensionMismatchError) as error:
        stale.upsert(["a"], [[1.0, 2.0]])
    assert error.value.code == "dimension_mismatch"
    assert "re-create the dataset or fix the producer" in str(error.value)
    with pytest.raises(mutant.DimensionMismatchError):
        stale.knn([[1.0, 2.0]], k=1)


def test_invalid_filters_and_parameters(client):
    ds = client.create_dataset("train", dimension=2)
    ds.upsert(["a"], [[1.0, 2.0]])
    for bad_filter in ({"colour": "red"}, {"label": {"$regex": "c.*"}}, {"label": 3}):
        with pytest.raises(mutant.InvalidFilterError) as error:
            ds.count(bad_filter)
        assert error.value.code == "invalid_filter"
        assert isinstance(error.value, ValueError)
    with pytest.raises(mutant.InvalidFilterError):
        ds.knn([[1.0, 2.0]], k=1, filter={"$not": {"label": "x"}})
    with pytest.raises(mutant.InvalidParameterError) as error:
        ds.knn([[1.0, 2.0]], k=0)
    assert error.value.code == "invalid_parameter"
    with pytest.raises(mutant.InvalidParameterError):
        client.start_analysis("no_such_kind", target="train")
    with pytest.raises(mutant.InvalidParameterError, match="reference"):
        client.start_analysis("novelty", target="train")


def test_unknown_analysis(client):
    with pytest.raises(mutant.UnknownAnalysisError) as error:
        client.analysis(str(uuid.uuid4()))
    assert error.value.code == "unknown_analysis"
    with pytest.raises(ValueError, match="not an analysis id"):
        client.analysis("not-a-uuid")


def test_a_server_with_a_token_wants_it(start_server):
    server = start_server(env={"MUTANT_API_TOKEN": "s3cret"})
    with pytest.raises(mutant.UnauthorizedError) as error:
        mutant.Client(server.url).list_datasets()
    assert error.value.code == "unauthorized"
    assert "MUTANT_API_TOKEN" in str(error.value)
    assert mutant.Client(server.url, token="s3cret").list_datasets() == []


def test_a_dataset_over_the_cache_is_dataset_too_large(start_server):
    server = start_server(env={"MUTANT_CACHE_BYTES": "4096"})
    client = mutant.Client(server.url)
    ds = client.create_dataset("big", dimension=16)
    ds.upsert([f"r{i}" for i in range(200)], np.ones((200, 16), dtype=np.float32))
    with pytest.raises(mutant.DatasetTooLargeError) as error:
        ds.knn(np.ones((1, 16), dtype=np.float32), k=1)
    assert error.value.code == "dataset_too_large"
    assert "MUTANT_CACHE_BYTES" in str(error.value)


def test_an_analysis_over_the_budget_is_analysis_too_large(start_server):
    server = start_server(env={"MUTANT_ANALYSIS_BYTES": "1048576"})
    client = mutant.Client(server.url)
    ds = client.create_dataset("wide", dimension=8)
    ds.upsert([f"r{i}" for i in range(3000)], np.ones((3000, 8), dtype=np.float32))
    with pytest.raises(mutant.AnalysisTooLargeError) as error:
        client.start_analysis("uniqueness", target="wide")
    assert error.value.code == "analysis_too_large"
    assert "lower k" in str(error.value)
    assert "MUTANT_ANALYSIS_BYTES" in str(error.value)


def test_an_unreachable_server_is_a_transport_error_after_the_retries():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = mutant.Client(f"http://127.0.0.1:{port}", max_attempts=2, max_backoff=0.05)
    with pytest.raises(mutant.TransportError) as error:
        client.list_datasets()
    assert error.value.code is None
    assert error.value.details["attempts"] == 2
    assert isinstance(error.value, ConnectionError)
    assert "check the address and that the server runs" in str(error.value)


def test_bad_urls_and_tokens_are_refused_at_once():
    with pytest.raises(mutant.InvalidBaseUrlError, match="http://"):
        mutant.Client("127.0.0.1:7311")
    with pytest.raises(mutant.InvalidTokenError):
        mutant.Client("http://127.0.0.1:1", token="line\nbreak").list_datasets()


def test_the_gil_is_released_while_waiting_on_the_network():
    # A server written in Python, on a thread of this process: it can only
    # answer if the client's call lets go of the GIL while it waits.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]

    def answer_once():
        connection, _ = listener.accept()
        with connection:
            request = b""
            while b"\r\n\r\n" not in request:
                request += connection.recv(4096)
            body = b'{"mutant": "test", "protocol": 1, "clickhouse": "18.16"}'
            connection.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                + str(len(body)).encode()
                + b"\r\nConnection: close\r\n\r\n"
                + body
            )

    thread = threading.Thread(target=answer_once, daemon=True)
    thread.start()
    client = mutant.Client(f"http://127.0.0.1:{port}", timeout=20, max_attempts=1)
    assert client.version()["mutant"] == "test"
    thread.join()
    listener.close()


def test_every_code_has_its_class_and_errors_pickle():
    for code, cls in errors._CLASS_OF_INPUT_CODE.items():
        error = errors.from_native("invalid_input", code, "m", {})
        assert type(error) is cls and error.code == code
        assert isinstance(error, mutant.InvalidInputError)
        assert getattr(mutant, cls.__name__) is cls
    unknown = errors.from_native("invalid_input", "brand_new_check", "m", {})
    assert type(unknown) is mutant.InvalidInputError
    for kind, cls in errors._CLASS_OF_KIND.items():
        assert issubclass(cls, mutant.MutantError)
    error = errors.from_native("unavailable", "store_unavailable", "down; retry", {"attempts": 4})
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is mutant.UnavailableError
    assert (copy.code, copy.message, copy.details) == ("store_unavailable", "down; retry", {"attempts": 4})
    assert str(copy) == "down; retry"


def test_ctrl_c_interrupts_a_call_waiting_on_the_network():
    # A server that accepts the connection and never answers: only the
    # interrupt can end the call before the client's 60 s timeout.
    import _thread
    import signal

    # A test command started in the background of a non-interactive shell
    # inherits SIGINT ignored, and Python then installs no handler for it:
    # install Python's own, as an interactive session has.
    previous_handler = signal.signal(signal.SIGINT, signal.default_int_handler)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    client = mutant.Client(f"http://127.0.0.1:{port}", timeout=60, max_attempts=1)
    timer = threading.Timer(0.5, _thread.interrupt_main)
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            client.list_datasets()
    finally:
        timer.cancel()
        listener.close()
        signal.signal(signal.SIGINT, previous_handler)
