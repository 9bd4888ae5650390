//! Where the engine's per-record scores go: the `--scores` CSV file, or a
//! tally that `test` turns into metrics.

use std::io::{self, Write};

use super::RecordInfo;

/// Receives every record's scores, one `(score, above threshold)` per side,
/// or `None` while the record was learned from (grace).
pub trait ScoreSink {
    /// Called once before the first record, with the number of sides.
    fn start(&mut self, sides: usize) -> io::Result<()>;
    /// One record.
    fn record(&mut self, info: &RecordInfo, sides: Option<&[(f64, bool)]>) -> io::Result<()>;
    /// Called at the end of the run.
    fn finish(&mut self) -> io::Result<()>;
}

/// `index,timestamp,score,is_anomaly` per record (and `src_score,
/// src_is_anomaly` with a source side); score and flag empty during grace.
pub struct CsvScores<W = Box<dyn Write>> {
    out: W,
    sides: usize,
}

impl<W: Write> CsvScores<W> {
    /// Scores written to `out`.
    pub fn new(out: W) -> Self {
        CsvScores { out, sides: 1 }
    }

    /// The writer back.
    pub fn into_inner(self) -> W {
        self.out
    }
}

impl<W: Write> ScoreSink for CsvScores<W> {
    fn start(&mut self, sides: usize) -> io::Result<()> {
        self.sides = sides;
        let extra = if sides > 1 {
            ",src_score,src_is_anomaly"
        } else {
            ""
        };
        writeln!(self.out, "index,timestamp,score,is_anomaly{extra}")
    }

    #[inline]
    fn record(&mut self, info: &RecordInfo, sides: Option<&[(f64, bool)]>) -> io::Result<()> {
        let out = &mut self.out;
        write!(out, "{},{:.6}", info.index, info.timestamp)?;
        match sides {
            Some(sides) => {
                for (score, anomalous) in sides {
                    write!(out, ",{score},{}", u8::from(*anomalous))?;
                }
            }
            None => {
                for _ in 0..self.sides {
                    out.write_all(b",,")?;
                }
            }
        }
        writeln!(out)
    }

    fn finish(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}
