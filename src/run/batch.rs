//! Batch detection on CSV tables: [`train()`] a bundle from labelled files,
//! [`test()`] a bundle on new files.
//!
//! `train` reads the files once: it learns the [`Schema`], checks every row
//! and keeps deterministic reservoir samples of normal rows (default 8,000)
//! and attack rows (as many), so its memory is bounded by those sizes, not by
//! the files. The normal sample is shuffled and split: 80 % train the scaler
//! and the autoencoder, the other 20 % calibrate the threshold. When the
//! files hold attack rows, a softmax regression learns the labels from the
//! latent representation of the normal training rows and the attack sample.
//!
//! `test` streams the files in blocks of whole records, parsed and scored on
//! every core in batches of [`TestOptions::batch_rows`] rows: memory holds a
//! few blocks plus, for the metrics on labelled data, 16 bytes per row
//! (score, truth, classifier outputs); unlabelled data runs in constant
//! memory.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use csv::ByteRecord;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::features::capture_table::{CaptureFeatures, CaptureTable, ID_COLUMNS};
use crate::features::scale::ScalerParams;
use crate::features::tabular::{Encoder, Identifier, IdentifierRule, Schema, SchemaBuilder};
use crate::ingest::csv::{BadRow, CsvSource, GeneratedTable, Rejections, Row, TableInput};
use crate::ingest::parquet::table_input;
use crate::model::autoencoder::{Autoencoder, AutoencoderParams, EpochReport, TrainHistory};
use crate::model::bundle::{is_normal, Bundle, Classifier, TrainMeta};
use crate::model::logistic::LogisticParams;
use crate::model::neighbours;
use crate::model::threshold::ThresholdRule;
use crate::report::classification::ClassificationReport;
use crate::report::metrics::BinaryMetrics;
use crate::{Error, Matrix, Result};

mod score;
pub use score::test;

/// Most distinct labels tracked (more would be an identifier, not a label).
const MAX_LABELS: usize = 1000;

/// Where the input is and how to read it.
#[derive(Debug, Clone, Default)]
pub struct Input {
    /// The CSV files (Parquet files too, by their extension).
    pub data: Vec<PathBuf>,
    /// Column names for header-less files.
    pub columns: Option<Vec<String>>,
    /// Count malformed rows as rejected instead of failing.
    pub skip_bad_rows: bool,
    /// Captures read as tables of per-packet features, after the CSV files.
    pub captures: Vec<CaptureTable>,
    /// Tables the caller writes on the fly (in-memory data, such as a
    /// data frame from Python), after the captures.
    pub generated: Vec<std::sync::Arc<dyn GeneratedTable>>,
}

/// A capture as a table input, its features extracted as it is read.
fn generated(c: CaptureTable) -> TableInput {
    TableInput::Generated(std::sync::Arc::new(c))
}

impl Input {
    pub(crate) fn open(&self) -> Result<CsvSource> {
        let tables = self.generated.iter().cloned().map(TableInput::Generated);
        let mut inputs = self.files()?;
        inputs.extend(tables);
        CsvSource::open_inputs(&inputs, self.columns.as_deref())
    }

    /// The files (CSV or Parquet, by extension), then the captures.
    pub(crate) fn files(&self) -> Result<Vec<TableInput>> {
        let captures = self.captures.iter().cloned().map(generated);
        let files = self.data.iter().map(|p| table_input(p));
        files
            .collect::<Result<Vec<_>>>()
            .map(|f| f.into_iter().chain(captures).collect())
    }

    /// The first input file (named in errors about the header).
    pub fn first_path(&self) -> PathBuf {
        self.paths().next().map(Path::to_owned).unwrap_or_default()
    }

    /// Every input file, CSV files first.
    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        let captures = self.captures.iter().map(|c| c.path.as_path());
        let tables = self.generated.iter().map(|g| g.path());
        self.data
            .iter()
            .map(PathBuf::as_path)
            .chain(captures)
            .chain(tables)
    }

    /// Rejects `bad` (counted) with `--skip-bad-rows`, else fails with it.
    pub(crate) fn reject(&self, bad: BadRow, rejections: &mut Rejections) -> Result<()> {
        // A too-long line ends the file: it cannot be skipped.
        if self.skip_bad_rows && bad.reason != crate::ingest::csv::Reason::TooLong {
            rejections.add(&bad);
            Ok(())
        } else {
            Err(bad.error)
        }
    }
}

