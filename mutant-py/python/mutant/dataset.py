"""A dataset and what is done with its records: :class:`Dataset` (upsert,
stream, read, count, delete, kNN), :class:`DatasetInfo` (what the catalogue
says about it) and :class:`Writer` (the streaming writer)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np

from . import _inputs
from .results import KnnResult, Records

if TYPE_CHECKING:
    from .client import Client

__all__ = ["Dataset", "DatasetInfo", "Writer", "WriteSummary"]

#: Records per request of a read (the server's limit).
_PAGE_LIMIT = 10_000
#: Queries per kNN request (the server's limit); more go in several requests.
_QUERY_LIMIT = 10_000


@dataclass(frozen=True)
class DatasetInfo:
    """A dataset as the catalogue describes it.

    Attributes:
        id: The dataset's UUID (a re-created dataset of the same name gets a new one).
        name: Its name.
        dimension: The length of every vector.
        metric: ``"l2"``, ``"cosine"`` or ``"dot"``.
        metadata: The JSON object the client manages.
        created_at_ms: Creation time, milliseconds since the Unix epoch.
        updated_at_ms: Last rename or metadata change, milliseconds since the Unix epoch.
        record_count: Live records, when the answer carried it (``Client.dataset``,
            ``Dataset.info``); ``None`` in listings.
    """

    id: str
    name: str
    dimension: int
    metric: str
    metadata: Dict[str, Any] = field(default_factory=dict)
    created_at_ms: int = 0
    updated_at_ms: int = 0
    record_count: Optional[int] = None

    @staticmethod
    def from_dict(info: Mapping[str, Any]) -> "DatasetInfo":
        """The info of the protocol's dataset object (fields it does not know are ignored)."""
        return DatasetInfo(
            id=str(info["id"]),
            name=info["name"],
            dimension=int(info["dimension"]),
            metric=info["metric"],
            metadata=dict(info.get("metadata") or {}),
            created_at_ms=int(info.get("created_at_ms", 0)),
            updated_at_ms=int(info.get("updated_at_ms", 0)),
            record_count=info.get("record_count"),
        )


@dataclass(frozen=True)
class WriteSummary:
    """What a finished :class:`Writer` stored.

    Attributes:
        n_records_written: Records the server acknowledged, over all batches.
        n_batches: Batches sent and acknowledged.
        n_records_superseded: Writes not sent because a later write of the
            same id replaced them in the same batch.
    """

    n_records_written: int
    n_batches: int
    n_records_superseded: int


