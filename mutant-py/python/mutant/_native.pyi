"""Type stubs of ``mutant._native``, the compiled core of the SDK (see
``src/`` in the crate). Use the public API in :mod:`mutant` instead."""

from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

PROTOCOL_VERSION: int
__version__: str

class NativeClient:
    def __init__(
        self,
        url: str,
        token: Optional[str] = None,
        timeout_s: float = 60.0,
        max_attempts: int = 10,
        max_backoff_s: float = 5.0,
    ) -> None: ...
    @property
    def url(self) -> str: ...
    def version(self) -> Dict[str, Any]: ...
    def create_dataset(
        self,
        name: str,
        dimension: int,
        metric: str,
        metadata: Optional[Dict[str, Any]] = None,
        if_missing: bool = False,
    ) -> Dict[str, Any]: ...
    def get_dataset(self, name: str) -> Dict[str, Any]: ...
    def list_datasets(self, metadata: Optional[Dict[str, Any]] = None) -> List[Dict[str, Any]]: ...
    def update_dataset(
        self,
        name: str,
        new_name: Optional[str] = None,
        metadata: Optional[Dict[str, Any]] = None,
        metadata_patch: Optional[Dict[str, Any]] = None,
    ) -> Dict[str, Any]: ...
    def delete_dataset(self, name: str) -> None: ...
    def upsert(
        self,
        dataset: str,
        dimension: int,
        metric: str,
        ids: List[str],
        vectors: np.ndarray,
        labels: Optional[List[Optional[str]]] = None,
        predictions: Optional[List[Optional[str]]] = None,
        uris: Optional[List[Optional[str]]] = None,
        metadata: Optional[List[Optional[Dict[str, Any]]]] = None,
        batch_size: int = 5000,
        max_batch_bytes: int = 33554432,
        max_in_flight: int = 16,
    ) -> Tuple[int, int]: ...
    def open_writer(
        self,
        dataset: str,
        dimension: int,
        metric: str,
        batch_size: int,
        max_batch_bytes: int,
        max_batch_age_s: float,
        max_in_flight: int,
    ) -> NativeWriter: ...
    def get_records(
        self,
        dataset: str,
        dimension: int,
        ids: Optional[List[str]] = None,
        filter: Optional[Mapping[str, Any]] = None,
        include: Sequence[str] = ...,
        limit: int = 100,
        offset: int = 0,
    ) -> Tuple[List[str], Dict[str, Any]]: ...
    def delete_records(
        self,
        dataset: str,
        ids: Optional[List[str]] = None,
        filter: Optional[Mapping[str, Any]] = None,
    ) -> int: ...
    def count(self, dataset: str, filter: Optional[Mapping[str, Any]] = None) -> int: ...
    def knn(
        self,
        dataset: str,
        dimension: int,
        queries: np.ndarray,
        k: int,
        filter: Optional[Mapping[str, Any]] = None,
        include: Sequence[str] = ...,
    ) -> Tuple[List[List[str]], np.ndarray, Dict[str, Any]]: ...
    def start_analysis(
        self,
        kind: str,
        target: str,
        reference: Optional[str] = None,
        params: Optional[Dict[str, Any]] = None,
    ) -> Dict[str, Any]: ...
    def analysis_status(self, id: str) -> Dict[str, Any]: ...
    def analysis_results(self, id: str, limit: int, offset: int) -> Dict[str, Any]: ...
    def analysis_rows(
        self,
        id: str,
        limit: Optional[int] = None,
        offset: int = 0,
        include: Sequence[str] = ...,
        flagged: Optional[bool] = None,
        min_score: Optional[float] = None,
    ) -> List[Dict[str, Any]]: ...
    def cancel_analysis(self, id: str) -> Dict[str, Any]: ...

class NativeWriter:
    def write(
        self,
        ids: List[str],
        vectors: np.ndarray,
        labels: Optional[List[Optional[str]]] = None,
        predictions: Optional[List[Optional[str]]] = None,
        uris: Optional[List[Optional[str]]] = None,
        metadata: Optional[List[Optional[Dict[str, Any]]]] = None,
    ) -> int: ...
    def finish(self) -> Dict[str, int]: ...
    def abandon(self) -> int: ...
    @property
    def n_unacknowledged(self) -> int: ...
    @property
    def closed(self) -> bool: ...
