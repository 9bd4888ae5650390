//! floodwatch's errors as one Python exception, `floodwatch.Error` (a
//! `ValueError`), carrying the command line's message.

use pyo3::exceptions::PyValueError;
use pyo3::PyErr;

pyo3::create_exception!(
    floodwatch,
    Error,
    PyValueError,
    "An error of floodwatch: bad input, a bad model file, I/O; the message is the command line's."
);

/// `e` as a `floodwatch.Error` with the same message.
pub(crate) fn to_py(e: floodwatch::Error) -> PyErr {
    Error::new_err(e.to_string())
}
