//! NumPy's `.npy` format (version 1.0) for feature tables: a little-endian
//! `float64` matrix, row-major, that `numpy.load` maps without parsing.
//! The row count goes in the header, which is written first with room for
//! any count and rewritten once the rows are done.

use std::io::{self, Seek, SeekFrom, Write};

/// The header's length with its magic, padded as the format asks (a
/// multiple of 64) and wide enough for any row count.
const HEADER: usize = 128;

/// Writes rows of `cols` values, then the header with their count.
#[derive(Debug)]
pub struct NpyWriter<W: Write + Seek> {
    out: W,
    cols: usize,
    rows: u64,
}

impl<W: Write + Seek> NpyWriter<W> {
    /// Starts a `? x cols` matrix at the start of `out`.
    pub fn new(mut out: W, cols: usize) -> io::Result<Self> {
        out.write_all(&header(0, cols))?;
        Ok(NpyWriter { out, cols, rows: 0 })
    }

    /// Writes one row.
    ///
    /// # Panics
    /// If `row` is not `cols` long (a caller bug).
    pub fn write_row(&mut self, row: &[f64]) -> io::Result<()> {
        assert_eq!(row.len(), self.cols, "row width");
        let mut buf = [0u8; 8 * 64];
        for chunk in row.chunks(64) {
            for (b, v) in buf.chunks_exact_mut(8).zip(chunk) {
                b.copy_from_slice(&v.to_le_bytes());
            }
            self.out.write_all(&buf[..8 * chunk.len()])?;
        }
        self.rows += 1;
        Ok(())
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Rewrites the header with the row count; returns the output.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.seek(SeekFrom::Start(0))?;
        self.out.write_all(&header(self.rows, self.cols))?;
        self.out.seek(SeekFrom::End(0))?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// The magic, version, length and the dict of a `rows x cols` float64
/// matrix, padded with spaces to [`HEADER`] bytes and ended by a newline.
fn header(rows: u64, cols: usize) -> [u8; HEADER] {
    let dict = format!("{{'descr': '<f8', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    let mut h = [b' '; HEADER];
    h[..6].copy_from_slice(b"\x93NUMPY");
    h[6] = 1;
    h[7] = 0;
    let len = (HEADER - 10) as u16;
    h[8..10].copy_from_slice(&len.to_le_bytes());
    h[10..10 + dict.len()].copy_from_slice(dict.as_bytes());
    h[HEADER - 1] = b'\n';
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn a_matrix_with_its_shape_in_the_header() {
        let mut w = NpyWriter::new(Cursor::new(Vec::new()), 3).unwrap();
        w.write_row(&[1.0, -2.5, f64::NAN]).unwrap();
        w.write_row(&[4.0, 5.0, 6.0]).unwrap();
        let bytes = w.finish().unwrap().into_inner();
        assert_eq!(bytes.len(), HEADER + 2 * 3 * 8);
        assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
        assert_eq!(
            u16::from_le_bytes([bytes[8], bytes[9]]) as usize + 10,
            HEADER
        );
        let text = String::from_utf8_lossy(&bytes[10..HEADER]);
        assert!(text.starts_with("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }"));
        assert!(text.ends_with(" \n"));
        let v = |i: usize| {
            f64::from_le_bytes(
                bytes[HEADER + 8 * i..HEADER + 8 * i + 8]
                    .try_into()
                    .unwrap(),
            )
        };
        assert_eq!((v(0), v(1), v(5)), (1.0, -2.5, 6.0));
        assert!(v(2).is_nan());
    }

    #[test]
    fn the_largest_shape_fits_the_header() {
        let h = header(u64::MAX, usize::MAX);
        assert_eq!(h[HEADER - 1], b'\n');
    }
}
