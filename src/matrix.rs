//! A dense row-major `f32` matrix: the one carrier of numeric data between the
//! feature stage and the models. Plain `Vec<f32>` so that rows are slices and
//! whole batches feed a matrix product without copies.

use serde::{Deserialize, Serialize};

/// Row-major `rows x cols` matrix of `f32`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Matrix {
    rows: usize,
    cols: usize,
    data: Vec<f32>,
}

impl Matrix {
    /// A `rows x cols` matrix of zeros.
    pub fn zeros(rows: usize, cols: usize) -> Self {
        Matrix {
            rows,
            cols,
            data: vec![0.0; rows * cols],
        }
    }

    /// Wraps row-major `data`; `None` unless `data.len() == rows * cols`.
    pub fn from_vec(rows: usize, cols: usize, data: Vec<f32>) -> Option<Self> {
        (rows.checked_mul(cols) == Some(data.len())).then_some(Matrix { rows, cols, data })
    }

    /// An empty matrix with `cols` columns, to be filled with [`Matrix::push_row`].
    pub fn with_cols(cols: usize) -> Self {
        Matrix {
            rows: 0,
            cols,
            data: Vec::new(),
        }
    }

    /// Appends one row.
    ///
    /// # Panics
    /// If `row.len() != self.cols()`: a programming error, not an input error.
    pub fn push_row(&mut self, row: &[f32]) {
        assert_eq!(row.len(), self.cols, "row length must equal column count");
        self.data.extend_from_slice(row);
        self.rows += 1;
    }

    /// The row-major data, giving the buffer back for reuse.
    pub fn into_vec(self) -> Vec<f32> {
        self.data
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// Row `i`, mutable.
    pub fn row_mut(&mut self, i: usize) -> &mut [f32] {
        &mut self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// Iterator over rows.
    pub fn iter_rows(&self) -> impl Iterator<Item = &[f32]> {
        self.data.chunks_exact(self.cols.max(1)).take(self.rows)
    }

    /// All values, row-major.
    pub fn as_slice(&self) -> &[f32] {
        &self.data
    }

    /// All values, row-major, mutable.
    pub fn as_mut_slice(&mut self) -> &mut [f32] {
        &mut self.data
    }

    /// The rows at `indices`, in that order.
    pub fn select_rows(&self, indices: &[usize]) -> Matrix {
        let mut out = Matrix::with_cols(self.cols);
        out.data.reserve(indices.len() * self.cols);
        for &i in indices {
            out.push_row(self.row(i));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_and_selection() {
        let m = Matrix::from_vec(3, 2, vec![1., 2., 3., 4., 5., 6.]).unwrap();
        assert_eq!(m.row(1), &[3., 4.]);
        assert_eq!(m.iter_rows().count(), 3);
        let s = m.select_rows(&[2, 0]);
        assert_eq!(s.as_slice(), &[5., 6., 1., 2.]);
        assert!(Matrix::from_vec(2, 2, vec![0.0; 3]).is_none());
    }
}