class Dataset:
    """A handle on one dataset; from :meth:`Client.create_dataset`,
    :meth:`Client.get_or_create_dataset` or :meth:`Client.dataset`.

    Requests address the dataset by its name. The handle remembers the
    dimension, so vectors of another length are refused before anything is
    sent.
    """

    def __init__(self, client: "Client", info: DatasetInfo) -> None:
        self._client = client
        self._native = client._native
        self._info = info

    @property
    def name(self) -> str:
        """The dataset's name."""
        return self._info.name

    @property
    def id(self) -> str:
        """The dataset's UUID."""
        return self._info.id

    @property
    def dimension(self) -> int:
        """The length of every vector."""
        return self._info.dimension

    @property
    def metric(self) -> str:
        """``"l2"``, ``"cosine"`` or ``"dot"``."""
        return self._info.metric

    def info(self) -> DatasetInfo:
        """The dataset as the catalogue has it now, with its record count."""
        self._info = DatasetInfo.from_dict(self._native.get_dataset(self.name))
        return self._info

    def __repr__(self) -> str:
        return f"Dataset(name={self.name!r}, dimension={self.dimension}, metric={self.metric!r})"

    # Writing.

    def upsert(
        self,
        ids: Sequence[str],
        vectors: Any,
        labels: Optional[Sequence[Optional[str]]] = None,
        predictions: Optional[Sequence[Optional[str]]] = None,
        uris: Optional[Sequence[Optional[str]]] = None,
        metadata: Optional[Sequence[Optional[Mapping[str, Any]]]] = None,
        *,
        batch_size: int = 5000,
    ) -> int:
        """Writes records and returns how many, once the server has stored
        all of them (a record whose id exists is replaced).

        Args:
            ids: One unique, non-empty ``str`` per record.
            vectors: ``np.ndarray`` of shape ``(n, dimension)``, float32 (read
                in place) or float64 (converted), or a list of lists.
            labels, predictions, uris: One ``str`` or ``None`` per record.
            metadata: One flat dict (str, number, bool values) or ``None`` per record.
            batch_size: Records per request; requests go out concurrently.

        Everything is checked with the server's rules first, so bad input
        (wrong dtype or shape: ``ValueError``; wrong dimension, NaN, an empty
        or repeated id, bad metadata: the matching :class:`InvalidInputError`)
        is refused before anything is sent. A failure while sending can leave
        some batches stored; writing again is safe (upserts are idempotent).
        """
        matrix = _inputs.as_matrix(vectors, "vectors", self.name, self.dimension)
        n_rows = matrix.shape[0]
        written, _ = self._native.upsert(
            self.name,
            self.dimension,
            self.metric,
            _inputs.required_list(ids, "ids", n_rows),
            matrix,
            _inputs.as_str_list(labels, "labels", n_rows),
            _inputs.as_str_list(predictions, "predictions", n_rows),
            _inputs.as_str_list(uris, "uris", n_rows),
            _inputs.as_str_list(metadata, "metadata", n_rows),
            batch_size=batch_size,
        )
        return int(written)

    def upsert_dataframe(
        self,
        df: Any,
        id: str = "id",
        vector: Union[str, Sequence[str]] = "embedding",
        label: Optional[str] = None,
        prediction: Optional[str] = None,
        uri: Optional[str] = None,
        metadata: Optional[Sequence[str]] = None,
        *,
        batch_size: int = 5000,
    ) -> int:
        """Writes the rows of a pandas DataFrame; returns how many.

        Args:
            df: The DataFrame.
            id: The column of record ids (non-``str`` values are converted with ``str``).
            vector: The column holding one vector (array or list) per row, or
                a list of columns holding one component each.
            label, prediction, uri: Columns of those fields (missing values:
                ``None`` or NaN).
            metadata: Columns to store in each record's metadata (missing
                values are left out).
            batch_size: Records per request.
        """
        columns = _dataframe_columns(df, id, vector, label, prediction, uri, metadata)
        return self.upsert(**columns, batch_size=batch_size)

    def writer(
        self,
        batch_size: int = 1000,
        *,
        max_batch_bytes: int = 4 << 20,
        max_batch_age: float = 0.1,
        max_in_flight: int = 16,
    ) -> "Writer":
        """A streaming writer, to use as a context manager::

            with ds.writer(batch_size=1000) as w:
                w.write(ids, vectors, labels=labels)

        :meth:`Writer.write` returns once its records are queued; the
        ``with`` block returns only when every record written is stored.

        Args:
            batch_size: A batch is sent when it holds this many records...
            max_batch_bytes: ...or would pass this many bytes...
            max_batch_age: ...or this many seconds after its first record.
            max_in_flight: Batches sent and not yet acknowledged, at most;
                beyond, ``write`` waits (backpressure).
        """
        native = self._native.open_writer(
            self.name,
            self.dimension,
            self.metric,
            batch_size,
            max_batch_bytes,
            float(max_batch_age),
            max_in_flight,
        )
        return Writer(self, native)

    # Reading.

    def count(self, filter: Optional[Mapping[str, Any]] = None) -> int:
        """The number of live records, or of those matching ``filter``
        (e.g. ``{"label": "cat"}``, ``{"metadata.score": {"$gte": 0.5}}``)."""
        return int(self._native.count(self.name, filter))

    def get(
        self,
        ids: Optional[Sequence[str]] = None,
        filter: Optional[Mapping[str, Any]] = None,
        include: _inputs.IncludeArg = ("label", "vector"),
        limit: Optional[int] = 100,
        offset: int = 0,
    ) -> Records:
        """Records by ids, by filter, or both, in id order.

        Args:
            ids: Only these ids (ids that do not exist are left out).
            filter: Only records matching it.
            include: Fields to return: ``"vector"``, ``"label"``,
                ``"prediction"``, ``"uri"``, ``"metadata"``.
            limit: At most this many records (``None``: all); more than
                10,000 are fetched page by page.
            offset: Records to skip first.
        """
        fields = _inputs.include_tuple(include)
        id_list = _inputs.as_str_list(ids, "ids", None)
        pages: List[Records] = []
        n_fetched = 0
        while True:
            page_limit = _PAGE_LIMIT if limit is None else min(_PAGE_LIMIT, limit - n_fetched)
            page_ids, page_fields = self._native.get_records(
                self.name,
                self.dimension,
                id_list,
                filter,
                list(fields),
                page_limit,
                offset + n_fetched,
            )
            pages.append(Records(page_ids, page_fields))
            n_fetched += len(page_ids)
            if len(page_ids) < page_limit or (limit is not None and n_fetched >= limit):
                break
        return Records.concatenate(pages, self.dimension)

    def delete(
        self,
        ids: Optional[Sequence[str]] = None,
        filter: Optional[Mapping[str, Any]] = None,
    ) -> int:
        """Deletes the records with these ids and/or matching ``filter`` (both
        must hold when both are given); returns how many live records were
        deleted. ``filter={}`` deletes every record."""
        if ids is None and filter is None:
            raise ValueError(
                "delete needs ids, a filter, or both; to delete every record pass filter={}"
            )
        return int(self._native.delete_records(self.name, _inputs.as_str_list(ids, "ids", None), filter))

    def knn(
        self,
        queries: Any,
        k: int = 10,
        filter: Optional[Mapping[str, Any]] = None,
        include: _inputs.IncludeArg = (),
    ) -> KnnResult:
        """The ``k`` nearest records to each query, nearest first, under the
        dataset's metric (smaller distance is nearer).

        Args:
            queries: ``np.ndarray`` of shape ``(n_queries, dimension)`` (or one
                vector of shape ``(dimension,)``), float32 or float64, or a
                list of lists; over 10,000 queries go in several requests.
            k: Neighbours per query.
            filter: Only records matching it are candidates.
            include: Fields to return with each neighbour (``"label"``, ...).
        """
        matrix = _inputs.as_matrix(queries, "queries", self.name, self.dimension, one_row_allowed=True)
        if matrix.shape[0] == 0:
            raise ValueError("queries has no rows; give at least one query vector")
        fields = _inputs.include_tuple(include)
        parts = [
            KnnResult(
                *self._native.knn(
                    self.name, self.dimension, matrix[start : start + _QUERY_LIMIT], int(k),
                    filter, list(fields),
                )
            )
            for start in range(0, matrix.shape[0], _QUERY_LIMIT)
        ]
        return KnnResult.concatenate(parts)

    # The catalogue.

    def rename(self, new_name: str) -> None:
        """Renames the dataset; this handle follows it."""
        self._info = DatasetInfo.from_dict(self._native.update_dataset(self.name, new_name=new_name))

    def set_metadata(self, metadata: Mapping[str, Any]) -> None:
        """Replaces the dataset's metadata."""
        self._info = DatasetInfo.from_dict(self._native.update_dataset(self.name, metadata=dict(metadata)))

    def patch_metadata(self, patch: Mapping[str, Any]) -> None:
        """Patches the dataset's metadata (JSON merge patch: keys are set,
        ``None`` removes a key, nested dicts are patched recursively)."""
        self._info = DatasetInfo.from_dict(
            self._native.update_dataset(self.name, metadata_patch=dict(patch))
        )

    @property
    def metadata(self) -> Dict[str, Any]:
        """The dataset's metadata as this handle last saw it."""
        return dict(self._info.metadata)


