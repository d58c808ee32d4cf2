"""The exceptions of the Mutant SDK.

Every error is a :class:`MutantError` with:

* ``code``: the protocol's stable error code (``"dimension_mismatch"``,
  ``"unknown_dataset"``, ...) for errors the server defines, ``None`` for
  errors of the client's side (connection, timeout, a failed analysis);
* ``message``: what happened and what to do, as the SDK words it (also
  ``str(error)``);
* ``details``: the error's other fields (``attempts``, ``status``, ...).

There is one subclass per kind of error of the Rust SDK, and one per code of
refused input under :class:`InvalidInputError`, so ``except
mutant.InvalidFilterError`` catches exactly a bad filter. Refused input is
also a :class:`ValueError`, an unknown dataset or analysis a
:class:`LookupError`, an unreachable server a :class:`ConnectionError`.
Invalid input is refused before anything is sent whenever the client can
tell (the server's own rules run on the client first), with the same code
and message the server would give.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Type

__all__ = [
    "MutantError",
    "InvalidBaseUrlError",
    "InvalidTokenError",
    "UnknownDatasetError",
    "DatasetExistsError",
    "DatasetIncompatibleError",
    "InvalidInputError",
    "InvalidDatasetNameError",
    "InvalidDimensionError",
    "UnknownMetricError",
    "DimensionMismatchError",
    "NonFiniteValueError",
    "EmptyRecordIdError",
    "FieldTooLongError",
    "EmptyFieldError",
    "DuplicateRecordIdError",
    "EmptyBatchError",
    "BatchTooLargeError",
    "KnnTooLargeError",
    "InvalidMetadataError",
    "InvalidFilterError",
    "InvalidParameterError",
    "EmptyDatasetError",
    "QueryTooLargeError",
    "UnauthorizedError",
    "PayloadTooLargeError",
    "DatasetTooLargeError",
    "AnalysisTooLargeError",
    "UnavailableError",
    "UnknownAnalysisError",
    "AnalysisNotFinishedError",
    "AnalysisFailedError",
    "AnalysisCancelledError",
    "ProtocolError",
    "ServerError",
    "TransportError",
    "RequestTimeoutError",
    "DecodeError",
    "WriterStoppedError",
]


class MutantError(Exception):
    """Base class of every error the Mutant SDK raises.

    Attributes:
        code: The protocol's stable error code, or ``None`` for errors of the
            client's side.
        message: What happened and what to do.
        details: Further fields of the error (``attempts``, ``status``, ...).
    """

    code: Optional[str]
    message: str
    details: Dict[str, Any]

    def __init__(
        self,
        message: str,
        code: Optional[str] = None,
        details: Optional[Dict[str, Any]] = None,
    ) -> None:
        # One positional argument only: some subclasses are also OSErrors,
        # which read two arguments as (errno, strerror).
        super().__init__(message)
        self.message = message
        self.code = code
        self.details = dict(details or {})

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> Any:
        return (_rebuild, (type(self), self.message, self.code, self.details))


def _rebuild(
    cls: Type[MutantError], message: str, code: Optional[str], details: Dict[str, Any]
) -> MutantError:
    return cls(message, code, details)


class InvalidBaseUrlError(MutantError, ValueError):
    """The server URL given to :class:`mutant.Client` cannot be used."""


class InvalidTokenError(MutantError, ValueError):
    """The API token cannot travel in an HTTP header."""


class UnknownDatasetError(MutantError, LookupError):
    """No dataset with that name or UUID (code ``unknown_dataset``)."""


class DatasetExistsError(MutantError):
    """A dataset of that name exists already (code ``dataset_exists``)."""


class DatasetIncompatibleError(MutantError):
    """``get_or_create_dataset`` found the name taken by a dataset of another
    dimension or metric."""


class InvalidInputError(MutantError, ValueError):
    """The request's content was refused; nothing stored was changed.

    Raised as one of its subclasses for each code the protocol defines, or
    as this class for a code this SDK does not know yet.
    """


class InvalidDatasetNameError(InvalidInputError):
    """A dataset name that is not 1 to 128 ASCII letters, digits, ``_`` or
    ``-`` starting with a letter (code ``invalid_dataset_name``)."""


class InvalidDimensionError(InvalidInputError):
    """A dimension of 0 or over 65,536 (code ``invalid_dimension``)."""


class UnknownMetricError(InvalidInputError):
    """A metric other than ``l2``, ``cosine``, ``dot`` (code ``unknown_metric``)."""


class DimensionMismatchError(InvalidInputError):
    """A vector or query whose length is not the dataset's dimension (code
    ``dimension_mismatch``)."""


class NonFiniteValueError(InvalidInputError):
    """A NaN or infinite value in a vector or query (code ``non_finite_value``)."""


class EmptyRecordIdError(InvalidInputError):
    """A record with the id ``""`` (code ``empty_record_id``)."""


class FieldTooLongError(InvalidInputError):
    """An id, label, prediction, uri or metadata over its limit (code
    ``field_too_long``)."""


class EmptyFieldError(InvalidInputError):
    """A label, prediction or uri that is ``""``: give ``None`` instead (code
    ``empty_field``)."""


class DuplicateRecordIdError(InvalidInputError):
    """The same id twice in one upsert (code ``duplicate_record_id``)."""


class EmptyBatchError(InvalidInputError):
    """An upsert without records (code ``empty_batch``)."""


class BatchTooLargeError(InvalidInputError):
    """More than 100,000 records in one batch (code ``batch_too_large``)."""


class KnnTooLargeError(InvalidInputError):
    """A kNN request whose number of queries times ``k`` is over the
    server's per-request limit (code ``knn_too_large``): send fewer queries
    per call or a smaller ``k``."""


class InvalidMetadataError(InvalidInputError):
    """Record metadata that is not a flat dict of str, number and bool
    values with simple keys (code ``invalid_metadata``)."""


class InvalidFilterError(InvalidInputError):
    """A filter with an unknown field or operator, or a wrong operand (code
    ``invalid_filter``)."""


class InvalidParameterError(InvalidInputError):
    """A request value out of range: ``k``, ``limit``, an analysis kind or
    parameter, a missing reference, ... (code ``invalid_parameter``)."""


class EmptyDatasetError(InvalidInputError):
    """An analysis or search given no records (code ``empty_dataset``)."""


class QueryTooLargeError(InvalidInputError):
    """A filter too large for one ClickHouse query (code ``query_too_large``)."""


class UnauthorizedError(MutantError, PermissionError):
    """The server wants its API token (code ``unauthorized``): pass
    ``token=`` to :class:`mutant.Client`."""


class PayloadTooLargeError(MutantError):
    """A request body over the server's limit (code ``payload_too_large``):
    write smaller batches."""


class DatasetTooLargeError(MutantError):
    """The dataset needs more memory than the server's whole dataset cache
    (code ``dataset_too_large``, HTTP 507): raise ``MUTANT_CACHE_BYTES`` on
    the server, or split the dataset."""


class AnalysisTooLargeError(MutantError):
    """The analysis would need more working memory than the server's
    analysis budget (code ``analysis_too_large``, HTTP 413); refused before
    it started. The message says what to lower (``sample_size``, ``k``,
    ``n``, the dataset), or raise ``MUTANT_ANALYSIS_BYTES`` on the server."""


class UnavailableError(MutantError, ConnectionError):
    """The server or its ClickHouse is unavailable (HTTP 503), still after
    the client's retries; retrying later is safe."""


