"""Checks and conversions of what users pass in, before anything is sent:
vectors become a 2-D float32/float64 NumPy array (float32 arrays pass through
untouched, so the native module reads them in place), columns become lists,
and a wrong dtype or shape is a clear ``ValueError``."""

from __future__ import annotations

from typing import Any, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from .errors import invalid_input

#: The record fields a read can return.
FIELDS = ("vector", "label", "prediction", "uri", "metadata")

#: What ``include`` accepts: one field name or several.
IncludeArg = Union[str, Iterable[str], None]


def as_matrix(
    vectors: Any, what: str, dataset: str, dimension: int, one_row_allowed: bool = False
) -> np.ndarray:
    """``vectors`` as a 2-D float32 or float64 array of ``dimension`` columns.

    Accepts a NumPy array (float32 is used as it is, float64 converted by the
    native module while reading), or a list of lists (or of 1-D arrays),
    converted to float32. With ``one_row_allowed``, a single 1-D vector is
    one row.
    """
    if isinstance(vectors, np.ndarray):
        array = vectors
        if array.dtype not in (np.float32, np.float64):
            raise ValueError(
                f"{what} has dtype {array.dtype}; give float32 or float64 values "
                f"(convert with {what}.astype(np.float32))"
            )
    else:
        if hasattr(vectors, "to_numpy"):
            vectors = vectors.to_numpy()
        if isinstance(vectors, (str, bytes)):
            raise ValueError(f"{what} must be rows of numbers, not a string")
        try:
            array = np.asarray(vectors, dtype=np.float32)
        except (ValueError, TypeError) as error:
            raise ValueError(
                f"{what} cannot be read as a matrix of numbers ({error}); give a 2-D "
                "numpy array, or a list of equally long lists of numbers"
            ) from None
    if array.ndim == 1 and one_row_allowed:
        array = array.reshape(1, -1)
    if array.ndim != 2:
        hint = "; for one vector, wrap it in a list" if array.ndim == 1 else ""
        raise ValueError(
            f"{what} must be 2-D, one row per vector, but has shape {array.shape}{hint}"
        )
    if array.shape[1] != dimension and array.shape[0] > 0:
        raise invalid_input(
            "dimension_mismatch",
            f"dataset {dataset!r} has dimension {dimension}, but {what} has rows of "
            f"{array.shape[1]} values (shape {array.shape}); give vectors of the "
            "dataset's dimension",
        )
    return array


def as_str_list(values: Any, what: str, n_rows: Optional[int]) -> Optional[List[Any]]:
    """``values`` (a list, tuple, NumPy array, pandas Series, ...) as a list,
    checked to hold ``n_rows`` entries; ``None`` stays ``None``."""
    if values is None:
        return None
    if isinstance(values, (str, bytes)):
        raise ValueError(f"{what} must be a sequence with one value per record, not a string")
    if isinstance(values, list):
        listed = values
    elif hasattr(values, "tolist"):
        listed = values.tolist()
    else:
        listed = list(values)
    if n_rows is not None and len(listed) != n_rows:
        raise ValueError(
            f"{what} has {len(listed)} values but there are {n_rows} vectors; give one per record"
        )
    return listed


def required_list(values: Any, what: str, n_rows: int) -> List[Any]:
    """Like :func:`as_str_list`, for a column that must be given."""
    listed = as_str_list(values, what, n_rows)
    if listed is None:
        raise ValueError(f"{what} is required: give one per record")
    return listed


def include_tuple(include: IncludeArg, allowed: Sequence[str] = FIELDS) -> Tuple[str, ...]:
    """``include`` as a tuple of field names, each one of ``allowed``."""
    if include is None:
        return ()
    names = (include,) if isinstance(include, str) else tuple(include)
    for name in names:
        if name not in allowed:
            raise ValueError(
                f"include has {name!r}; the fields are " + ", ".join(repr(n) for n in allowed)
            )
    return names
