//! `floodwatch.AutoEncoder`: the table model of `floodwatch train` behind
//! PyOD's detector contract (`fit`, `decision_function`, `predict`,
//! `predict_proba`, `threshold_`, `decision_scores_`, `labels_`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use floodwatch::features::scale::ScalerParams;
use floodwatch::features::tabular::IdentifierRule;
use floodwatch::model::bundle::Bundle;
use floodwatch::model::threshold::ThresholdRule;
use floodwatch::run::batch::{self, Input, TrainOptions, NEIGHBOUR_ROWS};
use floodwatch::Matrix;
use numpy::{IntoPyArray, PyArray1, PyArray2, PyArrayMethods};
use pyo3::exceptions::PyAttributeError;
use pyo3::prelude::*;

use crate::error::{to_py, Error};
use crate::table::{with_table, FrameTable, Table};

/// Rows encoded, scaled and scored together by one thread.
const BLOCK_ROWS: usize = 16_384;
/// The name errors give a table passed from Python.
pub(crate) const SOURCE: &str = "X";

/// An autoencoder detector of table rows, trained on normal rows only
/// (higher scores = more anomalous); the model `floodwatch train` writes.
#[pyclass(module = "floodwatch")]
pub(crate) struct AutoEncoder {
    params: Params,
    fitted: Option<Fitted>,
}

/// `train`'s options, as the estimators take them.
#[derive(Clone, Debug)]
pub(crate) struct Params {
    pub(crate) epochs: Option<usize>,
    pub(crate) networks: Option<usize>,
    pub(crate) neighbours: usize,
    pub(crate) batch_size: usize,
    pub(crate) learning_rate: f32,
    pub(crate) rows: usize,
    pub(crate) attack_rows: usize,
    pub(crate) seed: u64,
    pub(crate) contamination: Option<f64>,
    pub(crate) threshold: String,
    pub(crate) scaling: String,
    pub(crate) normal_label: Option<Vec<String>>,
    pub(crate) label_column: Option<String>,
    pub(crate) drop: Vec<String>,
    pub(crate) keep: Vec<String>,
    pub(crate) max_distinct_share: f64,
}

struct Fitted {
    bundle: Arc<Bundle>,
    /// Scores of the rows `fit` was given (none for a loaded model).
    train_scores: Option<Vec<f32>>,
    notes: Vec<String>,
}