class UnknownAnalysisError(MutantError, LookupError):
    """No analysis with that id (code ``unknown_analysis``)."""


class AnalysisNotFinishedError(MutantError):
    """Results were asked for before the analysis finished (code
    ``analysis_not_finished``), or :meth:`mutant.Analysis.wait` ran out of
    time."""


class AnalysisFailedError(MutantError):
    """The analysis ended with status ``failed``; the message says why."""


class AnalysisCancelledError(MutantError):
    """The analysis ended with status ``cancelled``."""


class ProtocolError(MutantError):
    """The server did not understand the request: client and server speak
    different protocol versions (codes ``malformed_frame``, ``invalid_json``,
    ``unsupported_media_type``, ``not_found``, ``method_not_allowed``)."""


class ServerError(MutantError):
    """The server failed (codes ``internal``, ``store_error``); its log has
    the details."""


class TransportError(MutantError, ConnectionError):
    """The server could not be reached, or the connection broke, still after
    the client's retries."""


class RequestTimeoutError(MutantError, TimeoutError):
    """No complete answer within the client's ``timeout``, still after the
    client's retries."""


class DecodeError(MutantError):
    """The server's answer could not be decoded: client and server versions
    differ."""


class WriterStoppedError(MutantError):
    """A writer was used after it finished, or its background task stopped."""


