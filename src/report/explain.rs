//! Which input columns made a row anomalous: the autoencoder's per-feature
//! squared reconstruction errors, summed per input column (the one-hot slots
//! of a categorical column count for that column) and given as shares of the
//! row's total error.
//!
//! ```
//! use floodwatch::report::explain::{format_top, Contribution};
//! let top = [Contribution { column: "syn".into(), share: 0.41 },
//!            Contribution { column: "kIn".into(), share: 0.22 }];
//! assert_eq!(format_top(&top), "syn:0.41;kIn:0.22");
//! ```

use serde::Serialize;

use crate::features::tabular::Schema;
use crate::model::Autoencoder;

/// One input column's share of a row's reconstruction error.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Contribution {
    /// The input column name.
    pub column: String,
    /// Its share of the row's squared error, in [0, 1].
    pub share: f32,
}

/// Maps encoded features back to input columns and ranks them.
#[derive(Debug, Clone)]
pub struct Explainer {
    columns: Vec<String>,
    /// Input column of each encoded feature.
    source: Vec<usize>,
}

impl Explainer {
    /// The explainer for rows encoded with `schema`.
    pub fn new(schema: &Schema) -> Explainer {
        let mut source = Vec::with_capacity(schema.width());
        for (i, c) in schema.columns.iter().enumerate() {
            source.extend(std::iter::repeat_n(i, c.width()));
        }
        Explainer {
            columns: schema.columns.iter().map(|c| c.name.clone()).collect(),
            source,
        }
    }

    /// Number of encoded features this explainer expects.
    pub fn width(&self) -> usize {
        self.source.len()
    }

    /// Shares of every input column for the per-feature squared `errors` of
    /// one encoded row (in schema order); all zero for a perfect
    /// reconstruction.
    pub fn shares(&self, errors: &[f32]) -> Vec<f32> {
        let mut per_column = vec![0.0f32; self.columns.len()];
        for (&col, &e) in self.source.iter().zip(errors) {
            if let Some(slot) = per_column.get_mut(col) {
                *slot += e.max(0.0);
            }
        }
        let total: f32 = per_column.iter().sum();
        if total > 0.0 && total.is_finite() {
            per_column.iter_mut().for_each(|v| *v /= total);
        } else {
            per_column.iter_mut().for_each(|v| *v = 0.0);
        }
        per_column
    }

    /// The `k` columns with the largest shares (ties by column order),
    /// leaving out columns with no share at all.
    pub fn top(&self, errors: &[f32], k: usize) -> Vec<Contribution> {
        let shares = self.shares(errors);
        let mut order: Vec<usize> = (0..shares.len()).filter(|&i| shares[i] > 0.0).collect();
        order.sort_by(|&a, &b| shares[b].total_cmp(&shares[a]).then(a.cmp(&b)));
        order
            .into_iter()
            .take(k)
            .map(|i| Contribution {
                column: self.columns[i].clone(),
                share: shares[i],
            })
            .collect()
    }

    /// [`Explainer::top`] for a scaled row scored by `ae`.
    pub fn explain(&self, ae: &Autoencoder, scaled_row: &[f32], k: usize) -> Vec<Contribution> {
        let mut errors = vec![0.0f32; scaled_row.len()];
        ae.feature_errors(scaled_row, &mut errors);
        self.top(&errors, k)
    }
}

/// `column:share;column:share` with two decimals, for one CSV cell.
pub fn format_top(top: &[Contribution]) -> String {
    top.iter()
        .map(|c| format!("{}:{:.2}", c.column, c.share))
        .collect::<Vec<_>>()
        .join(";")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::tabular::{Column, ColumnKind};

    fn schema() -> Schema {
        Schema {
            columns: vec![
                Column {
                    name: "bytes".into(),
                    kind: ColumnKind::Numeric,
                },
                Column {
                    name: "proto".into(),
                    kind: ColumnKind::Categorical {
                        values: vec!["tcp".into(), "udp".into()],
                    },
                },
                Column {
                    name: "syn".into(),
                    kind: ColumnKind::Numeric,
                },
            ],
        }
    }

    #[test]
    fn one_hot_slots_sum_into_their_column() {
        let e = Explainer::new(&schema());
        assert_eq!(e.width(), 5);
        // bytes 0.1, proto 0.2 + 0.1 + 0.0, syn 0.6
        let top = e.top(&[0.1, 0.2, 0.1, 0.0, 0.6], 2);
        assert_eq!(top.len(), 2);
        assert_eq!(top[0].column, "syn");
        assert!((top[0].share - 0.6).abs() < 1e-6);
        assert_eq!(top[1].column, "proto");
        assert!((top[1].share - 0.3).abs() < 1e-6);
        assert_eq!(format_top(&top), "syn:0.60;proto:0.30");
        let all = e.shares(&[0.1, 0.2, 0.1, 0.0, 0.6]);
        assert!((all.iter().sum::<f32>() - 1.0).abs() < 1e-6);
    }

    #[test]
    fn perfect_or_malformed_errors_give_no_contributions() {
        let e = Explainer::new(&schema());
        assert!(e.top(&[0.0; 5], 3).is_empty());
        assert!(e
            .top(&[f32::NAN, 0.0, 0.0, 0.0, f32::INFINITY], 3)
            .is_empty());
        // Too short or too long a row never panics.
        assert_eq!(e.top(&[1.0], 3).len(), 1);
        assert_eq!(e.top(&[1.0; 9], 9).len(), 3);
        assert_eq!(format_top(&[]), "");
    }

    #[test]
    fn explains_a_fitted_autoencoder() {
        use crate::model::AutoencoderParams;
        use crate::Matrix;
        let mut x = Matrix::with_cols(5);
        for i in 0..200 {
            let v = (i % 10) as f32 / 10.0;
            x.push_row(&[v, 1.0, 0.0, 0.0, 0.5]);
        }
        let (ae, _) = AutoencoderParams::new()
            .epochs(5)
            .fit(&x, None, &mut |_| {})
            .unwrap();
        let e = Explainer::new(&schema());
        // The last column is far from anything seen in training.
        let top = e.explain(&ae, &[0.5, 1.0, 0.0, 0.0, 9.0], 1);
        assert_eq!(top[0].column, "syn");
        assert!(top[0].share > 0.5, "{top:?}");
    }
}