#[pymethods]
impl AutoEncoder {
    #[new]
    #[pyo3(signature = (*, epochs=None, networks=None, neighbours=NEIGHBOUR_ROWS, batch_size=256, learning_rate=1e-3, rows=8000,
        attack_rows=8000, seed=42, contamination=None, threshold="fpr:0.01".to_string(),
        scaling="log-minmax".to_string(), normal_label=None, label_column=None,
        drop=Vec::new(), keep=Vec::new(), max_distinct_share=0.5))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        epochs: Option<usize>,
        networks: Option<usize>,
        neighbours: usize,
        batch_size: usize,
        learning_rate: f32,
        rows: usize,
        attack_rows: usize,
        seed: u64,
        contamination: Option<f64>,
        threshold: String,
        scaling: String,
        normal_label: Option<Vec<String>>,
        label_column: Option<String>,
        drop: Vec<String>,
        keep: Vec<String>,
        max_distinct_share: f64,
    ) -> Self {
        AutoEncoder {
            params: Params {
                epochs,
                networks,
                neighbours,
                batch_size,
                learning_rate,
                rows,
                attack_rows,
                seed,
                contamination,
                threshold,
                scaling,
                normal_label,
                label_column,
                drop,
                keep,
                max_distinct_share,
            },
            fitted: None,
        }
    }

    /// Trains on the rows of `X` (a 2-D array or a DataFrame) as `train`
    /// does on a file: the normal rows (all rows without labels; with `y`,
    /// or a `label` column in a DataFrame, those whose label is normal)
    /// train the autoencoder and calibrate the threshold, the others the
    /// latent classifier. Returns self.
    #[pyo3(signature = (X, y=None))]
    #[allow(non_snake_case)]
    fn fit<'py>(
        mut slf: PyRefMut<'py, Self>,
        X: &Bound<'py, PyAny>,
        y: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<PyRefMut<'py, Self>> {
        let py = X.py();
        let labels = y.map(labels).transpose()?;
        let table = Arc::new(with_table(X, |t| Ok(t.into_owned()))?);
        let opts = slf.params.options(Arc::clone(&table), labels)?;
        let trained = py
            .detach(|| batch::train(&opts, &mut |_| {}))
            .map_err(to_py)?;
        let bundle = Arc::new(trained.bundle);
        let train_scores = detached_scores(py, &bundle, &table)?;
        slf.fitted = Some(Fitted {
            bundle,
            train_scores: Some(train_scores),
            notes: trained.notes,
        });
        Ok(slf)
    }

    /// Anomaly scores of the rows of `X` (reconstruction errors: higher =
    /// more anomalous), float64 holding the model's exact float32 scores.
    #[allow(non_snake_case)]
    fn decision_function<'py>(&self, X: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let bundle = self.bundle()?;
        let s = with_table(X, |t| detached_scores(X.py(), bundle, &t))?;
        Ok(widen(s).into_pyarray(X.py()))
    }

    /// 1 for rows above the calibrated threshold (`threshold_`), else 0.
    #[allow(non_snake_case)]
    fn predict<'py>(&self, X: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyArray1<i64>>> {
        let bundle = self.bundle()?;
        let s = with_table(X, |t| detached_scores(X.py(), bundle, &t))?;
        Ok(flags(&s, bundle.threshold).into_pyarray(X.py()))
    }

    /// Outlier probability by PyOD's `linear` method: the score min-max
    /// scaled over the training scores, clipped to [0, 1]; columns
    /// (inlier, outlier).
    #[allow(non_snake_case)]
    fn predict_proba<'py>(&self, X: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyArray2<f64>>> {
        let fitted = self.fitted()?;
        let train = fitted.train_scores.as_deref().ok_or_else(|| {
            Error::new_err("predict_proba needs the training scores: fit the model in Python")
        })?;
        let s = with_table(X, |t| detached_scores(X.py(), &fitted.bundle, &t))?;
        linear_proba(X.py(), train, &s)
    }

    /// The rows of `X` encoded and scaled as the autoencoder sees them
    /// (the "raw" side of the t-SNE pictures), float32.
    #[allow(non_snake_case)]
    fn features<'py>(&self, X: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let bundle = self.bundle()?;
        let x = with_table(X, |t| {
            X.py()
                .detach(|| map_blocks(bundle, &t, |x| x))
                .map_err(Error::new_err)
        })?;
        matrix(X.py(), stack(x, bundle.schema.width()))
    }

    /// The autoencoder's latent codes of the rows of `X`, float32.
    #[allow(non_snake_case)]
    fn transform<'py>(&self, X: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let bundle = self.bundle()?;
        let ae = &bundle.autoencoder;
        let z = with_table(X, |t| {
            X.py()
                .detach(|| map_blocks(bundle, &t, |x| ae.encode_batch(&x)))
                .map_err(Error::new_err)
        })?;
        matrix(X.py(), stack(z, ae.latent_dim()))
    }

    /// The latent classifier's class of each row of `X` (its one rule:
    /// an attack class when one is more probable than the normal class).
    #[allow(non_snake_case)]
    fn predict_class(&self, X: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
        let bundle = self.bundle()?;
        let c = bundle.classifier.as_ref().ok_or_else(|| {
            Error::new_err("this model has no latent classifier: fit it with attack rows labelled")
        })?;
        let z = with_table(X, |t| {
            X.py()
                .detach(|| map_blocks(bundle, &t, |x| bundle.autoencoder.encode_batch(&x)))
                .map_err(Error::new_err)
        })?;
        let mut prob = vec![0.0; c.model.n_classes()];
        let mut out = Vec::new();
        for zr in z.iter().flat_map(Matrix::iter_rows) {
            c.model.predict_proba(zr, &mut prob);
            out.push(c.class_names[c.decide(&prob).1].clone());
        }
        Ok(out)
    }

    /// Writes the model file `floodwatch test` and `watch --stdin` read.
    fn save(&self, path: PathBuf) -> PyResult<()> {
        self.bundle()?.save(&path).map_err(to_py)
    }

    /// The calibrated threshold: scores above it are anomalies.
    #[getter]
    fn threshold_(&self) -> PyResult<f64> {
        Ok(self.fitted_attr()?.bundle.threshold as f64)
    }

    /// Scores of the rows `fit` was given.
    #[getter]
    fn decision_scores_<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray1<f64>>> {
        Ok(widen(self.train_scores()?.to_vec()).into_pyarray(py))
    }

    /// 1 for the rows `fit` was given that score above the threshold.
    #[getter]
    fn labels_<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray1<i64>>> {
        let t = self.fitted_attr()?.bundle.threshold;
        Ok(flags(self.train_scores()?, t).into_pyarray(py))
    }

    /// The latent classifier's classes (the normal class first), or None.
    #[getter]
    fn classes_(&self) -> PyResult<Option<Vec<String>>> {
        let b = &self.fitted_attr()?.bundle;
        Ok(b.classifier.as_ref().map(|c| c.class_names.clone()))
    }

    /// The input columns the model reads, in order.
    #[getter]
    fn feature_names_in_(&self) -> PyResult<Vec<String>> {
        let cols = &self.fitted_attr()?.bundle.schema.columns;
        Ok(cols.iter().map(|c| c.name.clone()).collect())
    }

    /// What `train` would have printed as notes (labels read, identifier
    /// columns left out).
    #[getter]
    fn notes_(&self) -> PyResult<Vec<String>> {
        Ok(self.fitted_attr()?.notes.clone())
    }

    /// The training loss of each epoch.
    #[getter]
    fn history_(&self) -> PyResult<Vec<f32>> {
        Ok(self.fitted_attr()?.bundle.meta.history.loss.clone())
    }

    /// The hyperparameters, as scikit-learn's `get_params`.
    #[pyo3(signature = (deep=true))]
    fn get_params<'py>(
        &self,
        py: Python<'py>,
        deep: bool,
    ) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
        let _ = deep;
        let p = &self.params;
        let d = pyo3::types::PyDict::new(py);
        d.set_item("epochs", p.epochs)?;
        d.set_item("networks", p.networks)?;
        d.set_item("neighbours", p.neighbours)?;
        d.set_item("batch_size", p.batch_size)?;
        d.set_item("learning_rate", p.learning_rate)?;
        d.set_item("rows", p.rows)?;
        d.set_item("attack_rows", p.attack_rows)?;
        d.set_item("seed", p.seed)?;
        d.set_item("contamination", p.contamination)?;
        d.set_item("threshold", &p.threshold)?;
        d.set_item("scaling", &p.scaling)?;
        d.set_item("normal_label", p.normal_label.clone())?;
        d.set_item("label_column", p.label_column.clone())?;
        d.set_item("drop", p.drop.clone())?;
        d.set_item("keep", p.keep.clone())?;
        d.set_item("max_distinct_share", p.max_distinct_share)?;
        Ok(d)
    }

    fn __repr__(&self) -> String {
        let p = &self.params;
        let state = match &self.fitted {
            Some(f) => format!(
                "fitted: {} features, threshold {}",
                f.bundle.schema.width(),
                f.bundle.threshold
            ),
            None => "not fitted".into(),
        };
        format!(
            "AutoEncoder(epochs={:?}, networks={:?}, seed={}, threshold={:?}) [{state}]",
            p.epochs,
            p.networks,
            p.seed,
            p.rule_text()
        )
    }
}

