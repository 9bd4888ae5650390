//! Micro-batched scoring for `watch --stdin`: the records already queued
//! (at most [`MAX_BATCH`]) are encoded and scored together, as `test`
//! scores a block, then handed to the engine one by one. Nothing waits for
//! a batch to fill, so a record's latency grows by at most the scoring of
//! the records queued with it; the scores are `test`'s, to the bit.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use super::stream::source::{Next, RecordSource};
use super::stream::tabular::{BundleScorer, LineRecords};
use super::stream::{Detector, StreamScorer};
use crate::model::bundle::Bundle;
use crate::model::dense::Workspace;
use crate::{Matrix, Result};

/// Most records scored at once.
pub const MAX_BATCH: usize = 256;

/// Scores computed ahead, in record order, each with the features it is
/// for: the scorer checks that the engine asks about that very record.
type Ahead = Rc<RefCell<VecDeque<(Vec<f64>, f32)>>>;

/// Splits `lines` and `bundle` into a source that scores ahead and the
/// scorer that hands those scores out.
pub fn batched(lines: LineRecords, bundle: &Bundle) -> (BatchedLines, BatchedScorer) {
    let ahead = Ahead::default();
    let source = BatchedLines {
        inner: lines,
        ready: VecDeque::new(),
        spare: Vec::new(),
        ahead: Rc::clone(&ahead),
        bundle: bundle.clone(),
        ws: Workspace::default(),
        x: Vec::new(),
        scores: Vec::new(),
    };
    let scorer = BatchedScorer {
        inner: BundleScorer::new(bundle),
        ahead,
    };
    (source, scorer)
}

/// Lines whose records are scored in batches.
#[derive(Debug)]
pub struct BatchedLines {
    inner: LineRecords,
    /// Read and scored, not yet handed out, with their features.
    ready: VecDeque<(Next, Vec<f64>)>,
    spare: Vec<Vec<f64>>,
    ahead: Ahead,
    bundle: Bundle,
    ws: Workspace,
    x: Vec<f32>,
    scores: Vec<f32>,
}

impl BatchedLines {
    /// Waits for one record as the engine would, takes those queued behind
    /// it, and scores them all.
    fn fill(&mut self, width: usize) {
        let mut first = self.spare.pop().unwrap_or_else(|| vec![0.0; width]);
        let next = self.inner.next(&mut first);
        let mut more = matches!(next, Next::Record(_) | Next::Rejected(_));
        self.ready.push_back((next, first));
        while more && self.ready.len() < MAX_BATCH {
            let mut x = self.spare.pop().unwrap_or_else(|| vec![0.0; width]);
            match self.inner.next_ready(&mut x) {
                None => {
                    self.spare.push(x);
                    more = false;
                }
                Some(Next::Idle) => self.spare.push(x),
                Some(next) => {
                    more = !matches!(next, Next::End);
                    self.ready.push_back((next, x));
                }
            }
        }
        self.score(width);
    }

    /// Scores the ready records as `test` does (scaled as a matrix, then
    /// the batch through the autoencoder).
    fn score(&mut self, width: usize) {
        self.x.clear();
        for (next, x) in &self.ready {
            if matches!(next, Next::Record(_)) {
                self.x.extend(x.iter().map(|&v| v as f32));
            }
        }
        let rows = self.x.len() / width.max(1);
        let Some(mut m) = Matrix::from_vec(rows, width, std::mem::take(&mut self.x)) else {
            return;
        };
        if rows == 0 || self.bundle.autoencoder.input_dim() != width {
            // Left to the scorer, which says what is wrong.
            self.x = m.into_vec();
            return;
        }
        self.bundle.scaler.transform(&mut m);
        self.scores.resize(rows, 0.0);
        self.bundle
            .autoencoder
            .score_batch_with(&m, &mut self.ws, &mut self.scores);
        let mut ahead = self.ahead.borrow_mut();
        let records = self
            .ready
            .iter()
            .filter(|(n, _)| matches!(n, Next::Record(_)));
        for ((_, x), &score) in records.zip(&self.scores) {
            ahead.push_back((x.clone(), score));
        }
        self.x = m.into_vec();
    }
}