/// What [`train`] does.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// The training files.
    pub input: Input,
    /// The label column; `None`: a column named `label`, any case.
    pub label_column: Option<String>,
    /// Labels of normal rows. Default `["normal"]`.
    pub normal_labels: Vec<String>,
    /// Columns left out of the features.
    pub drop: Vec<String>,
    /// Which identifier-like columns are left out; `None` keeps them all.
    pub identifiers: Option<IdentifierRule>,
    /// Normal rows sampled (train + holdout). Default 8,000.
    pub rows: usize,
    /// Share of the sampled normal rows held back for the threshold. Default 0.2.
    pub holdout: f64,
    /// Share of the sampled normal rows set aside for testing, used neither
    /// to train nor to calibrate ([`Trained::test_x`]). Default 0.
    pub test_share: f64,
    /// Attack rows sampled for the classifier. Default 8,000.
    pub attack_rows: usize,
    /// Epochs; `None` (the default): chosen from the training rows ([`Plan`]).
    pub epochs: Option<usize>,
    /// Networks averaged; `None` (the default): chosen from the training
    /// rows ([`Plan`]).
    pub networks: Option<usize>,
    /// Normal training rows whose latent codes the score's neighbour
    /// distance is measured against (a seeded sample beyond); 0 scores by
    /// reconstruction error alone. Default [`NEIGHBOUR_ROWS`].
    pub neighbours: usize,
    /// Mini-batch size. Default 256.
    pub batch_size: usize,
    /// Adam learning rate. Default 1e-3.
    pub learning_rate: f32,
    /// Seed of sampling, initialisation and shuffling. Default 42.
    pub seed: u64,
    /// Feature scaling.
    pub scaling: ScalerParams,
    /// Threshold rule. Default `fpr:0.01`.
    pub threshold: ThresholdRule,
    /// How the captures among the inputs became feature rows.
    pub capture: Option<CaptureFeatures>,
}

impl TrainOptions {
    /// The columns left out: `--drop`, and a capture table's identifiers.
    pub fn dropped(&self) -> Vec<String> {
        let mut drop = self.drop.clone();
        if !self.input.captures.is_empty() {
            for id in ID_COLUMNS {
                if !drop.iter().any(|d| d == id) {
                    drop.push(id.into());
                }
            }
        }
        drop
    }
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            input: Input::default(),
            label_column: None,
            normal_labels: vec!["normal".into()],
            drop: Vec::new(),
            identifiers: Some(IdentifierRule::default()),
            rows: 8000,
            holdout: 0.2,
            test_share: 0.0,
            attack_rows: 8000,
            epochs: None,
            networks: None,
            neighbours: NEIGHBOUR_ROWS,
            batch_size: 256,
            learning_rate: 1e-3,
            seed: 42,
            scaling: ScalerParams::default(),
            threshold: ThresholdRule::default(),
            capture: None,
        }
    }
}

/// The result of [`train`].
#[derive(Debug)]
pub struct Trained {
    /// The model, ready to save.
    pub bundle: Bundle,
    /// Rows rejected with `--skip-bad-rows`.
    pub rejections: Rejections,
    /// The scaled normal rows the autoencoder trained on.
    pub train_x: Matrix,
    /// The scaled normal rows held back to calibrate the threshold.
    pub holdout_x: Matrix,
    /// The scaled normal rows set aside for testing (`test_share`).
    pub test_x: Matrix,
    /// Seconds the autoencoder took to fit.
    pub autoencoder_seconds: f64,
    /// Seconds the latent classifier took to fit (0 without one).
    pub classifier_seconds: f64,
    /// What the user should know about how the labels were read.
    pub notes: Vec<String>,
}

/// Finds the label column: `name` exactly, or else `label` in any case.
pub(crate) fn label_index(header: &[String], name: Option<&str>) -> Option<usize> {
    match name {
        Some(n) => header.iter().position(|h| h == n),
        None => header.iter().position(|h| h.eq_ignore_ascii_case("label")),
    }
}

/// A row kept by reservoir sampling.
struct Kept {
    file: PathBuf,
    line: u64,
    record: ByteRecord,
    label: String,
}

/// Algorithm R: keeps a uniform sample of at most `cap` of `seen` items.
fn reservoir(
    sample: &mut Vec<Kept>,
    cap: usize,
    seen: u64,
    rng: &mut ChaCha8Rng,
    row: &Row,
    label: &str,
) {
    let keep = |row: &Row| Kept {
        file: row.file.to_owned(),
        line: row.line,
        record: row.to_record(),
        label: label.to_owned(),
    };
    if sample.len() < cap {
        sample.push(keep(row));
    } else if cap > 0 {
        let j = rng.random_range(0..seen);
        if let Some(slot) = sample.get_mut(j as usize) {
            *slot = keep(row);
        }
    }
}