impl AutoEncoder {
    /// A fitted estimator around a loaded model.
    pub(crate) fn loaded(bundle: Bundle) -> Self {
        let m = &bundle.meta;
        let params = Params {
            epochs: Some(m.epochs),
            networks: Some(bundle.autoencoder.networks()),
            neighbours: bundle
                .autoencoder
                .neighbours()
                .map_or(0, |n| n.references()),
            batch_size: m.batch_size,
            learning_rate: m.learning_rate,
            rows: m.train_rows + m.holdout_rows,
            attack_rows: m.classifier_attack_rows,
            seed: m.seed,
            contamination: None,
            threshold: bundle.threshold_rule.to_string(),
            scaling: scaling_name(bundle.scaler.params()).into(),
            normal_label: Some(bundle.normal_labels.clone()),
            label_column: Some(bundle.label_column.clone()),
            drop: m.dropped.clone(),
            keep: Vec::new(),
            max_distinct_share: IdentifierRule::default().max_distinct_share,
        };
        AutoEncoder {
            params,
            fitted: Some(Fitted {
                bundle: Arc::new(bundle),
                train_scores: None,
                notes: Vec::new(),
            }),
        }
    }

    /// The fitted model, shared (with a stream).
    pub(crate) fn shared(&self) -> PyResult<Arc<Bundle>> {
        Ok(self.fitted()?.bundle.clone())
    }

