//! [`test()`]: scoring a table on every core.
//!
//! One thread cuts the input into blocks of whole records; one worker per
//! core parses, encodes, scales and scores a block and formats its
//! predictions; the calling thread takes the results back in input order, so
//! the metrics, the predictions file and the first error are those of a
//! sequential read. A fixed pool of block buffers bounds memory whatever
//! the file length.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};

use csv::ByteRecord;

use super::{Input, Progress, Report, TestOptions, MAX_LABELS};
use crate::features::tabular::{Encoder, FieldMap, LinePlan};
use crate::ingest::csv::blocks::{BlockReader, BlockRows, PlainLine, RawBlock, Record};
use crate::ingest::csv::{field_text, BadRow, Rejections, Row};
use crate::model::bundle::{is_normal, Bundle};
use crate::model::dense::Workspace;
use crate::report::classification::{ClassTally, ClassificationReport};
use crate::report::explain::{format_top, Explainer};
use crate::report::metrics::ScoreHistogram;
use crate::util::AtomicFile;
use crate::{Error, Matrix, Result};

/// What the metrics need, in memory that does not grow with the rows:
/// score histograms of the reconstruction and of the latent classifier's
/// attack probability, and the classes' counts.
#[derive(Default)]
struct Truth {
    reconstruction: ScoreHistogram,
    latent: ScoreHistogram,
    classes: ClassTally,
}

/// One block read, or the error that ended reading, in input order.
struct Job {
    seq: u64,
    block: RawBlock,
    error: Option<Error>,
}

/// A block's results; the block goes back to the pool.
struct Done {
    seq: u64,
    block: RawBlock,
    scored: Result<Scored>,
}

/// What a worker learnt from one block.
#[derive(Default)]
struct Scored {
    rows: u64,
    anomalies: u64,
    bad: Vec<BadRow>,
    /// The block's distinct labels; `labels` indexes them.
    label_names: Vec<String>,
    labels: Vec<u32>,
    /// For labelled rows: score, flag, and the classifier's (class, attack
    /// probability) when there is one.
    scores: Vec<f32>,
    flagged: Vec<bool>,
    classes: Vec<(u32, f32)>,
    /// Formatted prediction lines.
    out: Vec<u8>,
}

/// What every worker shares.
struct Shared<'a> {
    bundle: &'a Bundle,
    header: &'a [String],
    files: &'a [PathBuf],
    label_col: Option<usize>,
    write: bool,
    explain: Option<(Explainer, usize)>,
    batch_rows: usize,
}

/// The rows of one batch waiting to be scored.
struct Pending {
    x: Vec<f32>,
    labels: Vec<Option<u32>>,
    records: Vec<ByteRecord>,
    /// The autoencoder's and the latent classifier's scratch buffers,
    /// kept from batch to batch.
    ws: Workspace,
    classifier_ws: Workspace,
}

/// One worker: its encoder (for its unknown-value counts) and buffers.
struct Worker<'a> {
    shared: &'a Shared<'a>,
    enc: Encoder,
    rows: BlockRows,
    pending: Pending,
}

impl<'a> Worker<'a> {
    fn new(shared: &'a Shared<'a>, enc: Encoder) -> Self {
        Worker {
            shared,
            enc,
            rows: BlockRows::default(),
            pending: Pending {
                x: Vec::new(),
                labels: Vec::new(),
                records: Vec::new(),
                ws: Workspace::default(),
                classifier_ws: Workspace::default(),
            },
        }
    }

