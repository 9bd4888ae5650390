//! `test` with a stream model: each capture replayed through the engine as
//! `watch --model` scores it (no grace, cold feature tables, thresholds as
//! saved), every packet's verdict counted against its label.

use std::cell::RefCell;
use std::io;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::detect::episode::TrackerParams;
use crate::detect::sink::JsonLines;
use crate::detect::stream::scores::{CsvScores, ScoreSink};
use crate::detect::stream::source::PacketRecords;
use crate::detect::stream::{Calibrate, Engine, EngineParams, RecordInfo, SavedModel};
use crate::features::capture_table::LabelFile;
use crate::features::combined::PacketLayout;
use crate::features::stream_table::TableConfig;
use crate::ingest::packets::capture::PacketSource;
use crate::model::bundle::is_normal;
use crate::report::metrics::binary_metrics;
use crate::run::batch::Report;
use crate::util::AtomicFile;
use crate::{Error, Result};

/// A capture to score and its `packet_index,label` file, if any.
#[derive(Debug, Clone)]
pub struct LabelledCapture {
    /// The capture.
    pub path: PathBuf,
    /// Its labels.
    pub labels: Option<PathBuf>,
}

/// Scores every packet of `captures` with `model`; labels other than
/// `normal` (any case) are attacks. With `scores`, every record's scores are written
/// there as `watch --scores` writes them.
pub fn test_captures(
    model: &SavedModel,
    captures: &[LabelledCapture],
    normal: &[String],
    scores: Option<AtomicFile>,
) -> Result<Report> {
    let Some(layout) = &model.layout else {
        return Err(Error::Model(
            "this stream model reads table rows, not packets: score them with `watch --stdin`"
                .into(),
        ));
    };
    let layout: PacketLayout = layout.parse()?;
    let tally = Rc::new(RefCell::new(Tally {
        csv: scores.map(CsvScores::new),
        thresholds: model.sides.iter().map(|s| s.threshold).collect(),
        ..Tally::default()
    }));
    let mut rejected = 0;
    for c in captures {
        tally.borrow_mut().labels = c.labels.as_deref().map(LabelFile::open).transpose()?;
        let features = layout.extractor(TableConfig::default())?;
        let mut source = PacketRecords::new(PacketSource::open(&c.path)?, features);
        let params = EngineParams {
            tracker: TrackerParams::new(),
            top_features: 0,
            save_model: None,
            grace: None,
            calibrate: Calibrate::Budget(0.5),
            drift: None,
            layout: None,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let mut engine = Engine::new(params, model.clone().into_sides(), Arc::default(), stop)?
            .score_sink(Box::new(Shared(Rc::clone(&tally))));
        let run = engine.run(&mut source, &mut JsonLines::new(io::sink()));
        if let Some(e) = tally.borrow_mut().error.take() {
            return Err(e);
        }
        rejected += run?.rejected;
    }
    let mut tally = tally.take();
    if let Some(csv) = tally.csv.take() {
        csv.into_inner().commit()?;
    }
    Ok(tally.report(rejected, normal))
}

/// Every scored record's normalised score, verdict and label.
#[derive(Default)]
struct Tally {
    csv: Option<CsvScores<AtomicFile>>,
    thresholds: Vec<f64>,
    labels: Option<LabelFile>,
    error: Option<Error>,
    scores: Vec<f32>,
    predicted: Vec<bool>,
    labelled: Vec<String>,
}

impl Tally {
    fn report(self, rejected: u64, normal: &[String]) -> Report {
        let anomalies = self.predicted.iter().filter(|&&p| p).count() as u64;
        let labelled = self.labelled.len() == self.scores.len() && !self.scores.is_empty();
        let truth: Vec<bool> = self
            .labelled
            .iter()
            .map(|l| !is_normal(normal, l))
            .collect();
        Report {
            rows: self.scores.len() as u64,
            rejected,
            rejected_by_reason: Default::default(),
            anomalies,
            // Scores are each side's score over its threshold.
            threshold: 1.0,
            unknown_values: Default::default(),
            missing_values: Default::default(),
            reconstruction: labelled.then(|| binary_metrics(&self.scores, &self.predicted, &truth)),
            latent_classifier: None,
            classification_report: None,
        }
    }

    fn label(&mut self, index: u64) -> Result<()> {
        let Some(file) = &mut self.labels else {
            return Ok(());
        };
        if !file.label_at(index)? {
            return Err(Error::Input {
                file: file.path().to_owned(),
                line: 0,
                msg: format!("no label for packet {index}: give the capture's own labels file"),
            });
        }
        self.labelled.push(file.label().to_owned());
        Ok(())
    }
}

/// The tally, shared between the engine of each capture and the caller.
struct Shared(Rc<RefCell<Tally>>);

impl ScoreSink for Shared {
    fn start(&mut self, sides: usize) -> io::Result<()> {
        let t = &mut *self.0.borrow_mut();
        t.csv.as_mut().map_or(Ok(()), |c| c.start(sides))
    }

    fn record(&mut self, info: &RecordInfo, sides: Option<&[(f64, bool)]>) -> io::Result<()> {
        self.0.borrow_mut().record(info, sides)
    }

    fn finish(&mut self) -> io::Result<()> {
        let t = &mut *self.0.borrow_mut();
        t.csv.as_mut().map_or(Ok(()), ScoreSink::finish)
    }
}

impl Tally {
    fn record(&mut self, info: &RecordInfo, sides: Option<&[(f64, bool)]>) -> io::Result<()> {
        if let Some(c) = &mut self.csv {
            c.record(info, sides)?;
        }
        let Some(sides) = sides else {
            return Ok(());
        };
        if let Err(e) = self.label(info.index) {
            self.error = Some(e);
            return Err(io::Error::other("labels"));
        }
        // Each side's score over its threshold: above 1 is an anomaly.
        let score = sides
            .iter()
            .zip(&self.thresholds)
            .map(|(&(s, _), t)| s / t)
            .fold(f64::MIN, f64::max);
        self.scores.push(score as f32);
        self.predicted.push(sides.iter().any(|&(_, a)| a));
        Ok(())
    }
}
