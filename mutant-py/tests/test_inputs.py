"""Bad input is refused before anything is sent: NumPy dtype and shape
errors are clear ValueErrors, and the server's own checks run on the client
with the server's codes. Each test ends by checking nothing was stored."""

import numpy as np
import pytest

import mutant


@pytest.fixture
def ds(client):
    return client.create_dataset("train", dimension=3)


@pytest.mark.parametrize(
    "vectors, message",
    [
        (np.ones((2, 3), dtype=np.int64), "dtype int64; give float32 or float64"),
        (np.ones((2, 3), dtype=np.float16), "dtype float16"),
        (np.ones((2, 3), dtype=np.complex64), "dtype complex64"),
        (np.array([["a", "b", "c"]] * 2), "dtype <U1"),
        (np.ones(3, dtype=np.float32), "must be 2-D.*wrap it in a list"),
        (np.ones((2, 3, 1), dtype=np.float32), "must be 2-D.*shape \\(2, 3, 1\\)"),
        ([[1.0, 2.0, 3.0], [1.0, 2.0]], "cannot be read as a matrix"),
        ([["x", "y", "z"], [1.0, 2.0, 3.0]], "cannot be read as a matrix"),
        ("1 2 3", "not a string"),
    ],
)
def test_dtype_and_shape_errors_are_value_errors_before_sending(ds, vectors, message):
    with pytest.raises(ValueError, match=message):
        ds.upsert(["a", "b"], vectors)
    with pytest.raises(ValueError, match=message):
        with ds.writer() as writer:
            writer.write(["a", "b"], vectors)
    assert ds.count() == 0


def test_a_wrong_dimension_is_a_dimension_mismatch_before_sending(ds):
    with pytest.raises(mutant.DimensionMismatchError) as error:
        ds.upsert(["a"], np.ones((1, 4), np.float32))
    assert error.value.code == "dimension_mismatch"
    assert isinstance(error.value, ValueError)
    assert "dimension 3" in str(error.value)
    with pytest.raises(mutant.DimensionMismatchError):
        ds.knn(np.ones((2, 5)), k=1)
    assert ds.count() == 0


def test_column_lengths_and_types_are_checked(ds):
    vectors = np.ones((2, 3), np.float32)
    with pytest.raises(ValueError, match="ids has 3 values but there are 2 vectors"):
        ds.upsert(["a", "b", "c"], vectors)
    with pytest.raises(ValueError, match="ids is required"):
        ds.upsert(None, vectors)
    with pytest.raises(ValueError, match="labels has 1 values"):
        ds.upsert(["a", "b"], vectors, labels=["cat"])
    with pytest.raises(TypeError, match="ids\\[1\\] is 7, not str"):
        ds.upsert(["a", 7], vectors)
    with pytest.raises(TypeError, match="labels\\[0\\] is 1.5, not str or None"):
        ds.upsert(["a", "b"], vectors, labels=[1.5, None])
    with pytest.raises(TypeError, match="metadata\\[1\\] is 'x', not a dict"):
        ds.upsert(["a", "b"], vectors, metadata=[None, "x"])
    assert ds.count() == 0


@pytest.mark.parametrize(
    "kwargs, error_class, code",
    [
        ({"vectors": np.array([[1.0, np.nan, 0.0], [0.0, 0.0, 0.0]])}, mutant.NonFiniteValueError, "non_finite_value"),
        ({"vectors": np.array([[1.0, np.inf, 0.0], [0.0, 0.0, 0.0]], np.float32)}, mutant.NonFiniteValueError, "non_finite_value"),
        ({"ids": ["a", "a"]}, mutant.DuplicateRecordIdError, "duplicate_record_id"),
        ({"ids": ["a", ""]}, mutant.EmptyRecordIdError, "empty_record_id"),
        ({"labels": ["cat", ""]}, mutant.EmptyFieldError, "empty_field"),
        ({"ids": ["a", "x" * 600]}, mutant.FieldTooLongError, "field_too_long"),
        ({"metadata": [{"nested": {"no": 1}}, None]}, mutant.InvalidMetadataError, "invalid_metadata"),
        ({"metadata": [{"bad key!": 1}, None]}, mutant.InvalidMetadataError, "invalid_metadata"),
    ],
)
def test_the_servers_checks_run_before_sending(ds, kwargs, error_class, code):
    arguments = {"ids": ["a", "b"], "vectors": np.zeros((2, 3), np.float32)}
    arguments.update(kwargs)
    with pytest.raises(error_class) as error:
        ds.upsert(**arguments)
    assert error.value.code == code
    assert isinstance(error.value, mutant.InvalidInputError)
    assert ds.count() == 0


def test_a_writer_refuses_bad_rows_and_stays_usable(ds):
    with ds.writer() as writer:
        with pytest.raises(mutant.NonFiniteValueError):
            writer.write(["a"], np.array([[np.nan, 0.0, 0.0]]))
        writer.write(["b"], np.zeros((1, 3)))
    assert ds.get(include=()).ids == ["b"]


def test_include_and_filters_are_checked(ds):
    with pytest.raises(ValueError, match="include has 'labels'"):
        ds.get(include=("labels",))
    with pytest.raises(TypeError, match="filter.*has no JSON form"):
        ds.count({"label": object()})
    with pytest.raises(ValueError, match="JSON cannot carry"):
        ds.count({"metadata.x": float("nan")})