    /// Takes jobs until the queue closes; returns the encoder.
    fn run(mut self, jobs: &Mutex<Receiver<Job>>, done: &Sender<Done>) -> Encoder {
        loop {
            let job = match jobs.lock() {
                Ok(rx) => rx.recv(),
                Err(_) => break,
            };
            let Ok(job) = job else { break };
            // A panic becomes this block's error: the collector waits for
            // every block in order, so a block must never go missing.
            let scored = match job.error {
                Some(e) => Err(e),
                None => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    self.block(&job.block)
                }))
                .unwrap_or_else(|_| Err(Error::Data("a scoring thread panicked".into()))),
            };
            let done_job = Done {
                seq: job.seq,
                block: job.block,
                scored,
            };
            if done.send(done_job).is_err() {
                break;
            }
        }
        self.enc
    }

    fn block(&mut self, block: &RawBlock) -> Result<Scored> {
        let sh = self.shared;
        let path = sh
            .files
            .get(block.file)
            .map_or(Path::new("-"), PathBuf::as_path);
        let mut s = Scored::default();
        let mut label_ids = BlockLabels::default();
        let mut writer = csv::Writer::from_writer(Vec::new());
        let Worker {
            enc, rows, pending, ..
        } = self;
        // Predictions copy each row's fields: only plain scoring reads
        // lines straight from the bytes.
        let plan = (!sh.write)
            .then(|| enc.line_plan(sh.header.len(), block.perm.as_deref(), sh.label_col));
        rows.for_each(block, path, sh.header, |record| {
            let row = match (record, &plan) {
                (Record::Plain(line), Some(plan)) => {
                    match push_plain(sh, enc, pending, plan, line, &mut s, &mut label_ids) {
                        Ok(()) => Ok(None),
                        Err(line) => line.into_row().map(Some),
                    }
                }
                (Record::Plain(line), None) => line.into_row().map(Some),
                (Record::Parsed(row), _) => row.map(Some),
            };
            let row = match row {
                Ok(row) => row,
                Err(bad) => {
                    s.bad.push(bad);
                    return Ok(());
                }
            };
            let pushed = match row {
                Some(row) => push_row(sh, enc, pending, &row, &mut s, &mut label_ids),
                None => Ok(()),
            };
            if let Err(bad) = pushed {
                s.bad.push(bad);
            } else if pending.labels.len() >= sh.batch_rows {
                score(sh, enc.width(), pending, &mut s, &mut writer)?;
            }
            Ok::<(), Error>(())
        })?;
        score(sh, enc.width(), pending, &mut s, &mut writer)?;
        s.out = writer
            .into_inner()
            .map_err(|e| Error::Data(e.error().to_string()))?;
        Ok(s)
    }
}

/// Encodes `row` into the pending batch.
fn push_row(
    sh: &Shared,
    enc: &mut Encoder,
    p: &mut Pending,
    row: &Row,
    s: &mut Scored,
    label_ids: &mut BlockLabels,
) -> std::result::Result<(), BadRow> {
    let d = enc.width();
    let i = p.labels.len();
    p.x.resize((i + 1) * d, 0.0);
    if let Err(bad) = enc.encode(row, &mut p.x[i * d..]) {
        p.x.truncate(i * d);
        return Err(bad);
    }
    let label = sh.label_col.map(|c| label_ids.of_bytes(row.get(c), s));
    p.labels.push(label);
    if sh.write {
        if p.records.len() <= i {
            p.records.push(ByteRecord::new());
        }
        row.copy_into(&mut p.records[i]);
    }
    Ok(())
}

/// Encodes a plain line into the pending batch straight from its bytes;
/// gives the line back when it needs the general path.
fn push_plain<'a>(
    sh: &Shared,
    enc: &mut Encoder,
    p: &mut Pending,
    plan: &LinePlan,
    line: PlainLine<'a>,
    s: &mut Scored,
    label_ids: &mut BlockLabels,
) -> std::result::Result<(), PlainLine<'a>> {
    let d = enc.width();
    let i = p.labels.len();
    p.x.resize((i + 1) * d, 0.0);
    let Some(label) = enc.encode_plain(plan, line.block(), line.span(), &mut p.x[i * d..]) else {
        p.x.truncate(i * d);
        return Err(line);
    };
    let label = sh.label_col.map(|_| label_ids.of_bytes(label, s));
    p.labels.push(label);
    Ok(())
}

/// Block-local label ids, the names going into [`Scored::label_names`].
#[derive(Default)]
struct BlockLabels {
    /// By text, looked up once per distinct field.
    ids: HashMap<String, u32>,
    /// Label fields read from bytes, as they were in the file.
    fields: FieldMap<u32>,
}