    fn fitted(&self) -> PyResult<&Fitted> {
        self.fitted.as_ref().ok_or_else(|| {
            Error::new_err(
                "this AutoEncoder is not fitted yet: call fit(X) or floodwatch.load(path)",
            )
        })
    }

    /// As [`fitted`](Self::fitted), with AttributeError (so that `hasattr`
    /// and scikit-learn's `check_is_fitted` see an unfitted model).
    fn fitted_attr(&self) -> PyResult<&Fitted> {
        self.fitted
            .as_ref()
            .ok_or_else(|| PyAttributeError::new_err("not fitted: call fit(X) first"))
    }

    fn bundle(&self) -> PyResult<&Bundle> {
        Ok(&self.fitted()?.bundle)
    }

    fn train_scores(&self) -> PyResult<&[f32]> {
        self.fitted_attr()?.train_scores.as_deref().ok_or_else(|| {
            PyAttributeError::new_err("a loaded model has no training scores: fit it in Python")
        })
    }
}

impl Default for Params {
    /// `train`'s defaults.
    fn default() -> Self {
        Params {
            epochs: None,
            networks: None,
            neighbours: NEIGHBOUR_ROWS,
            batch_size: 256,
            learning_rate: 1e-3,
            rows: 8000,
            attack_rows: 8000,
            seed: 42,
            contamination: None,
            threshold: "fpr:0.01".into(),
            scaling: "log-minmax".into(),
            normal_label: None,
            label_column: None,
            drop: Vec::new(),
            keep: Vec::new(),
            max_distinct_share: IdentifierRule::default().max_distinct_share,
        }
    }
}

impl Params {
    /// The threshold rule asked: `fpr:contamination`, or `threshold`.
    pub(crate) fn rule_text(&self) -> String {
        match self.contamination {
            Some(c) => format!("fpr:{c}"),
            None => self.threshold.clone(),
        }
    }

