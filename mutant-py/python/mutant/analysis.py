"""Analyses: :class:`Analysis` (a started analysis: its status, waiting for
it with a progress bar, cancelling it, its ranked results and summary) and
:class:`AnalysisStatus`."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional

from . import _inputs
from .errors import (
    AnalysisCancelledError,
    AnalysisFailedError,
    AnalysisNotFinishedError,
)

__all__ = ["Analysis", "AnalysisStatus"]

#: The first wait between two polls; waits grow by half up to `_MAX_POLL_WAIT`.
_FIRST_POLL_WAIT = 0.05
_MAX_POLL_WAIT = 1.0
#: The record fields results can carry.
RESULT_FIELDS = ("label", "prediction", "uri", "metadata")


@dataclass(frozen=True)
class AnalysisStatus:
    """Where an analysis stands.

    Attributes:
        id: The analysis id.
        kind: The algorithm (``"mislabel"``, ``"select"``, ...).
        status: ``"queued"``, ``"running"``, ``"done"``, ``"failed"``,
            ``"cancelled"``, or ``"stale"`` (done, but its datasets changed since).
        progress: 0 to 1.
        error: Why it failed.
        target: The target dataset's UUID.
        reference: The reference dataset's UUID, if any.
        params: The parameters as given.
        summary: Kind-level results of a finished analysis, when the server gives them.
        raw: The whole status as the server sent it.
    """

    id: str
    kind: str
    status: str
    progress: float
    error: Optional[str]
    target: str
    reference: Optional[str]
    params: Dict[str, Any]
    summary: Optional[Dict[str, Any]]
    raw: Dict[str, Any] = field(repr=False)

    @staticmethod
    def from_dict(status: Mapping[str, Any]) -> "AnalysisStatus":
        """The status of the protocol's analysis object."""
        return AnalysisStatus(
            id=str(status["id"]),
            kind=status["kind"],
            status=status["status"],
            progress=float(status.get("progress", 0.0)),
            error=status.get("error"),
            target=str(status["target"]),
            reference=status.get("reference"),
            params=dict(status.get("params") or {}),
            summary=status.get("summary"),
            raw=dict(status),
        )

    @property
    def done(self) -> bool:
        """True when results can be read (``done`` or ``stale``)."""
        return self.status in ("done", "stale")

    @property
    def finished(self) -> bool:
        """True once the analysis will not change any more."""
        return self.status in ("done", "stale", "failed", "cancelled")