impl BlockLabels {
    /// The id of a label field, read as [`Row::text`] reads it: fields
    /// that differ only in spaces or invalid UTF-8 share their text's id.
    fn of_bytes(&mut self, field: &[u8], s: &mut Scored) -> u32 {
        if let Some(&id) = self.fields.get(field) {
            return id;
        }
        let text = field_text(field);
        let id = match self.ids.get(text.as_ref()) {
            Some(&id) => id,
            None => {
                let id = s.label_names.len() as u32;
                s.label_names.push(text.clone().into_owned());
                self.ids.insert(text.into_owned(), id);
                id
            }
        };
        self.fields.insert(field, id);
        id
    }
}

/// Scales and scores the pending batch, records its results, formats its
/// predictions.
fn score(
    sh: &Shared,
    d: usize,
    p: &mut Pending,
    s: &mut Scored,
    writer: &mut csv::Writer<Vec<u8>>,
) -> Result<()> {
    let n = p.labels.len();
    if n == 0 {
        return Ok(());
    }
    let bundle = sh.bundle;
    let mut x = Matrix::from_vec(n, d, std::mem::take(&mut p.x))
        .ok_or_else(|| Error::Data("batch size mismatch".into()))?;
    bundle.scaler.transform(&mut x);
    let mut scores = vec![0.0; n];
    let mut classes = Vec::new();
    match &bundle.classifier {
        Some(c) => {
            let cws = &mut p.classifier_ws;
            bundle.autoencoder.score_batch_latent(
                &x,
                &mut p.ws,
                &mut scores,
                |zt, stride, _, rows| {
                    let (pt, s) = c.model.predict_proba_t(zt, stride, rows, cws);
                    c.decide_t(pt, s, rows, &mut classes);
                },
            );
        }
        None => bundle
            .autoencoder
            .score_batch_with(&x, &mut p.ws, &mut scores),
    }
    let mut num = ryu::Buffer::new();
    for (i, &score) in scores.iter().enumerate() {
        let flagged = score > bundle.threshold;
        s.anomalies += u64::from(flagged);
        if let Some(label) = p.labels[i] {
            s.labels.push(label);
            s.scores.push(score);
            s.flagged.push(flagged);
            if let Some(&(k, _, attack_p)) = classes.get(i) {
                s.classes.push((k as u32, attack_p));
            }
        }
        if sh.write {
            let rec = &mut p.records[i];
            rec.push_field(num.format(score).as_bytes());
            rec.push_field(if flagged { b"1" } else { b"0" });
            if let (Some(c), Some(&(k, prob, _))) = (&bundle.classifier, classes.get(i)) {
                rec.push_field(c.class_names[k].as_bytes());
                rec.push_field(num.format(prob).as_bytes());
            }
            if let Some((e, k)) = &sh.explain {
                let top = e.explain(&bundle.autoencoder, x.row(i), *k);
                rec.push_field(format_top(&top).as_bytes());
            }
            writer
                .write_byte_record(rec)
                .map_err(|e| Error::Data(e.to_string()))?;
        }
    }
    s.rows += n as u64;
    p.x = x.into_vec();
    p.x.clear();
    p.labels.clear();
    Ok(())
}

/// Block buffers in circulation: enough to keep every worker busy while
/// the collector catches up.
fn pool_size(workers: usize) -> usize {
    2 * workers + 2
}

/// Reads blocks into pool buffers and queues them, in order; an error is
/// queued in its place and ends reading.
fn read_blocks(mut reader: BlockReader, pool: &Receiver<RawBlock>, jobs: &SyncSender<Job>) {
    let mut seq = 0;
    while let Ok(mut block) = pool.recv() {
        let (more, error) = match reader.next_block(&mut block) {
            Ok(more) => (more, None),
            Err(e) => (false, Some(e)),
        };
        if !more && error.is_none() {
            return;
        }
        let stop = error.is_some();
        if jobs.send(Job { seq, block, error }).is_err() || stop {
            return;
        }
        seq += 1;
    }
}

