//! floodwatch for Python: the library's detectors and packet features over
//! numpy arrays and pandas DataFrames, with no Python re-implementation.
//!
//! - `AutoEncoder` (`estimator.rs`): the table model of `floodwatch train`,
//!   behind PyOD's detector contract, saved to and loaded from the command
//!   line's model file;
//! - `extract` / `iter_extract` (`extract.rs`): per-packet features of a
//!   capture, straight into numpy arrays;
//! - `IForest`, `LOF`, `OCSVM`, `KitNET` (`classical.rs`): the library's
//!   other detectors, fitted as `floodwatch eval` fits them;
//! - `Stream` (`stream.rs`): `watch --model` fed from Python, rows or
//!   packets in, scores and alerts out;
//! - `roc_auc`, `tsne`: the library's metric and embedding.
//!
//! Long calls release the GIL; every error is a `floodwatch.Error` with the
//! command line's message.
#![deny(unsafe_code)]
#![deny(missing_docs, unreachable_pub)]

use std::path::PathBuf;

use floodwatch::model::bundle::Bundle;
use floodwatch::report::tsne::Tsne;
use floodwatch::Matrix;
use numpy::{
    IntoPyArray, PyArray2, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2,
    PyUntypedArrayMethods,
};
use pyo3::prelude::*;

mod classical;
mod error;
mod estimator;
mod extract;
mod stream;
mod table;

use error::{to_py, Error};

/// Reads a model file written by `floodwatch train`, `AutoEncoder.save` or
/// `floodwatch threshold --write`: a fitted AutoEncoder.
#[pyfunction]
fn load(py: Python<'_>, path: PathBuf) -> PyResult<estimator::AutoEncoder> {
    let bundle = py.detach(|| Bundle::load(&path)).map_err(to_py)?;
    Ok(estimator::AutoEncoder::loaded(bundle))
}

/// ROC-AUC of `scores` against `truth` (true = anomaly), as `floodwatch
/// test` reports it; None when `truth` holds one class only.
#[pyfunction]
fn roc_auc(
    scores: PyReadonlyArray1<'_, f32>,
    truth: PyReadonlyArray1<'_, bool>,
) -> PyResult<Option<f64>> {
    let (s, t) = (scores.as_array(), truth.as_array());
    if s.len() != t.len() {
        return Err(Error::new_err(format!(
            "scores ({}) and truth ({}) should be as long",
            s.len(),
            t.len()
        )));
    }
    let s: Vec<f32> = s.iter().copied().collect();
    let t: Vec<bool> = t.iter().copied().collect();
    Ok(floodwatch::report::metrics::roc_auc(&s, &t))
}

/// A 2-D t-SNE embedding of the rows of `x` (float32), as the `tsne`
/// pictures draw it: `(rows, points)`, the indices of the embedded rows
/// (a seeded sample beyond `max_points`) and one (x, y) point each.
#[pyfunction]
#[pyo3(signature = (x, *, perplexity=30.0, epochs=500, max_points=5000, seed=42))]
fn tsne<'py>(
    py: Python<'py>,
    x: PyReadonlyArray2<'py, f32>,
    perplexity: f32,
    epochs: usize,
    max_points: usize,
    seed: u64,
) -> PyResult<(Vec<usize>, Bound<'py, PyArray2<f32>>)> {
    let (n, d) = (x.shape()[0], x.shape()[1]);
    let m = Matrix::from_vec(n, d, x.as_array().iter().copied().collect())
        .ok_or_else(|| Error::new_err("x: rows of unequal width"))?;
    let params = Tsne::params()
        .perplexity(perplexity)
        .epochs(epochs)
        .max_points(max_points)
        .seed(seed);
    let e = py.detach(|| params.embed(&m)).map_err(to_py)?;
    let k = e.points.len();
    let flat: Vec<f32> = e.points.into_iter().flatten().collect();
    Ok((e.rows, flat.into_pyarray(py).reshape([k, 2])?))
}

/// The `floodwatch` module.
#[pymodule(name = "_native")]
fn native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("Error", m.py().get_type::<Error>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<estimator::AutoEncoder>()?;
    m.add_class::<classical::IForest>()?;
    m.add_class::<classical::Lof>()?;
    m.add_class::<classical::Ocsvm>()?;
    m.add_class::<classical::KitNet>()?;
    m.add_class::<extract::Extraction>()?;
    m.add_class::<stream::Stream>()?;
    m.add_function(wrap_pyfunction!(load, m)?)?;
    m.add_function(wrap_pyfunction!(extract::extract, m)?)?;
    m.add_function(wrap_pyfunction!(extract::iter_extract, m)?)?;
    m.add_function(wrap_pyfunction!(extract::feature_names, m)?)?;
    m.add_function(wrap_pyfunction!(roc_auc, m)?)?;
    m.add_function(wrap_pyfunction!(tsne, m)?)?;
    Ok(())
}