/// What one pass over the training files found.
struct Scan {
    header: Vec<String>,
    /// The label column's name (`label` when the files have none).
    label_name: String,
    /// Whether the files had a label column.
    labelled: bool,
    schema: Schema,
    /// Identifier-like columns left out.
    identifiers: Vec<Identifier>,
    normal: Vec<Kept>,
    attack: Vec<Kept>,
    rows_read: u64,
    normal_rows: u64,
    attack_rows: u64,
    labels: BTreeSet<String>,
    rejections: Rejections,
}

fn scan(opts: &TrainOptions) -> Result<Scan> {
    let mut src = opts.input.open()?;
    let header = src.header().to_vec();
    let first = opts.input.first_path();
    let label_col = label_index(&header, opts.label_column.as_deref());
    if let (None, Some(name)) = (label_col, &opts.label_column) {
        return Err(Error::Input {
            file: first.clone(),
            line: 1,
            msg: format!(
                "no label column '{name}' (columns: {}): name another with --label-column, \
                 or leave it out to train on every row as normal",
                header.join(", ")
            ),
        });
    }
    let drop = opts.dropped();
    let keep = opts.identifiers.iter().flat_map(|r| &r.keep);
    for (flag, d) in drop
        .iter()
        .map(|d| ("--drop", d))
        .chain(keep.map(|k| ("--keep", k)))
    {
        if !header.contains(d) {
            return Err(Error::Input {
                file: first.clone(),
                line: 1,
                msg: format!(
                    "{flag} column '{d}' is not in the header (columns: {})",
                    header.join(", ")
                ),
            });
        }
    }
    let features: Vec<usize> = (0..header.len())
        .filter(|&i| Some(i) != label_col && !drop.contains(&header[i]))
        .collect();
    if features.is_empty() {
        return Err(Error::Data(
            "no feature column left after --drop and the label".into(),
        ));
    }
    let mut builder = SchemaBuilder::new(&header, features);
    if let Some(rule) = &opts.identifiers {
        builder = builder.drop_identifiers(rule.clone());
    }
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let (mut normal, mut attack) = (Vec::new(), Vec::new());
    let (mut rows_read, mut normal_rows, mut attack_rows) = (0u64, 0u64, 0u64);
    let mut labels = BTreeSet::new();
    let mut rejections = Rejections::default();
    loop {
        let row = match src.next_row() {
            Ok(Some(row)) => row,
            Ok(None) => break,
            Err(bad) => {
                rows_read += 1;
                opts.input.reject(bad, &mut rejections)?;
                continue;
            }
        };
        rows_read += 1;
        if let Err(bad) = builder.observe(&row) {
            opts.input.reject(bad, &mut rejections)?;
            continue;
        }
        let label = match label_col {
            Some(c) => row.text(c),
            None => opts
                .normal_labels
                .first()
                .map_or("normal", String::as_str)
                .into(),
        };
        if labels.len() < MAX_LABELS {
            labels.insert(label.to_string());
        }
        if is_normal(&opts.normal_labels, &label) {
            normal_rows += 1;
            reservoir(&mut normal, opts.rows, normal_rows, &mut rng, &row, &label);
        } else {
            attack_rows += 1;
            reservoir(
                &mut attack,
                opts.attack_rows,
                attack_rows,
                &mut rng,
                &row,
                &label,
            );
        }
    }
    let (schema, identifiers) = builder.finish();
    Ok(Scan {
        label_name: label_col.map_or_else(|| "label".into(), |c| header[c].clone()),
        header,
        labelled: label_col.is_some(),
        schema,
        identifiers,
        normal,
        attack,
        rows_read,
        normal_rows,
        attack_rows,
        labels,
        rejections,
    })
}

/// Notes on the labels: none in the files (every row normal), or normal
/// labels written in another case than asked.
fn label_notes(s: &Scan, normal: &[String]) -> Vec<String> {
    if !s.labelled {
        return vec![format!(
            "no label column: every row is taken as normal ({} rows); name one with \
             --label-column to train the latent classifier",
            s.normal_rows
        )];
    }
    let variants: Vec<&str> = s
        .labels
        .iter()
        .filter(|l| is_normal(normal, l) && !normal.contains(l))
        .map(String::as_str)
        .collect();
    if variants.is_empty() {
        return Vec::new();
    }
    vec![format!(
        "labels {} count as normal: labels match --normal-label ({}) in any case",
        variants.join(", "),
        normal.join(", ")
    )]
}

/// Training rows the neighbour distance compares with by default
/// ([`TrainOptions::neighbours`]): README, "The default detector".
pub const NEIGHBOUR_ROWS: usize = 2048;

/// Training rows below which data counts as scarce ([`Plan`]).
const SCARCE_ROWS: usize = 1000;
/// Most networks a scarce training set gets.
const MAX_NETWORKS: usize = 5;

