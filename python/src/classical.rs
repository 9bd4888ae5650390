//! The library's other detectors (`floodwatch::model::DETECTORS`: Isolation
//! Forest, LOF, One-Class SVM, KitNET) behind PyOD's contract, fitted as
//! `floodwatch eval` fits them: on the rows `train` samples, encoded and
//! scaled by the schema and scaler it learns, with the threshold calibrated
//! by the same rule on the held-back normal rows. They have no model file:
//! `eval` fits them per run.

use std::sync::Arc;

use floodwatch::model::bundle::Bundle;
use floodwatch::model::detector::{Detector, Fit};
use floodwatch::model::threshold::ThresholdRule;
use floodwatch::model::DETECTORS;
use floodwatch::run::batch;
use numpy::{IntoPyArray, PyArray1, PyArray2};
use pyo3::exceptions::PyAttributeError;
use pyo3::prelude::*;

use crate::error::{to_py, Error};
use crate::estimator::{flags, labels, linear_proba, map_blocks, widen, Params};
use crate::table::{with_table, Table};

/// A detector of [`DETECTORS`] and what it was fitted to.
pub(crate) struct Classical {
    name: &'static str,
    fit: Fit,
    params: Params,
    fitted: Option<Fitted>,
}

struct Fitted {
    bundle: Arc<Bundle>,
    model: Box<dyn Detector>,
    threshold: f32,
    train_scores: Vec<f32>,
}

impl Classical {
    pub(crate) fn new(name: &'static str, params: Params) -> PyResult<Self> {
        let (_, fit) = DETECTORS
            .iter()
            .find(|(n, _)| *n == name)
            .ok_or_else(|| Error::new_err(format!("no detector named {name}")))?;
        Ok(Classical {
            name,
            fit: *fit,
            params,
            fitted: None,
        })
    }

    pub(crate) fn fit(
        &mut self,
        x: &Bound<'_, PyAny>,
        y: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let py = x.py();
        let labels = y.map(labels).transpose()?;
        let table = Arc::new(with_table(x, |t| Ok(t.into_owned()))?);
        let opts = self.params.options(Arc::clone(&table), labels)?;
        let rule: ThresholdRule = self.params.rule_text().parse().map_err(to_py)?;
        let (fit, seed) = (self.fit, self.params.seed);
        let (bundle, model, threshold) = py
            .detach(|| -> floodwatch::Result<_> {
                let trained = batch::train(&opts, &mut |_| {})?;
                let model = fit(&trained.train_x, seed)?;
                let threshold = rule.calibrate(&model.scores(&trained.holdout_x)?)?;
                Ok((trained.bundle, model, threshold))
            })
            .map_err(to_py)?;
        let bundle = Arc::new(bundle);
        let train_scores = scores(py, &bundle, model.as_ref(), &table)?;
        self.fitted = Some(Fitted {
            bundle,
            model,
            threshold,
            train_scores,
        });
        Ok(())
    }

    fn fitted(&self) -> PyResult<&Fitted> {
        self.fitted.as_ref().ok_or_else(|| {
            Error::new_err(format!("this {} is not fitted yet: call fit(X)", self.name))
        })
    }

    fn fitted_attr(&self) -> PyResult<&Fitted> {
        self.fitted
            .as_ref()
            .ok_or_else(|| PyAttributeError::new_err("not fitted: call fit(X) first"))
    }

    pub(crate) fn scores(&self, x: &Bound<'_, PyAny>) -> PyResult<Vec<f32>> {
        let f = self.fitted()?;
        with_table(x, |t| scores(x.py(), &f.bundle, f.model.as_ref(), &t))
    }

    pub(crate) fn decision_function<'py>(
        &self,
        x: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        Ok(widen(self.scores(x)?).into_pyarray(x.py()))
    }

    pub(crate) fn predict<'py>(
        &self,
        x: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArray1<i64>>> {
        let t = self.fitted()?.threshold;
        Ok(flags(&self.scores(x)?, t).into_pyarray(x.py()))
    }

    pub(crate) fn predict_proba<'py>(
        &self,
        x: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArray2<f64>>> {
        let s = self.scores(x)?;
        linear_proba(x.py(), &self.fitted()?.train_scores, &s)
    }

    pub(crate) fn threshold(&self) -> PyResult<f64> {
        Ok(f64::from(self.fitted_attr()?.threshold))
    }

    pub(crate) fn decision_scores<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        Ok(widen(self.fitted_attr()?.train_scores.clone()).into_pyarray(py))
    }

    pub(crate) fn labels<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray1<i64>>> {
        let f = self.fitted_attr()?;
        Ok(flags(&f.train_scores, f.threshold).into_pyarray(py))
    }

    pub(crate) fn feature_names_in(&self) -> PyResult<Vec<String>> {
        let cols = &self.fitted_attr()?.bundle.schema.columns;
        Ok(cols.iter().map(|c| c.name.clone()).collect())
    }

    pub(crate) fn get_params<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
        let p = &self.params;
        let d = pyo3::types::PyDict::new(py);
        d.set_item("rows", p.rows)?;
        d.set_item("seed", p.seed)?;
        d.set_item("contamination", p.contamination)?;
        d.set_item("threshold", &p.threshold)?;
        d.set_item("scaling", &p.scaling)?;
        Ok(d)
    }
}

