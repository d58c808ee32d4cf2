"""The :class:`Client`: a connection to a Mutant server, the dataset
catalogue and analyses."""

from __future__ import annotations

from typing import Any, List, Mapping, Optional, Union

from . import _native
from .analysis import Analysis
from .dataset import Dataset, DatasetInfo

__all__ = ["Client"]

#: A dataset given by handle, name or UUID.
DatasetRef = Union[Dataset, str]


class Client:
    """A connection to one Mutant server (any server of a deployment will do:
    they are stateless).

    Args:
        url: The server's address, e.g. ``"http://127.0.0.1:7311"``.
        token: The server's ``MUTANT_API_TOKEN``, when it has one.
        timeout: Seconds one request attempt may take.
        max_attempts: Attempts per request, retries included. Requests that
            are safe to repeat (reads, upserts, deletes) are retried with
            exponential backoff on a 503 or a broken connection.
        max_backoff: The longest wait between two attempts, in seconds.

    The client holds one connection pool and one background runtime; calls
    release the GIL while they wait on the network, so threads can share a
    client. Nothing is sent until the first call. The runtime's threads do
    not survive ``os.fork``: in a process started by ``multiprocessing``'s
    fork method, make a new client.

    Example::

        import numpy as np, mutant

        client = mutant.Client("http://127.0.0.1:7311")
        ds = client.get_or_create_dataset("train", dimension=384, metric="cosine")
        ds.upsert(["a", "b"], np.random.rand(2, 384).astype(np.float32), labels=["cat", "dog"])
        hits = ds.knn(np.random.rand(5, 384), k=10, include=("label",))
    """

    def __init__(
        self,
        url: str = "http://127.0.0.1:7311",
        token: Optional[str] = None,
        *,
        timeout: float = 60.0,
        max_attempts: int = 10,
        max_backoff: float = 5.0,
    ) -> None:
        self._native = _native.NativeClient(
            url, token, float(timeout), int(max_attempts), float(max_backoff)
        )

    @property
    def url(self) -> str:
        """The server's base URL."""
        return str(self._native.url)

    def __repr__(self) -> str:
        return f"Client({self.url!r})"

    def version(self) -> dict:
        """The server's release, protocol version and ClickHouse version."""
        return dict(self._native.version())

    # The catalogue.

    def create_dataset(
        self,
        name: str,
        dimension: int,
        metric: str = "l2",
        metadata: Optional[Mapping[str, Any]] = None,
    ) -> Dataset:
        """Creates a dataset.

        Args:
            name: 1 to 128 ASCII letters, digits, ``_``, ``-``, starting with a letter.
            dimension: The length of every vector (1 to 65,536), fixed.
            metric: ``"l2"`` (Euclidean), ``"cosine"`` (1 - cosine similarity)
                or ``"dot"`` (negated inner product).
            metadata: A JSON-like dict the client manages.

        Raises:
            DatasetExistsError: The name is taken.
        """
        info = self._native.create_dataset(name, int(dimension), metric, _dict(metadata))
        return Dataset(self, DatasetInfo.from_dict(info))

    def get_or_create_dataset(
        self,
        name: str,
        dimension: int,
        metric: str = "l2",
        metadata: Optional[Mapping[str, Any]] = None,
    ) -> Dataset:
        """The dataset ``name``, created if it does not exist (an existing
        dataset's metadata is left as it is).

        Raises:
            DatasetIncompatibleError: It exists with another dimension or metric.
        """
        info = self._native.create_dataset(
            name, int(dimension), metric, _dict(metadata), if_missing=True
        )
        return Dataset(self, DatasetInfo.from_dict(info))

    def dataset(self, name: str) -> Dataset:
        """The existing dataset ``name`` (or UUID).

        Raises:
            UnknownDatasetError: There is none.
        """
        return Dataset(self, DatasetInfo.from_dict(self._native.get_dataset(name)))

    def list_datasets(self, metadata: Optional[Mapping[str, Any]] = None) -> List[DatasetInfo]:
        """Every dataset, ordered by name; with ``metadata``, only those whose
        metadata contains it (every key present with an equal value)."""
        return [DatasetInfo.from_dict(info) for info in self._native.list_datasets(_dict(metadata))]

    def delete_dataset(self, name: DatasetRef) -> None:
        """Deletes a dataset and all its records.

        Raises:
            UnknownDatasetError: There is none.
        """
        self._native.delete_dataset(_name(name))

    # Analyses.

    def start_analysis(
        self,
        kind: str,
        target: DatasetRef,
        reference: Optional[DatasetRef] = None,
        **params: Any,
    ) -> Analysis:
        """Starts an analysis in the background and returns its handle
        (``status()``, ``wait()``, ``cancel()``, ``results()``).

        Args:
            kind: ``"mislabel"``, ``"select"``, ``"novelty"``, ``"uniqueness"``,
                ``"near_duplicates"``, ``"drift"``, ``"boundary_uncertainty"``,
                ``"activation_uncertainty"``, ``"class_outlier"``, ``"projection"``.
            target: The dataset scored (handle, name or UUID).
            reference: The dataset compared against, for kinds that take one.
            **params: The kind's parameters (``k=10``, ``n=100``, ...); none
                are needed but ``select``'s ``n``.

        Raises:
            UnknownDatasetError: A dataset does not exist.
            InvalidParameterError: Unknown kind, bad or unknown parameter,
                missing or unexpected reference.
            AnalysisTooLargeError: The analysis would need more working
                memory than the server's budget; the message says what to
                lower.
        """
        status = self._native.start_analysis(
            kind, _name(target), None if reference is None else _name(reference), params
        )
        return Analysis(self._native, status)

    def analyze(
        self,
        kind: str,
        target: DatasetRef,
        reference: Optional[DatasetRef] = None,
        *,
        progress: Optional[bool] = None,
        timeout: Optional[float] = None,
        **params: Any,
    ) -> Analysis:
        """Runs an analysis and waits for it, with a progress bar on a
        terminal (see :meth:`start_analysis` for the arguments and
        :meth:`Analysis.wait` for ``progress`` and ``timeout``). Interrupting
        the wait (Ctrl-C) cancels the analysis.

        Returns the finished :class:`Analysis`: ``run.summary``,
        ``run.results(...)``, ``run.to_pandas()``.

        Raises:
            AnalysisFailedError: It failed (no labels, empty dataset, ...).
        """
        run = self.start_analysis(kind, target, reference, **params)
        try:
            return run.wait(progress=progress, timeout=timeout)
        except KeyboardInterrupt:
            run.cancel()
            raise

    def analysis(self, analysis_id: str) -> Analysis:
        """A handle on an analysis started earlier, by its id.

        Raises:
            UnknownAnalysisError: There is none.
        """
        return Analysis(self._native, self._native.analysis_status(analysis_id))


def _name(dataset: DatasetRef) -> str:
    return dataset.name if isinstance(dataset, Dataset) else str(dataset)


def _dict(value: Optional[Mapping[str, Any]]) -> Optional[dict]:
    return None if value is None else dict(value)