    /// The library's options for training on `table` (with `labels`).
    pub(crate) fn options(
        &self,
        table: Arc<Table<'static>>,
        labels: Option<Labels>,
    ) -> PyResult<TrainOptions> {
        let threshold: ThresholdRule = self.rule_text().parse().map_err(to_py)?;
        let scaling: ScalerParams = self.scaling.parse().map_err(to_py)?;
        let numeric_labels = labels.as_ref().is_some_and(|l| l.numeric);
        let normal_labels = self
            .normal_label
            .clone()
            .unwrap_or_else(|| vec![if numeric_labels { "0" } else { "normal" }.into()]);
        let label_name = self.label_column.clone().unwrap_or_else(|| "label".into());
        if labels.is_some()
            && table
                .names
                .iter()
                .any(|n| n.eq_ignore_ascii_case(&label_name))
        {
            return Err(Error::new_err(format!(
                "X has a column '{label_name}' and y was given: drop the column, or name y's \
                 column with label_column"
            )));
        }
        if let Some(l) = labels.as_ref().filter(|l| l.values.len() != table.rows) {
            return Err(Error::new_err(format!(
                "y has {} labels, but X has {} rows",
                l.values.len(),
                table.rows
            )));
        }
        let labelled = labels.is_some();
        let frame = FrameTable {
            path: PathBuf::from(SOURCE),
            table,
            labels: labels.map(|l| (label_name.clone(), Arc::new(l.values))),
        };
        Ok(TrainOptions {
            input: Input {
                generated: vec![Arc::new(frame)],
                ..Input::default()
            },
            label_column: labelled.then_some(label_name).or(self.label_column.clone()),
            normal_labels,
            drop: self.drop.clone(),
            identifiers: Some(IdentifierRule {
                max_distinct_share: self.max_distinct_share,
                keep: self.keep.clone(),
            }),
            rows: self.rows,
            attack_rows: self.attack_rows,
            epochs: self.epochs,
            networks: self.networks,
            neighbours: self.neighbours,
            batch_size: self.batch_size,
            learning_rate: self.learning_rate,
            seed: self.seed,
            scaling,
            threshold,
            ..TrainOptions::default()
        })
    }
}

/// Labels given as `y`, as text; `numeric` when they were numbers.
pub(crate) struct Labels {
    values: Vec<String>,
    numeric: bool,
}

/// `y` (a sequence of labels) as text: numbers as integers where they are
/// (PyOD's 0 = inlier, 1 = outlier), booleans as 0/1.
pub(crate) fn labels(y: &Bound<'_, PyAny>) -> PyResult<Labels> {
    let list = y.call_method0("tolist").or_else(|_| {
        pyo3::types::PyList::new(y.py(), y.try_iter()?.collect::<PyResult<Vec<_>>>()?)
            .map(|l| l.into_any())
    })?;
    let mut values = Vec::new();
    let mut numeric = true;
    for v in list.try_iter()? {
        let v = v?;
        let text = if let Ok(b) = v.extract::<bool>() {
            u8::from(b).to_string()
        } else if let Ok(x) = v.extract::<f64>() {
            let mut t = Vec::new();
            floodwatch::features::tabular::Cell::Number(x).write_text(&mut t);
            String::from_utf8_lossy(&t).into_owned()
        } else {
            numeric = false;
            v.str()?.to_string()
        };
        values.push(text);
    }
    Ok(Labels { values, numeric })
}

/// Scores of every row of `t`, on every core, the GIL released.
fn detached_scores(py: Python<'_>, bundle: &Bundle, t: &Table<'_>) -> PyResult<Vec<f32>> {
    py.detach(|| {
        map_blocks(bundle, t, |x| {
            let mut s = vec![0.0; x.rows()];
            bundle.autoencoder.score_batch(&x, &mut s);
            s
        })
    })
    .map(|blocks| blocks.concat())
    .map_err(Error::new_err)
}