/// Scores of every row of `t`: encoded and scaled on every core, scored by
/// `model`, the GIL released.
fn scores(
    py: Python<'_>,
    bundle: &Bundle,
    model: &dyn Detector,
    t: &Table<'_>,
) -> PyResult<Vec<f32>> {
    let blocks = py
        .detach(|| map_blocks(bundle, t, |x| model.scores(&x)))
        .map_err(Error::new_err)?;
    let mut out = Vec::with_capacity(t.rows);
    for b in blocks {
        out.extend(b.map_err(to_py)?);
    }
    Ok(out)
}

/// A pyclass over [`Classical`] for detector `$name` of [`DETECTORS`].
macro_rules! detector_class {
    ($class:ident, $py:literal, $name:literal, $doc:literal) => {
        #[doc = $doc]
        #[pyclass(module = "floodwatch", name = $py)]
        pub(crate) struct $class(Classical);

        #[pymethods]
        impl $class {
            #[new]
            #[pyo3(signature = (*, rows=8000, seed=42, contamination=None,
                        threshold="fpr:0.01".to_string(), scaling="log-minmax".to_string(),
                        normal_label=None, label_column=None, drop=Vec::new(), keep=Vec::new()))]
            #[allow(clippy::too_many_arguments)]
            fn new(
                rows: usize,
                seed: u64,
                contamination: Option<f64>,
                threshold: String,
                scaling: String,
                normal_label: Option<Vec<String>>,
                label_column: Option<String>,
                drop: Vec<String>,
                keep: Vec<String>,
            ) -> PyResult<Self> {
                let params = Params {
                    rows,
                    seed,
                    contamination,
                    threshold,
                    scaling,
                    normal_label,
                    label_column,
                    drop,
                    keep,
                    // Only the schema and scaler of `train` are used.
                    epochs: Some(1),
                    networks: Some(1),
                    neighbours: 0,
                    ..Params::default()
                };
                Classical::new($name, params).map($class)
            }

            /// Fits on the normal rows of `X` (see AutoEncoder.fit); returns self.
            #[pyo3(signature = (X, y=None))]
            #[allow(non_snake_case)]
            fn fit<'py>(
                mut slf: PyRefMut<'py, Self>,
                X: &Bound<'py, PyAny>,
                y: Option<&Bound<'py, PyAny>>,
            ) -> PyResult<PyRefMut<'py, Self>> {
                slf.0.fit(X, y)?;
                Ok(slf)
            }

            /// Anomaly scores of the rows of `X` (higher = more anomalous).
            #[allow(non_snake_case)]
            fn decision_function<'py>(
                &self,
                X: &Bound<'py, PyAny>,
            ) -> PyResult<Bound<'py, PyArray1<f64>>> {
                self.0.decision_function(X)
            }

            /// 1 for rows above `threshold_`, else 0.
            #[allow(non_snake_case)]
            fn predict<'py>(&self, X: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyArray1<i64>>> {
                self.0.predict(X)
            }

            /// PyOD's linear outlier probability; columns (inlier, outlier).
            #[allow(non_snake_case)]
            fn predict_proba<'py>(
                &self,
                X: &Bound<'py, PyAny>,
            ) -> PyResult<Bound<'py, PyArray2<f64>>> {
                self.0.predict_proba(X)
            }

            /// The threshold calibrated on held-back normal rows.
            #[getter]
            fn threshold_(&self) -> PyResult<f64> {
                self.0.threshold()
            }

            /// Scores of the rows `fit` was given.
            #[getter]
            fn decision_scores_<'py>(
                &self,
                py: Python<'py>,
            ) -> PyResult<Bound<'py, PyArray1<f64>>> {
                self.0.decision_scores(py)
            }

            /// 1 for the rows `fit` was given that score above the threshold.
            #[getter]
            fn labels_<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray1<i64>>> {
                self.0.labels(py)
            }

            /// The input columns the detector reads, in order.
            #[getter]
            fn feature_names_in_(&self) -> PyResult<Vec<String>> {
                self.0.feature_names_in()
            }

            /// The hyperparameters, as scikit-learn's `get_params`.
            #[pyo3(signature = (deep=true))]
            fn get_params<'py>(
                &self,
                py: Python<'py>,
                deep: bool,
            ) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
                let _ = deep;
                self.0.get_params(py)
            }
        }
    };
}

detector_class!(
    IForest,
    "IForest",
    "isolation_forest",
    "Isolation Forest (the library's, as `eval` fits it)."
);
detector_class!(
    Lof,
    "LOF",
    "lof",
    "Local Outlier Factor (the library's, as `eval` fits it)."
);
detector_class!(
    Ocsvm,
    "OCSVM",
    "ocsvm",
    "One-Class SVM (the library's, as `eval` fits it)."
);
detector_class!(
    KitNet,
    "KitNET",
    "kitnet",
    "KitNET, Kitsune's ensemble of autoencoders (as `eval` fits it)."
);
