"""Mutant's Python SDK: an embedding store and analysis server, NumPy in and out.

::

    import numpy as np, mutant

    client = mutant.Client("http://127.0.0.1:7311")
    ds = client.get_or_create_dataset("train", dimension=384, metric="cosine")
    ds.upsert(ids, vectors, labels=labels)            # vectors: np.ndarray (n, 384)
    with ds.writer(batch_size=1000) as w:             # streaming, with backpressure
        w.write(ids, vectors, labels=labels)
    hits = ds.knn(queries, k=10, include=("label",))  # hits.ids, hits.distances
    run = client.analyze("mislabel", target="train")  # waits, with a progress bar
    suspects = run.results(limit=20, include=("label", "uri"))

The package is compiled from the Rust SDK (``mutant-client``): the same
binary protocol, retries and streaming writer. Every error is a
:class:`MutantError`; see :mod:`mutant.errors`.
"""

from ._native import PROTOCOL_VERSION, __version__
from .analysis import Analysis, AnalysisStatus
from .client import Client
from .dataset import Dataset, DatasetInfo, Writer, WriteSummary
from . import errors
from .errors import *  # noqa: F403  (every error class, as errors.__all__ lists them)
from .results import KnnResult, Records

__all__ = [
    "PROTOCOL_VERSION",
    "__version__",
    "Client",
    "Dataset",
    "DatasetInfo",
    "Writer",
    "WriteSummary",
    "KnnResult",
    "Records",
    "Analysis",
    "AnalysisStatus",
]
__all__ += errors.__all__