/// How long and how many networks the autoencoder trains, from the number
/// of training rows. Measured on NSL-KDD, CICIDS2017 and N-BaIoT (README,
/// "The default detector"): with 1,000 rows or more, one network of 30
/// epochs (10 left CICIDS2017 under-trained: 8 steps an epoch); below,
/// 10 epochs (more lets the network reconstruct N-BaIoT's in-range floods)
/// and `ceil(1000 / rows)` networks up to 5, whose mean score steadies
/// what few rows leave to chance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Epochs of each network.
    pub epochs: usize,
    /// Networks whose scores are averaged.
    pub networks: usize,
}

impl Plan {
    /// The plan for `rows` training rows; `epochs` and `networks` as asked
    /// where given.
    pub fn for_rows(rows: usize, epochs: Option<usize>, networks: Option<usize>) -> Plan {
        let scarce = rows < SCARCE_ROWS;
        Plan {
            epochs: epochs.unwrap_or(if scarce { 10 } else { 30 }),
            networks: networks.unwrap_or(if scarce {
                SCARCE_ROWS.div_ceil(rows.max(1)).min(MAX_NETWORKS)
            } else {
                1
            }),
        }
    }
}

/// The autoencoder of `plan` and the held-back scores its threshold comes
/// from. One network trains on `train` and has its errors weighed on
/// `hold`, which it then scores. Several are cross-fitted on the rows of
/// both ([`AutoencoderParams::fit_folds`]), each row scored by the network
/// that did not train on it; the ensemble's mean over networks varies less
/// than one network's score, so that threshold errs on the side of fewer
/// false alarms.
///
/// With `neighbours` > 0, the score adds the latent-neighbour distance to
/// at most that many training rows (a seeded sample), calibrated on the
/// held-back rows, or with cross-fitting on the sampled rows themselves,
/// each leaving itself out.
fn fit_autoencoder(
    params: &AutoencoderParams,
    plan: Plan,
    (train, hold): (&Matrix, &Matrix),
    (neighbours, seed): (usize, u64),
    on_epoch: &mut dyn FnMut(&EpochReport),
) -> Result<(Autoencoder, TrainHistory, Vec<f32>)> {
    if plan.networks > 1 {
        let all = normal_rows(train, hold);
        if all.rows() >= plan.networks {
            let (mut ae, history, scores) = params.fit_folds(&all, plan.networks, on_epoch)?;
            if neighbours == 0 || all.rows() <= neighbours::K {
                return Ok((ae, history, scores));
            }
            let keep = sample(all.rows(), neighbours, seed);
            let errors: Vec<f32> = keep.iter().map(|&i| scores[i]).collect();
            let refs = all.select_rows(&keep);
            let scores =
                ae.add_neighbours(&refs, None, &errors, neighbours::WEIGHT_CROSS_FITTED)?;
            return Ok((ae, history, scores));
        }
    }
    let (mut ae, history) = params.fit(train, Some(hold), on_epoch)?;
    ae.weigh_errors(hold);
    let mut scores = vec![0.0; hold.rows()];
    ae.score_batch(hold, &mut scores);
    if neighbours > 0 && train.rows() > neighbours::K {
        let refs = train.select_rows(&sample(train.rows(), neighbours, seed));
        scores = ae.add_neighbours(&refs, Some(hold), &scores, neighbours::WEIGHT)?;
    }
    Ok((ae, history, scores))
}

/// At most `n` of `rows` row indices, in order: all of them, or a sample
/// seeded by `seed`.
fn sample(rows: usize, n: usize, seed: u64) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..rows).collect();
    if rows > n {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6e65_6967);
        idx.partial_shuffle(&mut rng, n);
        idx.truncate(n);
        idx.sort_unstable();
    }
    idx
}

/// The training rows followed by the held-back ones.
fn normal_rows(train: &Matrix, hold: &Matrix) -> Matrix {
    let mut all = train.clone();
    hold.iter_rows().for_each(|r| all.push_row(r));
    all
}

/// Fewest mini-batches an epoch: on small training sets (N-BaIoT's 120
/// rows) a batch of 256 makes an epoch one step, and ten epochs ten steps.
const MIN_BATCHES: usize = 8;
/// Smallest mini-batch [`MIN_BATCHES`] shrinks to.
const MIN_BATCH: usize = 16;

/// The mini-batch size: `asked`, shrunk on small training sets so that an
/// epoch takes at least [`MIN_BATCHES`] steps.
fn batch_size(asked: usize, rows: usize) -> usize {
    asked.min((rows / MIN_BATCHES).max(MIN_BATCH))
}