class Analysis:
    """A started analysis; from :meth:`Client.analyze` (finished) or
    :meth:`Client.start_analysis` (just queued).

    Any server on the same ClickHouse answers for it, so a handle can also be
    made again from its id with :meth:`Client.analysis`.
    """

    def __init__(self, native: Any, status: Mapping[str, Any]) -> None:
        self._native = native
        self._last = AnalysisStatus.from_dict(status)
        self._summary: Optional[Dict[str, Any]] = None

    @property
    def id(self) -> str:
        """The analysis id."""
        return self._last.id

    @property
    def kind(self) -> str:
        """The algorithm."""
        return self._last.kind

    @property
    def last_status(self) -> AnalysisStatus:
        """The status as last read, without asking the server."""
        return self._last

    def __repr__(self) -> str:
        return f"Analysis(id={self.id!r}, kind={self.kind!r}, status={self._last.status!r})"

    def status(self) -> AnalysisStatus:
        """Where the analysis stands now."""
        self._last = AnalysisStatus.from_dict(self._native.analysis_status(self.id))
        return self._last

    def cancel(self) -> AnalysisStatus:
        """Asks the analysis to stop (it becomes ``cancelled`` within about a
        second); on a finished analysis this changes nothing."""
        self._last = AnalysisStatus.from_dict(self._native.cancel_analysis(self.id))
        return self._last

    def wait(self, progress: Optional[bool] = None, timeout: Optional[float] = None) -> "Analysis":
        """Waits until the analysis ends and returns this handle.

        Args:
            progress: Show a progress bar on stderr (with tqdm when it is
                installed); by default only when stderr is a terminal.
            timeout: Give up after this many seconds with
                :class:`AnalysisNotFinishedError` (the analysis goes on).

        Raises:
            AnalysisFailedError: It failed; the message says why.
            AnalysisCancelledError: It was cancelled.
        """
        show = sys.stderr.isatty() if progress is None else progress
        bar = _ProgressBar(f"{self.kind}") if show else None
        started = time.monotonic()
        wait = _FIRST_POLL_WAIT
        try:
            while True:
                status = self.status()
                if bar is not None:
                    bar.update(status.progress, status.status)
                if status.finished:
                    break
                if timeout is not None and time.monotonic() - started >= timeout:
                    raise AnalysisNotFinishedError(
                        f"analysis {self.id} ({self.kind}) is still {status.status} after "
                        f"{timeout} s; wait again, or cancel it with Analysis.cancel()"
                    )
                time.sleep(wait)
                wait = min(wait * 1.5, _MAX_POLL_WAIT)
        finally:
            if bar is not None:
                bar.close()
        if status.status == "failed":
            raise AnalysisFailedError(
                f"analysis {self.id} ({self.kind}) failed: "
                f"{status.error or 'the server gave no reason'}",
                None,
                {"analysis_id": self.id, "kind": self.kind},
            )
        if status.status == "cancelled":
            raise AnalysisCancelledError(
                f"analysis {self.id} ({self.kind}) was cancelled; start it again to get results",
                None,
                {"analysis_id": self.id, "kind": self.kind},
            )
        return self

    @property
    def summary(self) -> Optional[Dict[str, Any]]:
        """Kind-level results of the finished analysis (``drift``'s statistic
        and p-value, ``projection``'s explained variance, and whatever else
        the server reports), or ``None`` when the kind has none."""
        if self._last.summary is not None:
            return self._last.summary
        if self._summary is None:
            if not self._last.done:
                self.status()
                if self._last.summary is not None:
                    return self._last.summary
            page = self._native.analysis_results(self.id, 0, 0)
            self._summary = page.get("summary")
        return self._summary

    def results(
        self,
        limit: Optional[int] = None,
        include: _inputs.IncludeArg = None,
        flagged: Optional[bool] = None,
        min_score: Optional[float] = None,
    ) -> List[Dict[str, Any]]:
        """The ranked result rows, highest score first, as dicts (their
        fields depend on the kind; see PROTOCOL.md).

        Args:
            limit: At most this many rows (``None``: all of them).
            include: Record fields to add to each row: ``"label"``,
                ``"prediction"``, ``"uri"``, ``"metadata"``, as the records
                were when the analysis ran.
            flagged: Only rows the kind flagged (``True``) or did not
                (``False``); every per-record kind gives each row a verdict.
            min_score: Only rows scoring at least this.

        Raises:
            AnalysisNotFinishedError: The analysis is not done.
        """
        fields = _inputs.include_tuple(include, RESULT_FIELDS)
        return list(
            self._native.analysis_rows(
                self.id,
                limit,
                0,
                list(fields),
                flagged,
                None if min_score is None else float(min_score),
            )
        )

    def to_pandas(
        self,
        limit: Optional[int] = None,
        include: _inputs.IncludeArg = None,
        flagged: Optional[bool] = None,
        min_score: Optional[float] = None,
    ) -> Any:
        """:meth:`results` as a ``pandas.DataFrame``, one row per result row."""
        import pandas as pd

        return pd.DataFrame.from_records(
            self.results(limit=limit, include=include, flagged=flagged, min_score=min_score)
        )


class _ProgressBar:
    """tqdm when installed, else a one-line bar on stderr."""

    def __init__(self, description: str) -> None:
        self._description = description
        self._shown = 0.0
        try:
            from tqdm.auto import tqdm
        except ImportError:
            self._tqdm = None
        else:
            self._tqdm = tqdm(total=100, desc=description, unit="%", leave=True)

    def update(self, fraction: float, status: str) -> None:
        percent = max(0.0, min(100.0, fraction * 100.0))
        if self._tqdm is not None:
            self._tqdm.set_postfix_str(status, refresh=False)
            self._tqdm.update(percent - self._shown)
        else:
            filled = int(percent // 5)
            sys.stderr.write(
                f"\r{self._description}: [{'#' * filled}{'.' * (20 - filled)}] {percent:5.1f}% {status:<9}"
            )
            sys.stderr.flush()
        self._shown = percent

    def close(self) -> None:
        if self._tqdm is not None:
            self._tqdm.close()
        else:
            sys.stderr.write("\n")
            sys.stderr.flush()