/// The in-order side: metrics, rejections, predictions, progress.
struct Collector<'a> {
    bundle: &'a Bundle,
    input: &'a Input,
    out: Option<AtomicFile>,
    truth: Truth,
    rejections: Rejections,
    rows: u64,
    anomalies: u64,
    class_names: Vec<String>,
    label_ids: HashMap<String, u32>,
}

impl Collector<'_> {
    fn take(&mut self, s: Scored) -> Result<()> {
        for bad in s.bad {
            self.input.reject(bad, &mut self.rejections)?;
        }
        let ids: Vec<u32> = s
            .label_names
            .iter()
            .map(|name| {
                label_id(
                    name,
                    &mut self.label_ids,
                    &mut self.class_names,
                    self.bundle,
                )
            })
            .collect();
        let attack_label: Vec<bool> = (ids.iter())
            .map(|&id| !is_normal_label(self.bundle, &self.class_names, id))
            .collect();
        let attack: Vec<bool> = (s.labels.iter())
            .map(|&l| attack_label[l as usize])
            .collect();
        let t = &mut self.truth;
        let flagged = s.scores.iter().zip(&s.flagged);
        (t.reconstruction).add_rows(flagged.zip(&attack).map(|((&s, &f), &a)| (s, f, a)));
        if let Some(c) = &self.bundle.classifier {
            let latent = s.classes.iter().zip(&attack);
            (t.latent).add_rows(latent.map(|(&(k, p), &a)| (p, k as usize != c.normal_class, a)));
            for (&(k, _), &local) in s.classes.iter().zip(&s.labels) {
                t.classes.add(ids[local as usize] as usize, k as usize);
            }
        }
        if let Some(out) = self.out.as_mut() {
            out.write_all(&s.out)
                .map_err(|e| Error::io(out.path().to_owned(), e))?;
        }
        self.rows += s.rows;
        self.anomalies += s.anomalies;
        Ok(())
    }

    /// Takes results as they come and uses them in input order.
    fn run(
        &mut self,
        done: Receiver<Done>,
        pool: Sender<RawBlock>,
        total_bytes: u64,
        on_progress: &mut dyn FnMut(Progress),
    ) -> Result<()> {
        let mut waiting = BTreeMap::new();
        let mut next = 0;
        for d in done {
            waiting.insert(d.seq, d);
            while let Some(d) = waiting.remove(&next) {
                next += 1;
                let bytes = d.block.bytes_done;
                self.take(d.scored?)?;
                on_progress(Progress {
                    rows: self.rows,
                    bytes,
                    total_bytes,
                });
                // The reader may be done: then nobody needs the buffer.
                let _ = pool.send(d.block);
            }
        }
        Ok(())
    }
}

/// Scores the files with `bundle`, writing predictions if asked.
pub fn test(
    bundle: &Bundle,
    opts: &TestOptions,
    on_progress: &mut dyn FnMut(Progress),
) -> Result<Report> {
    let inputs = opts.input.files()?;
    let reader = BlockReader::open(&inputs, opts.input.columns.as_deref())?;
    let header = reader.header().to_vec();
    let files = reader.files().to_vec();
    let total_bytes = reader.total_bytes();
    let mut enc = bundle.schema.bind(&header, &opts.input.first_path())?;
    let class_names = bundle
        .classifier
        .as_ref()
        .map(|c| c.class_names.clone())
        .unwrap_or_default();
    let out = match &opts.out {
        Some(p) => Some(open_predictions(
            p,
            &header,
            bundle.classifier.is_some(),
            opts.explain > 0,
        )?),
        None => None,
    };
    let shared = Shared {
        bundle,
        header: &header,
        files: &files,
        label_col: super::label_index(&header, Some(&bundle.label_column)),
        write: out.is_some(),
        explain: (opts.explain > 0).then(|| (Explainer::new(&bundle.schema), opts.explain)),
        batch_rows: opts.batch_rows.max(1),
    };
    let mut collector = Collector {
        bundle,
        input: &opts.input,
        out,
        truth: Truth::default(),
        rejections: Rejections::default(),
        rows: 0,
        anomalies: 0,
        label_ids: class_names
            .iter()
            .enumerate()
            .map(|(i, c)| (c.clone(), i as u32))
            .collect(),
        class_names,
    };
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let encoders = run_threads(reader, &shared, &enc, workers, |done, pool| {
        collector.run(done, pool, total_bytes, on_progress)
    })?;
    encoders.iter().for_each(|e| enc.merge_counts(e));
    finish(bundle, opts, collector, &enc, shared.label_col.is_some())
}