/// The note naming the identifier-like columns left out, if any.
fn identifier_note(ids: &[Identifier]) -> Option<String> {
    (!ids.is_empty()).then(|| {
        let list: Vec<String> = ids.iter().map(ToString::to_string).collect();
        format!(
            "left out identifier-like columns: {}; keep one with --keep COLUMN",
            list.join(", ")
        )
    })
}

/// Encodes kept rows; rows that fail (a value beyond `f32`) are rejected.
fn encode_kept(
    kept: Vec<Kept>,
    enc: &mut Encoder,
    header: &[String],
    input: &Input,
    rejections: &mut Rejections,
) -> Result<(Matrix, Vec<String>)> {
    let mut x = Matrix::with_cols(enc.width());
    let mut labels = Vec::with_capacity(kept.len());
    let mut buf = vec![0.0; enc.width()];
    for k in kept {
        let row = Row::new(&k.file, k.line, &k.record, header);
        match enc.encode(&row, &mut buf) {
            Ok(()) => {
                x.push_row(&buf);
                labels.push(k.label);
            }
            Err(bad) => input.reject(bad, rejections)?,
        }
    }
    Ok((x, labels))
}

/// Trains a bundle; `on_epoch` hears of every autoencoder epoch.
pub fn train(opts: &TrainOptions, on_epoch: &mut dyn FnMut(&EpochReport)) -> Result<Trained> {
    if opts.rows < 2 {
        return Err(Error::Model(format!(
            "normal rows to sample should be at least 2, but is {}",
            opts.rows
        )));
    }
    if (1..=neighbours::K).contains(&opts.neighbours) {
        return Err(Error::Model(format!(
            "neighbours (training rows the latent distance compares with) should be 0 or more than {}, but is {}",
            neighbours::K,
            opts.neighbours
        )));
    }
    for (name, share) in [("holdout", opts.holdout), ("test share", opts.test_share)] {
        if !(0.0..1.0).contains(&share) {
            return Err(Error::Model(format!(
                "{name} should be in [0, 1), but is {share}"
            )));
        }
    }
    let files = opts
        .input
        .paths()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>();
    let mut s = scan(opts)?;
    if s.rows_read == 0 {
        return Err(Error::Data(format!("{}: no data rows", files.join(", "))));
    }
    if s.normal.len() < 2 {
        let seen: Vec<&str> = s.labels.iter().map(String::as_str).take(20).collect();
        return Err(Error::Data(format!(
            "{}: {} normal rows (label {}) in column '{}', need at least 2 to train; labels seen: {}",
            files.join(", "),
            s.normal.len(),
            opts.normal_labels.join(" or "),
            s.label_name,
            seen.join(", ")
        )));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed ^ 0x5eed);
    // Reservoir order depends on replacement history: shuffle before splitting.
    s.normal.shuffle(&mut rng);
    let first = opts.input.first_path();
    let mut enc = s.schema.bind(&s.header, &first)?;
    let (normal, _) = encode_kept(
        std::mem::take(&mut s.normal),
        &mut enc,
        &s.header,
        &opts.input,
        &mut s.rejections,
    )?;
    let n_test = (normal.rows() as f64 * opts.test_share).round() as usize;
    let n = normal.rows() - n_test;
    let n_hold = ((n as f64 * opts.holdout).round() as usize).clamp(1, n.saturating_sub(1).max(1));
    if n < 2 {
        return Err(Error::Data(
            "fewer than 2 normal rows left to train on".into(),
        ));
    }
    let rows = |r: std::ops::Range<usize>| normal.select_rows(&r.collect::<Vec<_>>());
    let mut test_x = rows(0..n_test);
    let mut hold_x = rows(n_test..n_test + n_hold);
    let mut train_x = rows(n_test + n_hold..normal.rows());
    drop(normal);
    let scaler = opts
        .scaling
        .fit(&normal_rows(&train_x, &hold_x), &s.schema.one_hot_mask())?;
    for x in [&mut train_x, &mut hold_x, &mut test_x] {
        scaler.transform(x);
    }
    let plan = Plan::for_rows(train_x.rows(), opts.epochs, opts.networks);
    let params = AutoencoderParams::new()
        .epochs(plan.epochs)
        .batch_size(batch_size(opts.batch_size, train_x.rows()))
        .learning_rate(opts.learning_rate)
        .seed(opts.seed);
    let started = std::time::Instant::now();
    let (autoencoder, history, hold_scores) = fit_autoencoder(
        &params,
        plan,
        (&train_x, &hold_x),
        (opts.neighbours, opts.seed),
        on_epoch,
    )?;
    let autoencoder_seconds = started.elapsed().as_secs_f64();
    let threshold = opts.threshold.calibrate(&hold_scores)?;
    let (attack_x, attack_labels) = encode_kept(
        std::mem::take(&mut s.attack),
        &mut enc,
        &s.header,
        &opts.input,
        &mut s.rejections,
    )?;
    let started = std::time::Instant::now();
    let classifier = if attack_x.rows() > 0 {
        let mut attack_x = attack_x;
        scaler.transform(&mut attack_x);
        Some(fit_classifier(
            opts,
            &autoencoder,
            &train_x,
            &attack_x,
            &attack_labels,
        )?)
    } else {
        None
    };
    let classifier_seconds = classifier
        .as_ref()
        .map_or(0.0, |_| started.elapsed().as_secs_f64());
    let meta = TrainMeta {
        floodwatch_version: env!("CARGO_PKG_VERSION").into(),
        created_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        data: files,
        rows_read: s.rows_read,
        rows_rejected: s.rejections.total(),
        normal_rows: s.normal_rows,
        attack_rows: s.attack_rows,
        train_rows: train_x.rows(),
        holdout_rows: hold_x.rows(),
        classifier_attack_rows: attack_labels.len(),
        epochs: plan.epochs,
        batch_size: batch_size(opts.batch_size, train_x.rows()),
        learning_rate: opts.learning_rate,
        seed: opts.seed,
        history,
        dropped: opts
            .dropped()
            .into_iter()
            .chain(s.identifiers.iter().map(|i| i.column.clone()))
            .collect(),
    };
    let mut notes = label_notes(&s, &opts.normal_labels);
    notes.extend(identifier_note(&s.identifiers));
    Ok(Trained {
        notes,
        bundle: Bundle {
            schema: s.schema,
            label_column: s.label_name.clone(),
            normal_labels: opts.normal_labels.clone(),
            scaler,
            autoencoder,
            threshold_rule: opts.threshold,
            threshold,
            classifier,
            meta,
            capture: opts.capture.clone(),
        },
        rejections: s.rejections,
        train_x,
        holdout_x: hold_x,
        test_x,
        autoencoder_seconds,
        classifier_seconds,
    })
}