class Writer:
    """A streaming writer into one dataset, from :meth:`Dataset.writer`.

    Use it as a context manager: the ``with`` block returns only once every
    record written is stored (acknowledged by the server, which means in
    ClickHouse). Batches go out in the background by count, bytes and age;
    failed batches are retried (upserts are idempotent), across a server
    restart included, within the client's retry budget.

    If the block raises an ``Exception``, what was written is still
    finished; a ``KeyboardInterrupt`` abandons it instead.
    """

    def __init__(self, dataset: Dataset, native: Any) -> None:
        self._dataset = dataset
        self._native = native
        self.summary: Optional[WriteSummary] = None
        """What was stored, once the writer finished."""

    def write(
        self,
        ids: Sequence[str],
        vectors: Any,
        labels: Optional[Sequence[Optional[str]]] = None,
        predictions: Optional[Sequence[Optional[str]]] = None,
        uris: Optional[Sequence[Optional[str]]] = None,
        metadata: Optional[Sequence[Optional[Mapping[str, Any]]]] = None,
    ) -> int:
        """Queues records (arguments as for :meth:`Dataset.upsert`) and
        returns how many, once they are queued; it waits only while every
        in-flight batch slot is taken. A later write of an id replaces an
        earlier one.

        Bad input is refused before anything is queued. An error of an
        earlier batch stops the writer and is raised here and at the end of
        the block.
        """
        matrix = _inputs.as_matrix(vectors, "vectors", self._dataset.name, self._dataset.dimension)
        n_rows = matrix.shape[0]
        if n_rows == 0:
            return 0
        return int(
            self._native.write(
                _inputs.required_list(ids, "ids", n_rows),
                matrix,
                _inputs.as_str_list(labels, "labels", n_rows),
                _inputs.as_str_list(predictions, "predictions", n_rows),
                _inputs.as_str_list(uris, "uris", n_rows),
                _inputs.as_str_list(metadata, "metadata", n_rows),
            )
        )

    def write_dataframe(
        self,
        df: Any,
        id: str = "id",
        vector: Union[str, Sequence[str]] = "embedding",
        label: Optional[str] = None,
        prediction: Optional[str] = None,
        uri: Optional[str] = None,
        metadata: Optional[Sequence[str]] = None,
    ) -> int:
        """Queues the rows of a pandas DataFrame (columns as for
        :meth:`Dataset.upsert_dataframe`)."""
        return self.write(**_dataframe_columns(df, id, vector, label, prediction, uri, metadata))

    @property
    def n_unacknowledged(self) -> int:
        """Records written and not yet acknowledged by the server."""
        return int(self._native.n_unacknowledged)

    def finish(self) -> WriteSummary:
        """Sends what is left and waits until every record written is stored."""
        self.summary = WriteSummary(**self._native.finish())
        return self.summary

    def abandon(self) -> int:
        """Stops without waiting; returns how many written records were not
        acknowledged (they may or may not be stored)."""
        return int(self._native.abandon())

    def __del__(self) -> None:
        native = getattr(self, "_native", None)
        if native is not None and not native.closed:
            n_unacknowledged = native.abandon()
            warnings.warn(
                f"a Writer of dataset {self._dataset.name!r} was dropped without finish() or a "
                f"with block; {n_unacknowledged} records written were not acknowledged and may "
                "not be stored",
                ResourceWarning,
                stacklevel=2,
            )

    def __enter__(self) -> "Writer":
        return self

    def __exit__(self, exc_type: Any, exc: Any, traceback: Any) -> None:
        if exc_type is not None and not issubclass(exc_type, Exception):
            self.abandon()
            return
        if self._native.closed:
            return
        if exc is None:
            self.finish()
            return
        try:
            self.finish()
        except Exception as finish_error:  # noqa: BLE001 - reported on the block's error
            if hasattr(exc, "add_note"):
                exc.add_note(f"finishing the writer failed too: {finish_error}")