/// Runs the reader and `workers` workers around `collect`, which gets the
/// results and gives buffers back; returns the workers' encoders.
fn run_threads(
    reader: BlockReader,
    shared: &Shared,
    enc: &Encoder,
    workers: usize,
    collect: impl FnOnce(Receiver<Done>, Sender<RawBlock>) -> Result<()>,
) -> Result<Vec<Encoder>> {
    let (pool_tx, pool_rx) = mpsc::channel();
    for _ in 0..pool_size(workers) {
        // The receiver is alive here: sending cannot fail.
        let _ = pool_tx.send(RawBlock::default());
    }
    let (job_tx, job_rx) = mpsc::sync_channel(workers);
    let job_rx = Arc::new(Mutex::new(job_rx));
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::scope(|scope| {
        scope.spawn(move || read_blocks(reader, &pool_rx, &job_tx));
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                let (jobs, done) = (Arc::clone(&job_rx), done_tx.clone());
                let worker = Worker::new(shared, enc.clone());
                scope.spawn(move || worker.run(&jobs, &done))
            })
            .collect();
        // Only the workers hold the job queue and the results: once the
        // collector returns, the workers' next send fails, and once they
        // are gone the reader's does, whatever state each was in.
        drop((done_tx, job_rx));
        let collected = collect(done_rx, pool_tx);
        let encoders: Vec<Encoder> = handles.into_iter().filter_map(|h| h.join().ok()).collect();
        if encoders.len() < workers {
            return Err(Error::Data("a scoring thread panicked".into()));
        }
        collected.map(|()| encoders)
    })
}

