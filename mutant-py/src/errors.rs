//! Errors into Python exceptions. Every `mutant_client::Error` becomes an
//! instance of a class of `mutant.errors` (all under `mutant.MutantError`):
//! this module names the error's kind and passes its stable code, its
//! message (which says what to do) and its fields; `mutant.errors.from_native`
//! picks the class, so the table of classes lives in one place, in Python.

use mutant_client::Error;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// The Python exception for `error`.
pub(crate) fn to_py_err(error: Error) -> PyErr {
    Python::attach(|py| match exception_for(py, &error) {
        Ok(exception) => exception,
        // Only when `mutant.errors` cannot be imported, which a broken
        // installation would show on `import mutant` already.
        Err(import_failure) => {
            let fallback = PyRuntimeError::new_err(error.to_string());
            fallback.set_cause(py, Some(import_failure));
            fallback
        }
    })
}

/// The error a validation of `mutant-core` gives, as the SDK reports it: an
/// invalid input with the server's code and message.
pub(crate) fn refused(error: &mutant_core::Error) -> Error {
    Error::InvalidInput {
        code: error.code().as_str().to_owned(),
        message: error.to_string(),
    }
}

fn exception_for(py: Python<'_>, error: &Error) -> PyResult<PyErr> {
    let details = PyDict::new(py);
    let kind = describe(error, &details)?;
    let exception = py.import("mutant.errors")?.getattr("from_native")?.call1((
        kind,
        error.code(),
        error.to_string(),
        details,
    ))?;
    Ok(PyErr::from_value(exception))
}

/// The kind of `error` (the name `mutant.errors.from_native` maps to a
/// class), with its fields written into `details`.
fn describe(error: &Error, details: &Bound<'_, PyDict>) -> PyResult<&'static str> {
    let kind = match error {
        Error::InvalidBaseUrl { url, .. } => {
            details.set_item("url", url)?;
            "invalid_base_url"
        }
        Error::InvalidToken => "invalid_token",
        Error::UnknownDataset { .. } => "unknown_dataset",
        Error::DatasetExists { .. } => "dataset_exists",
        Error::DatasetIncompatible {
            name,
            existing_dimension,
            existing_metric,
            wanted_dimension,
            wanted_metric,
        } => {
            details.set_item("name", name)?;
            details.set_item("existing_dimension", existing_dimension)?;
            details.set_item("existing_metric", existing_metric)?;
            details.set_item("wanted_dimension", wanted_dimension)?;
            details.set_item("wanted_metric", wanted_metric)?;
            "dataset_incompatible"
        }
        Error::InvalidInput { .. } => "invalid_input",
        Error::Unauthorized { .. } => "unauthorized",
        Error::PayloadTooLarge { .. } => "payload_too_large",
        Error::DatasetTooLarge { .. } => "dataset_too_large",
        Error::AnalysisTooLarge { .. } => "analysis_too_large",
        Error::Unavailable { attempts, .. } => {
            details.set_item("attempts", attempts)?;
            "unavailable"
        }
        Error::UnknownAnalysis { .. } => "unknown_analysis",
        Error::AnalysisNotFinished { .. } => "analysis_not_finished",
        Error::AnalysisFailed { id, kind, .. } => {
            details.set_item("analysis_id", id.to_string())?;
            details.set_item("kind", kind)?;
            "analysis_failed"
        }
        Error::AnalysisCancelled { id, kind } => {
            details.set_item("analysis_id", id.to_string())?;
            details.set_item("kind", kind)?;
            "analysis_cancelled"
        }
        Error::Protocol { status, .. } => {
            details.set_item("status", status)?;
            "protocol"
        }
        Error::Server { status, .. } => {
            details.set_item("status", status)?;
            "server"
        }
        Error::Transport { url, attempts, .. } => {
            details.set_item("url", url)?;
            details.set_item("attempts", attempts)?;
            "transport"
        }
        Error::Timeout {
            url,
            timeout_ms,
            attempts,
        } => {
            details.set_item("url", url)?;
            details.set_item("timeout_ms", timeout_ms)?;
            details.set_item("attempts", attempts)?;
            "timeout"
        }
        Error::Decode { .. } => "decode",
        Error::WriterStopped { .. } => "writer_stopped",
        // `NoRuntime` cannot happen here (the client owns its runtime), and
        // variants a newer SDK adds fall back on the base class.
        _ => "other",
    };
    Ok(kind)
}
