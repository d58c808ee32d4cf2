"""What reads return: :class:`KnnResult` (neighbours of each query) and
:class:`Records` (a page of records), both as columns: ids as lists of
``str``, vectors and distances as NumPy float32 arrays."""

from __future__ import annotations

from typing import Any, Dict, Iterator, List

import numpy as np

__all__ = ["KnnResult", "Records"]

#: Field name -> the attribute holding it.
_ATTRIBUTE_OF_FIELD = {
    "vector": "vectors",
    "label": "labels",
    "prediction": "predictions",
    "uri": "uris",
    "metadata": "metadata",
}


class _Columns:
    """Shared access to optional columns, with a hint when one was not asked for."""

    _fields: Dict[str, Any]
    _what: str

    def _column(self, attribute: str) -> Any:
        try:
            return self._fields[attribute]
        except KeyError:
            field = next(f for f, a in _ATTRIBUTE_OF_FIELD.items() if a == attribute)
            raise AttributeError(
                f"{self._what} has no {attribute}: ask for them with include=({field!r},)"
            ) from None

    @property
    def labels(self) -> Any:
        """Labels (``None`` where a record has none), when ``include`` had ``"label"``."""
        return self._column("labels")

    @property
    def predictions(self) -> Any:
        """Predictions, when ``include`` had ``"prediction"``."""
        return self._column("predictions")

    @property
    def uris(self) -> Any:
        """Uris, when ``include`` had ``"uri"``."""
        return self._column("uris")

    @property
    def metadata(self) -> Any:
        """Metadata dicts (``None`` where a record has none), when ``include`` had ``"metadata"``."""
        return self._column("metadata")

    @property
    def vectors(self) -> np.ndarray:
        """Vectors as float32, when ``include`` had ``"vector"``."""
        return self._column("vectors")

    @property
    def included(self) -> List[str]:
        """The optional fields this answer carries (``"label"``, ``"vector"``, ...)."""
        return [f for f, a in _ATTRIBUTE_OF_FIELD.items() if a in self._fields]


class KnnResult(_Columns):
    """The nearest records to each query, nearest first.

    Attributes:
        ids: One list of record ids per query.
        distances: float32 array of shape ``(n_queries, width)``, ``width``
            being the most neighbours any query got (``k``, unless the
            dataset, or the part of it the filter lets through, is smaller);
            a query with fewer neighbours has its row padded with ``inf``.

    Included fields: ``labels``, ``predictions``, ``uris`` and ``metadata``
    are lists of lists like ``ids``; ``vectors`` is a float32 array of shape
    ``(n_queries, width, dimension)`` padded with NaN. Reading a field that
    was not included raises ``AttributeError`` saying how to include it.
    """

    _what = "this kNN result"

    def __init__(self, ids: List[List[str]], distances: np.ndarray, fields: Dict[str, Any]):
        self.ids: List[List[str]] = ids
        self.distances: np.ndarray = distances
        self._fields = fields

    def __len__(self) -> int:
        """The number of queries."""
        return len(self.ids)

    def __getitem__(self, query_index: int) -> List[Dict[str, Any]]:
        """The neighbours of one query as dicts: ``id``, ``distance`` and the included fields."""
        neighbours = []
        for rank, record_id in enumerate(self.ids[query_index]):
            neighbour: Dict[str, Any] = {
                "id": record_id,
                "distance": float(self.distances[query_index, rank]),
            }
            for field, attribute in _ATTRIBUTE_OF_FIELD.items():
                if attribute in self._fields:
                    neighbour[field] = self._fields[attribute][query_index][rank]
            neighbours.append(neighbour)
        return neighbours

    def __repr__(self) -> str:
        return (
            f"KnnResult(n_queries={len(self.ids)}, width={self.distances.shape[1]}, "
            f"included={self.included})"
        )

    @staticmethod
    def concatenate(parts: List["KnnResult"]) -> "KnnResult":
        """The results of ``parts`` (queries answered in several requests),
        one after the other, padded to the widest."""
        if len(parts) == 1:
            return parts[0]
        width = max(part.distances.shape[1] for part in parts)

        def padded(array: np.ndarray, fill: float) -> np.ndarray:
            pad = [(0, 0), (0, width - array.shape[1])] + [(0, 0)] * (array.ndim - 2)
            return np.pad(array, pad, constant_values=fill)

        ids = [neighbours for part in parts for neighbours in part.ids]
        distances = np.concatenate([padded(part.distances, np.inf) for part in parts])
        fields: Dict[str, Any] = {}
        for attribute in parts[0]._fields:
            if attribute == "vectors":
                fields[attribute] = np.concatenate(
                    [padded(part._fields[attribute], np.nan) for part in parts]
                )
            else:
                fields[attribute] = [lists for part in parts for lists in part._fields[attribute]]
        return KnnResult(ids, distances.astype(np.float32), fields)


class Records(_Columns):
    """A page of records, in id order.

    Attributes:
        ids: The record ids.

    Included fields: ``vectors`` (float32, shape ``(n, dimension)``),
    ``labels``, ``predictions``, ``uris``, ``metadata`` (lists, ``None``
    where a record has no value). Iterating gives one dict per record.
    """

    _what = "these records"

    def __init__(self, ids: List[str], fields: Dict[str, Any]):
        self.ids: List[str] = ids
        self._fields = fields

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> Dict[str, Any]:
        """Record ``index`` as a dict: ``id`` and the included fields."""
        record: Dict[str, Any] = {"id": self.ids[index]}
        for field, attribute in _ATTRIBUTE_OF_FIELD.items():
            if attribute in self._fields:
                record[field] = self._fields[attribute][index]
        return record

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        for index in range(len(self.ids)):
            yield self[index]

    def to_pandas(self) -> Any:
        """A ``pandas.DataFrame`` with columns ``id`` and the included fields
        (``vector`` holds one float32 array per row)."""
        import pandas as pd

        columns: Dict[str, Any] = {"id": self.ids}
        for field, attribute in _ATTRIBUTE_OF_FIELD.items():
            if attribute in self._fields:
                values = self._fields[attribute]
                columns[field] = list(values) if attribute == "vectors" else values
        return pd.DataFrame(columns)

    def __repr__(self) -> str:
        return f"Records(n={len(self.ids)}, included={self.included})"

    @staticmethod
    def concatenate(pages: List["Records"], dimension: int) -> "Records":
        """The records of ``pages``, one after the other."""
        if len(pages) == 1:
            return pages[0]
        ids: List[str] = []
        fields: Dict[str, Any] = {}
        for page in pages:
            ids.extend(page.ids)
            for attribute, values in page._fields.items():
                fields.setdefault(attribute, []).append(values)
        merged: Dict[str, Any] = {}
        for attribute, parts in fields.items():
            if attribute == "vectors":
                merged[attribute] = (
                    np.concatenate(parts) if parts else np.zeros((0, dimension), np.float32)
                )
            else:
                merged[attribute] = [value for part in parts for value in part]
        return Records(ids, merged)