/// Softmax regression on the latent of normal (class 0) and attack rows
/// (one class per label, sorted).
fn fit_classifier(
    opts: &TrainOptions,
    ae: &crate::model::Autoencoder,
    normal: &Matrix,
    attack: &Matrix,
    attack_labels: &[String],
) -> Result<Classifier> {
    let mut class_names = vec![opts
        .normal_labels
        .first()
        .cloned()
        .unwrap_or_else(|| "normal".into())];
    let distinct: BTreeSet<&String> = attack_labels.iter().collect();
    class_names.extend(distinct.into_iter().cloned());
    let index: HashMap<&str, usize> = class_names
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i))
        .collect();
    let mut x = ae.encode_batch(normal);
    let mut y = vec![0; normal.rows()];
    let z = ae.encode_batch(attack);
    for (row, label) in z.iter_rows().zip(attack_labels) {
        x.push_row(row);
        y.push(index.get(label.as_str()).copied().unwrap_or(0));
    }
    let model = LogisticParams::new()
        .seed(opts.seed)
        .fit(&x, &y, class_names.len())?;
    Ok(Classifier {
        model,
        class_names,
        normal_class: 0,
    })
}

/// What [`test()`] does.
#[derive(Debug, Clone)]
pub struct TestOptions {
    /// The files to score.
    pub input: Input,
    /// Where to write predictions (input columns + score, is_anomaly, ...).
    pub out: Option<PathBuf>,
    /// Rows scored together. Default 4,096.
    pub batch_rows: usize,
    /// With `out`: add a `top_features` column naming this many input
    /// columns with the largest share of each row's reconstruction error
    /// (0: none). Default 0.
    pub explain: usize,
}

impl Default for TestOptions {
    fn default() -> Self {
        TestOptions {
            input: Input::default(),
            out: None,
            batch_rows: 4096,
            explain: 0,
        }
    }
}

/// Metrics on labelled test data, with the stable keys of `report.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Rows scored.
    pub rows: u64,
    /// Rows rejected.
    pub rejected: u64,
    /// Rejections by reason.
    pub rejected_by_reason: std::collections::BTreeMap<&'static str, u64>,
    /// Rows above the threshold.
    pub anomalies: u64,
    /// The threshold used.
    pub threshold: f32,
    /// Unknown categorical values, by column.
    pub unknown_values: std::collections::BTreeMap<String, u64>,
    /// Missing values imputed, by column.
    pub missing_values: std::collections::BTreeMap<String, u64>,
    /// Reconstruction error vs the threshold (null without labels).
    pub reconstruction: Option<BinaryMetrics>,
    /// Latent classifier, attack = not the normal class (null without a
    /// classifier or labels).
    pub latent_classifier: Option<BinaryMetrics>,
    /// Per-class report of the latent classifier.
    pub classification_report: Option<ClassificationReport>,
}