#: The class of each kind of error the native module reports.
_CLASS_OF_KIND: Dict[str, Type[MutantError]] = {
    "invalid_base_url": InvalidBaseUrlError,
    "invalid_token": InvalidTokenError,
    "unknown_dataset": UnknownDatasetError,
    "dataset_exists": DatasetExistsError,
    "dataset_incompatible": DatasetIncompatibleError,
    "invalid_input": InvalidInputError,
    "unauthorized": UnauthorizedError,
    "payload_too_large": PayloadTooLargeError,
    "dataset_too_large": DatasetTooLargeError,
    "analysis_too_large": AnalysisTooLargeError,
    "unavailable": UnavailableError,
    "unknown_analysis": UnknownAnalysisError,
    "analysis_not_finished": AnalysisNotFinishedError,
    "analysis_failed": AnalysisFailedError,
    "analysis_cancelled": AnalysisCancelledError,
    "protocol": ProtocolError,
    "server": ServerError,
    "transport": TransportError,
    "timeout": RequestTimeoutError,
    "decode": DecodeError,
    "writer_stopped": WriterStoppedError,
    "other": MutantError,
}

#: The class of each code of refused input.
_CLASS_OF_INPUT_CODE: Dict[str, Type[InvalidInputError]] = {
    "invalid_dataset_name": InvalidDatasetNameError,
    "invalid_dimension": InvalidDimensionError,
    "unknown_metric": UnknownMetricError,
    "dimension_mismatch": DimensionMismatchError,
    "non_finite_value": NonFiniteValueError,
    "empty_record_id": EmptyRecordIdError,
    "field_too_long": FieldTooLongError,
    "empty_field": EmptyFieldError,
    "duplicate_record_id": DuplicateRecordIdError,
    "empty_batch": EmptyBatchError,
    "batch_too_large": BatchTooLargeError,
    "knn_too_large": KnnTooLargeError,
    "invalid_metadata": InvalidMetadataError,
    "invalid_filter": InvalidFilterError,
    "invalid_parameter": InvalidParameterError,
    "empty_dataset": EmptyDatasetError,
    "query_too_large": QueryTooLargeError,
}


def from_native(
    kind: str, code: Optional[str], message: str, details: Dict[str, Any]
) -> MutantError:
    """The exception for an error of the native module: its ``kind`` picks
    the class (refined by ``code`` for invalid input)."""
    cls = _CLASS_OF_KIND.get(kind, MutantError)
    if cls is InvalidInputError and code is not None:
        cls = _CLASS_OF_INPUT_CODE.get(code, InvalidInputError)
    return cls(message, code, details)


def invalid_input(code: str, message: str) -> InvalidInputError:
    """The exception for input refused on the client's side with the
    protocol's ``code``."""
    error = from_native("invalid_input", code, message, {})
    assert isinstance(error, InvalidInputError)
    return error