def _dataframe_columns(
    df: Any,
    id: str,
    vector: Union[str, Sequence[str]],
    label: Optional[str],
    prediction: Optional[str],
    uri: Optional[str],
    metadata: Optional[Sequence[str]],
) -> Dict[str, Any]:
    """The arguments of :meth:`Dataset.upsert` for the columns of ``df``."""
    def column(name: str) -> Any:
        if name not in df.columns:
            raise ValueError(
                f"the DataFrame has no column {name!r}; its columns are {list(df.columns)}"
            )
        return df[name]

    def optional_strings(name: Optional[str]) -> Optional[List[Optional[str]]]:
        if name is None:
            return None
        return [None if _is_missing(value) else str(value) for value in column(name).tolist()]

    if isinstance(vector, str):
        cells = column(vector).tolist()
        vectors = np.stack([np.asarray(cell) for cell in cells]) if cells else np.zeros((0, 0))
        if vectors.dtype not in (np.float32, np.float64):
            vectors = vectors.astype(np.float64)
    else:
        for name in vector:
            column(name)
        vectors = df[list(vector)].to_numpy(dtype=np.float64)
    records_metadata = None
    if metadata:
        records_metadata = []
        rows = df[[column(name).name for name in metadata]].to_dict("records")
        for row in rows:
            records_metadata.append(
                {key: _python_scalar(value) for key, value in row.items() if not _is_missing(value)}
                or None
            )
    return {
        "ids": [str(value) for value in column(id).tolist()],
        "vectors": vectors,
        "labels": optional_strings(label),
        "predictions": optional_strings(prediction),
        "uris": optional_strings(uri),
        "metadata": records_metadata,
    }


def _is_missing(value: Any) -> bool:
    """``None``, NaN, ``pandas.NA`` or ``NaT``: a missing value of a DataFrame cell."""
    if value is None:
        return True
    if isinstance(value, float):
        return value != value
    import pandas as pd

    missing = pd.isna(value)
    return isinstance(missing, (bool, np.bool_)) and bool(missing)


def _python_scalar(value: Any) -> Any:
    """NumPy scalars as Python ones."""
    return value.item() if hasattr(value, "item") and hasattr(value, "dtype") else value