impl RecordSource for BatchedLines {
    fn names(&self) -> &[String] {
        self.inner.names()
    }

    fn next(&mut self, out: &mut [f64]) -> Next {
        if self.ready.is_empty() {
            self.fill(out.len());
        }
        let Some((next, x)) = self.ready.pop_front() else {
            return Next::Idle;
        };
        if matches!(next, Next::Record(_)) {
            out.copy_from_slice(&x);
        }
        self.spare.push(x);
        next
    }

    fn dropped(&self) -> u64 {
        self.inner.dropped()
    }
}

/// A [`BundleScorer`] that hands out the scores computed ahead.
#[derive(Debug)]
pub struct BatchedScorer {
    inner: BundleScorer,
    ahead: Ahead,
}

impl StreamScorer for BatchedScorer {
    fn learn(&mut self, x: &[f64]) -> Result<()> {
        self.inner.learn(x)
    }

    fn fit(&mut self) -> Result<()> {
        Ok(())
    }

    fn ready(&self) -> bool {
        true
    }

    fn score(&mut self, x: &[f64]) -> Result<f64> {
        let mut ahead = self.ahead.borrow_mut();
        // Records the engine did not ask about are skipped; a record
        // scored nowhere ahead is scored alone.
        while let Some((features, score)) = ahead.pop_front() {
            if features
                .iter()
                .map(|v| v.to_bits())
                .eq(x.iter().map(|v| v.to_bits()))
            {
                return Ok(f64::from(score));
            }
        }
        drop(ahead);
        self.inner.score(x)
    }

    fn explain(&mut self, x: &[f64], shares: &mut [f64]) -> Result<()> {
        self.inner.explain(x, shares)
    }

    fn family(&mut self, x: &[f64]) -> Option<&str> {
        self.inner.family(x)
    }

    fn detector(&self) -> Option<Detector> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::batch::{train, Input, TrainOptions};
    use std::sync::atomic::AtomicU64;
    use std::sync::Arc;
    use std::time::Instant;

    fn bundle(dir: &std::path::Path) -> Bundle {
        let mut t = String::from("x,y,Label\n");
        for i in 0..300 {
            t += &format!("{},{},normal\n", i % 10, i % 7);
        }
        let data = dir.join("t.csv");
        std::fs::write(&data, t).unwrap();
        let opts = TrainOptions {
            input: Input {
                data: vec![data],
                ..Input::default()
            },
            epochs: Some(2),
            ..TrainOptions::default()
        };
        train(&opts, &mut |_| {}).unwrap().bundle
    }

    #[test]
    fn batches_score_as_one_record_at_a_time() {
        let d = tempfile::tempdir().unwrap();
        let b = bundle(d.path());
        let (tx, rx) = std::sync::mpsc::channel();
        let mut lines = vec!["x,y,Label".to_string()];
        for i in 0..1000 {
            lines.push(match i % 97 {
                5 => "1,2".into(),
                6 => String::new(),
                _ => format!("{},{},normal", (i * 7) % 13, i % 5),
            });
        }
        for l in lines {
            tx.send(crate::ingest::lines::Lines::one(&l, Instant::now()))
                .unwrap();
        }
        drop(tx);
        let recs = LineRecords::new(rx, Arc::new(AtomicU64::new(0)), b.schema.clone(), "-");
        let (mut src, mut scorer) = batched(recs, &b);
        let mut alone = BundleScorer::new(&b);
        let mut out = vec![0.0; src.names().len()];
        let (mut records, mut rejected) = (0, 0);
        loop {
            match src.next(&mut out) {
                Next::Record(_) => {
                    records += 1;
                    let got = scorer.score(&out).unwrap();
                    let want = alone.score(&out).unwrap();
                    assert_eq!(got.to_bits(), want.to_bits());
                }
                Next::Rejected(_) => rejected += 1,
                Next::Idle => {}
                Next::Failed(e) => panic!("{e}"),
                Next::End => break,
            }
        }
        assert_eq!((records, rejected), (1000 - 2 * 11, 11));
        // A record nobody scored ahead is scored alone.
        out[0] += 0.5;
        let got = scorer.score(&out).unwrap();
        assert_eq!(got.to_bits(), alone.score(&out).unwrap().to_bits());
    }
}