/// Progress of [`test()`]: rows done, bytes read, total bytes.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Rows scored so far.
    pub rows: u64,
    /// Bytes read so far.
    pub bytes: u64,
    /// Bytes to read in all.
    pub total_bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// 300 rows: normal rows near (1, 2), attacks far away.
    fn table() -> String {
        let mut t = String::from("x,y,kind,Label\n");
        for i in 0..300 {
            let j = (i % 10) as f32 / 10.0;
            if i % 5 == 4 {
                t += &format!("{},{},b,attack\n", 50.0 + j, 90.0 - j);
            } else {
                t += &format!("{},{},a,normal\n", 1.0 + j, 2.0 + j);
            }
        }
        t
    }

    fn options(data: PathBuf) -> TrainOptions {
        TrainOptions {
            input: Input {
                data: vec![data],
                ..Input::default()
            },
            epochs: Some(30),
            batch_size: 32,
            learning_rate: 0.01,
            ..TrainOptions::default()
        }
    }

    #[test]
    fn label_column_lookup() {
        let h: Vec<String> = ["a", "LABEL", "c"].map(String::from).to_vec();
        assert_eq!(label_index(&h, None), Some(1));
        assert_eq!(label_index(&h, Some("c")), Some(2));
        assert_eq!(label_index(&h, Some("label")), None);
    }

    #[test]
    fn train_then_test_separates_attacks() {
        let d = tempfile::tempdir().unwrap();
        let data = write(d.path(), "t.csv", &table());
        let trained = train(&options(data.clone()), &mut |_| {}).unwrap();
        let b = &trained.bundle;
        assert_eq!(b.label_column, "Label");
        assert_eq!((b.meta.normal_rows, b.meta.attack_rows), (240, 60));
        assert_eq!((b.meta.train_rows, b.meta.holdout_rows), (192, 48));
        let c = b.classifier.as_ref().unwrap();
        assert_eq!(c.class_names, ["normal", "attack"]);
        let out = d.path().join("p.csv");
        let opts = TestOptions {
            input: Input {
                data: vec![data],
                ..Input::default()
            },
            out: Some(out.clone()),
            batch_rows: 7,
            ..TestOptions::default()
        };
        let mut last = None;
        let r = test(b, &opts, &mut |p| last = Some(p)).unwrap();
        let last = last.unwrap();
        assert_eq!((last.rows, last.bytes), (300, last.total_bytes));
        assert_eq!(r.rows, 300);
        let rec = r.reconstruction.unwrap();
        assert!(rec.roc_auc.unwrap() > 0.99, "{rec:?}");
        assert_eq!(rec.confusion.tp, 60);
        let lat = r.latent_classifier.unwrap();
        assert_eq!(lat.confusion.tp + lat.confusion.tn, 300, "{lat:?}");
        let text = std::fs::read_to_string(out).unwrap();
        assert_eq!(text.lines().count(), 301);
        assert!(text.lines().nth(5).unwrap().contains(",attack,"));
    }

    /// A table written on the fly: the text of a file, through a pipe.
    #[derive(Debug)]
    struct Piped(PathBuf, String);

    impl GeneratedTable for Piped {
        fn path(&self) -> &Path {
            &self.0
        }

        fn start(
            &self,
        ) -> Result<(
            std::io::PipeReader,
            std::thread::JoinHandle<Result<Vec<String>>>,
        )> {
            let (r, mut w) = std::io::pipe().map_err(|e| Error::io(&self.0, e))?;
            let text = self.1.clone();
            let path = self.0.clone();
            let h = std::thread::spawn(move || {
                use std::io::Write;
                w.write_all(text.as_bytes())
                    .map(|()| Vec::new())
                    .map_err(|e| Error::io(&path, e))
            });
            Ok((r, h))
        }
    }

    #[test]
    fn a_generated_table_trains_as_its_file_does() {
        let d = tempfile::tempdir().unwrap();
        let data = write(d.path(), "t.csv", &table());
        let from_file = train(&options(data), &mut |_| {}).unwrap().bundle;
        let piped = Piped(PathBuf::from("frame"), table());
        let opts = TrainOptions {
            input: Input {
                generated: vec![std::sync::Arc::new(piped)],
                ..Input::default()
            },
            ..options(PathBuf::new())
        };
        let generated = train(&opts, &mut |_| {}).unwrap().bundle;
        assert_eq!(generated.autoencoder, from_file.autoencoder);
        assert_eq!(generated.threshold.to_bits(), from_file.threshold.to_bits());
        assert_eq!(generated.meta.data, ["frame"]);
    }

    #[test]
    fn the_neighbour_references_are_bounded_and_set_the_threshold() {
        let d = tempfile::tempdir().unwrap();
        let data = write(d.path(), "t.csv", &table());
        let with = |neighbours, networks| TrainOptions {
            neighbours,
            networks,
            ..options(data.clone())
        };
        // 192 training rows: all of them, or a sample of 100.
        let all = train(&with(NEIGHBOUR_ROWS, Some(1)), &mut |_| {})
            .unwrap()
            .bundle;
        let summary = |ae: &Autoencoder| {
            (ae.neighbours()).map(|n| (n.references(), n.networks(), n.weight()))
        };
        assert_eq!(
            summary(&all.autoencoder),
            Some((192, 1, neighbours::WEIGHT))
        );
        let some = train(&with(100, Some(1)), &mut |_| {}).unwrap();
        assert_eq!(
            summary(&some.bundle.autoencoder),
            Some((100, 1, neighbours::WEIGHT))
        );
        let none = train(&with(0, Some(1)), &mut |_| {}).unwrap().bundle;
        assert_eq!(summary(&none.autoencoder), None);
        assert_ne!(some.bundle.threshold, none.threshold);
        // The threshold comes from the combined scores of the held-back rows.
        let b = &some.bundle;
        let mut hold = vec![0.0; some.holdout_x.rows()];
        b.autoencoder.score_batch(&some.holdout_x, &mut hold);
        assert_eq!(b.threshold, b.threshold_rule.calibrate(&hold).unwrap());
        // Cross-fitted networks: the sampled rows, each leaving itself out,
        // in every network's latent space, the distance weighing more.
        let folds = train(&with(NEIGHBOUR_ROWS, Some(3)), &mut |_| {})
            .unwrap()
            .bundle;
        let cross = Some((240, 3, neighbours::WEIGHT_CROSS_FITTED));
        assert_eq!(summary(&folds.autoencoder), cross);
        assert_eq!(sample(10, 20, 1), (0..10).collect::<Vec<_>>());
        let s = sample(1000, 20, 1);
        assert!(s.len() == 20 && s.windows(2).all(|w| w[0] < w[1]) && s[19] < 1000);
        assert_eq!(s, sample(1000, 20, 1));
        assert_ne!(s, sample(1000, 20, 2));
    }

    #[test]
    fn the_plan_follows_the_training_rows() {
        let plan = |rows| {
            let p = Plan::for_rows(rows, None, None);
            (p.epochs, p.networks)
        };
        assert_eq!(plan(120), (10, 5));
        assert_eq!(plan(400), (10, 3));
        assert_eq!(plan(999), (10, 2));
        assert_eq!(plan(1000), (30, 1));
        assert_eq!(plan(6400), (30, 1));
        let asked = Plan::for_rows(120, Some(7), Some(1));
        assert_eq!((asked.epochs, asked.networks), (7, 1));
    }

    #[test]
    fn sampling_is_bounded_and_deterministic() {
        let d = tempfile::tempdir().unwrap();
        let data = write(d.path(), "t.csv", &table());
        let opts = TrainOptions {
            rows: 50,
            attack_rows: 10,
            epochs: Some(1),
            ..options(data)
        };
        let a = train(&opts, &mut |_| {}).unwrap().bundle;
        let b = train(&opts, &mut |_| {}).unwrap().bundle;
        assert_eq!((a.meta.train_rows, a.meta.holdout_rows), (40, 10));
        assert_eq!(a.meta.classifier_attack_rows, 10);
        assert_eq!(a.autoencoder, b.autoencoder);
        assert_eq!(a.threshold.to_bits(), b.threshold.to_bits());
    }

    #[test]
    fn bad_options_and_data() {
        let d = tempfile::tempdir().unwrap();
        let data = write(d.path(), "t.csv", &table());
        let bad = TrainOptions {
            rows: 1,
            ..options(data.clone())
        };
        assert!(train(&bad, &mut |_| {}).is_err());
        let bad = TrainOptions {
            holdout: 1.0,
            ..options(data.clone())
        };
        assert!(train(&bad, &mut |_| {}).is_err());
        let bad = TrainOptions {
            neighbours: 5,
            ..options(data.clone())
        };
        let err = train(&bad, &mut |_| {}).unwrap_err().to_string();
        assert!(
            err.contains("should be 0 or more than 5, but is 5"),
            "{err}"
        );
        let bad = TrainOptions {
            drop: vec!["x".into(), "y".into(), "kind".into()],
            ..options(data)
        };
        let err = train(&bad, &mut |_| {}).unwrap_err().to_string();
        assert!(err.contains("no feature column"), "{err}");
    }
}