/// Encodes and scales `t` in blocks of [`BLOCK_ROWS`] on every core and
/// maps each block with `f`; the results in row order. The first error
/// (in row order) names the row and column.
pub(crate) fn map_blocks<T: Send>(
    bundle: &Bundle,
    t: &Table<'_>,
    f: impl Fn(Matrix) -> T + Sync,
) -> Result<Vec<T>, String> {
    let enc = bundle
        .schema
        .bind(&header(bundle, t), Path::new(SOURCE))
        .map_err(|e| e.to_string())?;
    let d = enc.width();
    let blocks = t.rows.div_ceil(BLOCK_ROWS);
    let next = AtomicUsize::new(0);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut done: Vec<(usize, Result<T, String>)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads.min(blocks.max(1)))
            .map(|_| {
                let (mut enc, next, f) = (enc.clone(), &next, &f);
                s.spawn(move || {
                    let mut out = Vec::new();
                    loop {
                        let b = next.fetch_add(1, Ordering::Relaxed);
                        if b >= blocks {
                            return out;
                        }
                        let rows = b * BLOCK_ROWS..((b + 1) * BLOCK_ROWS).min(t.rows);
                        let mut x = vec![0.0f32; rows.len() * d];
                        let encoded = rows.clone().zip(x.chunks_exact_mut(d.max(1))).try_for_each(
                            |(r, row)| {
                                enc.encode_cells(|c| t.cell(r, c), row)
                                    .map_err(|m| format!("{SOURCE}, row {r}: {m}"))
                            },
                        );
                        let result = encoded.and_then(|()| {
                            let mut x = Matrix::from_vec(rows.len(), d, x)
                                .ok_or_else(|| "a block of unequal rows".to_string())?;
                            bundle.scaler.transform(&mut x);
                            Ok(f(x))
                        });
                        out.push((b, result));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_default())
            .collect()
    });
    done.sort_by_key(|(b, _)| *b);
    if done.len() != blocks {
        return Err("a scoring thread failed".into());
    }
    done.into_iter().map(|(_, r)| r).collect()
}

/// The column names of `t`: a numpy array as wide as the model's input
/// columns holds them in order (as scikit-learn estimators read arrays).
pub(crate) fn header(bundle: &Bundle, t: &Table<'_>) -> Vec<String> {
    let cols = &bundle.schema.columns;
    if t.is_array() && t.names.len() == cols.len() {
        cols.iter().map(|c| c.name.clone()).collect()
    } else {
        t.names.clone()
    }
}

/// PyOD's `linear` outlier probability: each score min-max scaled over the
/// training scores, clipped to [0, 1]; columns (inlier, outlier).
pub(crate) fn linear_proba<'py>(
    py: Python<'py>,
    train: &[f32],
    scores: &[f32],
) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let lo = train.iter().copied().fold(f32::INFINITY, f32::min) as f64;
    let hi = train.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let span = if hi > lo { hi - lo } else { 1.0 };
    let mut out = Vec::with_capacity(2 * scores.len());
    for &v in scores {
        let p = ((v as f64 - lo) / span).clamp(0.0, 1.0);
        out.extend([1.0 - p, p]);
    }
    out.into_pyarray(py).reshape([scores.len(), 2])
}

/// Blocks of rows as one row-major vector.
fn stack(blocks: Vec<Matrix>, width: usize) -> Matrix {
    let mut all = Matrix::with_cols(width);
    for b in &blocks {
        b.iter_rows().for_each(|r| all.push_row(r));
    }
    all
}

fn matrix(py: Python<'_>, x: Matrix) -> PyResult<Bound<'_, PyArray2<f32>>> {
    let (n, d) = (x.rows(), x.cols());
    x.into_vec().into_pyarray(py).reshape([n, d])
}

pub(crate) fn widen(s: Vec<f32>) -> Vec<f64> {
    s.into_iter().map(f64::from).collect()
}

pub(crate) fn flags(s: &[f32], threshold: f32) -> Vec<i64> {
    s.iter().map(|&v| i64::from(v > threshold)).collect()
}

/// The `scaling` name of scaler parameters (as `train --scaling` takes it).
fn scaling_name(p: ScalerParams) -> &'static str {
    match (p.log, p.clip) {
        (false, false) => "minmax",
        (false, true) => "minmax-clip",
        (true, false) => "log-minmax",
        (true, true) => "log-minmax-clip",
    }
}
