//! `mutant._native`, the compiled half of Mutant's Python SDK: `mutant-client`
//! (the Rust SDK) behind a handful of Python classes, so Python speaks the
//! same binary protocol, retries the same way and streams through the same
//! `BatchWriter` as Rust. The Python package `mutant` (in `python/mutant`)
//! wraps these classes in the public API; nothing here is meant to be called
//! directly.
//!
//! - `client`: `NativeClient`, one `mutant_client::Client`
//!   and the Tokio runtime every call blocks on, with the GIL released.
//! - `writer`: `NativeWriter`, a `BatchWriter` fed
//!   from NumPy.
//! - `records`: NumPy matrices and Python columns into `Record`s, validated
//!   with the server's own rules before anything is sent.
//! - `answers`: kNN and record answers into NumPy arrays and lists.
//! - `json`: Python objects to and from JSON values.
//! - `errors`: `mutant_client::Error` into the exception classes of
//!   `mutant.errors`.
//! - `blocking`: running a future with the GIL released, interruptible by
//!   Ctrl-C.

// pyo3's and numpy's macros (`#[pymodule]`, `#[pyclass]`, `#[pymethods]`)
// expand to `unsafe` FFI calls into CPython and NumPy's C API, which the
// workspace's `unsafe_code = "deny"` would refuse. This crate writes no
// `unsafe` block of its own; the allowance is for the generated code only.
#![allow(unsafe_code)]

mod answers;
mod blocking;
mod client;
mod errors;
mod json;
mod records;
mod writer;

use pyo3::prelude::*;

/// The compiled core of the `mutant` package; use `mutant.Client` instead.
#[pymodule(name = "_native")]
fn native_module(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<client::NativeClient>()?;
    module.add_class::<writer::NativeWriter>()?;
    module.add("PROTOCOL_VERSION", mutant_client::PROTOCOL_VERSION)?;
    module.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