/// Commits the predictions and builds the report.
fn finish(
    bundle: &Bundle,
    opts: &TestOptions,
    c: Collector,
    enc: &Encoder,
    labelled: bool,
) -> Result<Report> {
    if c.rows == 0 && c.rejections.total() == 0 {
        return Err(Error::Data(format!(
            "{}: no data rows to score",
            opts.input
                .data
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    if let Some(out) = c.out {
        out.commit()?;
    }
    Ok(report(
        bundle,
        &c.truth,
        &c.rejections,
        c.rows,
        c.anomalies,
        enc,
        labelled,
        &c.class_names,
    ))
}

/// The class id of a test label: a trained class, or a new name appended
/// (bounded by [`MAX_LABELS`]; beyond, all share the last id).
fn label_id(
    label: &str,
    ids: &mut HashMap<String, u32>,
    names: &mut Vec<String>,
    bundle: &Bundle,
) -> u32 {
    let key = if is_normal(&bundle.normal_labels, label) {
        bundle
            .classifier
            .as_ref()
            .map_or(label, |c| c.class_names[c.normal_class].as_str())
    } else {
        label
    };
    if let Some(&id) = ids.get(key) {
        return id;
    }
    if names.len() >= MAX_LABELS {
        return (names.len() - 1) as u32;
    }
    names.push(key.to_owned());
    let id = (names.len() - 1) as u32;
    ids.insert(key.to_owned(), id);
    id
}

fn is_normal_label(bundle: &Bundle, names: &[String], id: u32) -> bool {
    names.get(id as usize).is_some_and(|n| {
        is_normal(&bundle.normal_labels, n)
            || bundle
                .classifier
                .as_ref()
                .is_some_and(|c| c.class_names[c.normal_class] == *n)
    })
}

/// The predictions file, its header written.
fn open_predictions(
    path: &Path,
    header: &[String],
    classifier: bool,
    explain: bool,
) -> Result<AtomicFile> {
    let mut cols: Vec<&str> = header.iter().map(String::as_str).collect();
    cols.extend(["score", "is_anomaly"]);
    if classifier {
        cols.extend(["predicted", "probability"]);
    }
    if explain {
        cols.push("top_features");
    }
    let mut line = csv::Writer::from_writer(Vec::new());
    line.write_record(&cols)
        .map_err(|e| Error::io(path, e.into()))?;
    let line = line
        .into_inner()
        .map_err(|e| Error::io(path, e.into_error()))?;
    let mut file = AtomicFile::create(path)?;
    file.write_all(&line).map_err(|e| Error::io(path, e))?;
    Ok(file)
}

#[allow(clippy::too_many_arguments)]
fn report(
    bundle: &Bundle,
    truth: &Truth,
    rejections: &Rejections,
    rows: u64,
    anomalies: u64,
    enc: &Encoder,
    labelled: bool,
    class_names: &[String],
) -> Report {
    let reconstruction = labelled.then(|| truth.reconstruction.metrics());
    let classifier = bundle.classifier.as_ref().filter(|_| labelled);
    let latent_classifier = classifier.map(|_| truth.latent.metrics());
    let classification_report =
        classifier.map(|_| ClassificationReport::from_tally(class_names, &truth.classes));
    Report {
        rows,
        rejected: rejections.total(),
        rejected_by_reason: rejections.by_reason().clone(),
        anomalies,
        threshold: bundle.threshold,
        unknown_values: enc.unknown_counts().into_iter().collect(),
        missing_values: enc.missing_counts().into_iter().collect(),
        reconstruction,
        latent_classifier,
        classification_report,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::csv::TableInput;
    use crate::run::batch::{train, TrainOptions};
    use std::time::Duration;

    /// A bundle and a table of about 4 MB (four blocks) to score with it.
    fn setup(dir: &Path) -> (Bundle, PathBuf) {
        let mut t = String::from("x,y,Label\n");
        let mut i = 0;
        while t.len() < 4 * (1 << 20) + 1000 {
            t += &format!("{},{},normal\n", i % 10, i % 7);
            i += 1;
        }
        let data = dir.join("t.csv");
        std::fs::write(&data, t).unwrap();
        let opts = TrainOptions {
            input: Input {
                data: vec![data.clone()],
                ..Input::default()
            },
            rows: 200,
            epochs: Some(1),
            ..TrainOptions::default()
        };
        (train(&opts, &mut |_| {}).unwrap().bundle, data)
    }

    /// Runs the thread group with a collector that gives up after `take`
    /// results; fails if the group does not end within ten seconds.
    fn stop_after(take: usize, workers: usize) -> Result<Vec<Encoder>> {
        let d = tempfile::tempdir().unwrap();
        let (bundle, data) = setup(d.path());
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let reader = BlockReader::open(&[TableInput::Csv(data.clone())], None).unwrap();
            let header = reader.header().to_vec();
            let files = reader.files().to_vec();
            let enc = bundle.schema.bind(&header, &data).unwrap();
            let shared = Shared {
                bundle: &bundle,
                header: &header,
                files: &files,
                label_col: Some(2),
                write: true,
                explain: None,
                batch_rows: 64,
            };
            let got = run_threads(reader, &shared, &enc, workers, |done, _pool| {
                done.iter().take(take).for_each(drop);
                Err(Error::Data("the collector failed".into()))
            });
            let _ = tx.send(got);
        });
        rx.recv_timeout(Duration::from_secs(10))
            .expect("the reader or a worker outlived the collector")
    }

    #[test]
    fn a_failing_collector_releases_reader_and_workers() {
        for (take, workers) in [(0, 1), (1, 1), (2, 2)] {
            let err = stop_after(take, workers).err().unwrap().to_string();
            assert!(err.contains("the collector failed"), "{err}");
        }
    }
}
