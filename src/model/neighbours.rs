//! Latent neighbours: how far a row's latent code lies from the codes of
//! its nearest normal training rows. The autoencoder adds this distance to
//! its reconstruction error (README, "The default detector"): the error
//! misses rows the network reconstructs well, and the distance sees them
//! land where no normal row was. With several (cross-fitted) networks, the
//! distance is the mean over their latent spaces: each space alone varies
//! from seed to seed.
//!
//! The search is exact and brute force over at most a configured number of
//! reference codes, `rows x references x latent width` multiply-adds a
//! batch; it runs on transposed codes, so that every reference is compared
//! with a whole block of rows in vector lanes.

use serde::{Deserialize, Serialize};

use super::dense::{batch_tiles, grown, Activation};
use super::kernel::{self, LayerT, ROW_ALIGN};
use crate::simd::{multiversion, Level};
use crate::{Error, Matrix, Result};

/// Neighbours whose distances are averaged.
pub const K: usize = 5;
/// Share of the score the neighbour distance makes (the reconstruction
/// error the rest), both relative to their medians on normal rows.
pub const WEIGHT: f32 = 0.6;
/// [`WEIGHT`] for cross-fitted networks (scarce data), whose distance,
/// averaged over their latent spaces, varies less from seed to seed than
/// their errors do.
pub const WEIGHT_CROSS_FITTED: f32 = 0.7;
/// References per product: the squared distances of a whole batch to
/// them stay in the level-2 cache.
const TILE: usize = 128;
/// Most rows a call compares at once (the autoencoder's scoring chunk).
pub const MAX_ROWS: usize = 256;

/// Reference codes in the latent space of every network, and what makes
/// both parts of the score relative to normal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatentNeighbours {
    /// Latent codes of normal training rows (`references x width`) in the
    /// first network's latent space.
    refs: References,
    /// The same rows' codes in each further network's latent space.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    more: Vec<References>,
    /// Median reconstruction score of the calibration rows.
    error_median: f32,
    /// Median neighbour distance (averaged over networks) of the
    /// calibration rows.
    distance_median: f32,
    /// Share of the distance in the score ([`WEIGHT`] in older files).
    #[serde(default = "default_weight")]
    weight: f32,
}

fn default_weight() -> f32 {
    WEIGHT
}

impl std::fmt::Display for LatentNeighbours {
    /// What the score is made of, for people.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let w = self.weight;
        write!(
            f,
            "{:.2} x reconstruction error + {w:.2} x mean latent distance to the {K} nearest of {} normal training rows",
            1.0 - w,
            self.references()
        )?;
        if self.networks() > 1 {
            write!(
                f,
                " (averaged over {} networks' latent spaces)",
                self.networks()
            )?;
        }
        f.write_str(", each relative to its median on normal rows")
    }
}

/// One network's reference codes, kept in a model file as a matrix and
/// laid out for the search: per [`TILE`] references, `-2 r` as a layer's
/// weights (`width x n`) and `|r|^2` as its bias, so that a product gives
/// `|r|^2 - 2 z.r`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "Matrix", into = "Matrix")]
struct References {
    codes: Matrix,
    tiles: Vec<(Vec<f32>, Vec<f32>)>,
}

impl From<Matrix> for References {
    fn from(codes: Matrix) -> Self {
        let width = codes.cols();
        let tiles = (codes.as_slice().chunks(TILE * width.max(1)))
            .map(|block| {
                let n = block.len() / width.max(1);
                let mut w = vec![0.0; width * n];
                let mut bias = vec![0.0; n];
                for (i, r) in block.chunks_exact(width).enumerate() {
                    for (j, &v) in r.iter().enumerate() {
                        w[j * n + i] = -2.0 * v;
                    }
                    bias[i] = r.iter().map(|v| v * v).sum();
                }
                (w, bias)
            })
            .collect();
        References { codes, tiles }
    }
}

impl From<References> for Matrix {
    fn from(r: References) -> Self {
        r.codes
    }
}

/// Where the calibration rows' codes come from.
pub enum Calibration<'a> {
    /// Rows apart from the references, coded by every network in turn.
    Apart(&'a [Matrix]),
    /// The references themselves, each compared with the others only.
    LeaveOneOut,
}

impl LatentNeighbours {
    /// Keeps `refs` (more than [`K`] codes of the same rows, one matrix per
    /// network) and scales both parts of the score by their medians on the
    /// calibration rows, whose reconstruction scores are `errors` (one per
    /// row, in order); the distance weighs `weight`. Returns the
    /// calibration rows' combined scores, for the threshold.
    pub fn fit(
        refs: Vec<Matrix>,
        calib: Calibration,
        errors: &[f32],
        weight: f32,
    ) -> Result<(Self, Vec<f32>)> {
        let rows = refs.first().map_or(0, Matrix::rows);
        if rows <= K {
            return Err(Error::Model(format!(
                "latent neighbours need more than {K} reference rows, got {rows}"
            )));
        }
        let mut refs = refs.into_iter().map(References::from);
        let first = refs.next().expect("checked above");
        let mut model = LatentNeighbours {
            refs: first,
            more: refs.collect(),
            error_median: 1.0,
            distance_median: 1.0,
            weight,
        };
        model
            .check(model.width(), model.networks())
            .map_err(Error::Model)?;
        let dist = match calib {
            Calibration::Apart(codes) if model.fits(codes) => model.distances(|i| &codes[i], false),
            Calibration::Apart(codes) => {
                return Err(Error::Model(format!(
                    "calibration codes from {} networks do not match references from {}",
                    codes.len(),
                    model.networks()
                )))
            }
            Calibration::LeaveOneOut => model.distances(|i| &model.network(i).codes, true),
        };
        if dist.len() != errors.len() {
            return Err(Error::Model(format!(
                "{} calibration scores for {} rows",
                errors.len(),
                dist.len()
            )));
        }
        model.error_median = positive_median(errors);
        let n = model.networks() as f32;
        model.distance_median = positive_median(&dist.iter().map(|d| d / n).collect::<Vec<_>>());
        let mut scores = errors.to_vec();
        model.combine(&mut scores, &dist);
        Ok((model, scores))
    }

    /// Width of the codes.
    pub fn width(&self) -> usize {
        self.refs.codes.cols()
    }

    /// Reference rows kept.
    pub fn references(&self) -> usize {
        self.refs.codes.rows()
    }

    /// Share of the distance in the score.
    pub fn weight(&self) -> f32 {
        self.weight
    }

    /// Networks whose latent spaces the distance is averaged over.
    pub fn networks(&self) -> usize {
        1 + self.more.len()
    }

    /// Checks a model read from a file against the latent width and the
    /// autoencoder's networks (files written before the distance was
    /// averaged over networks hold the first network's codes alone).
    pub fn check(&self, width: usize, networks: usize) -> std::result::Result<(), String> {
        for r in self.all() {
            let c = &r.codes;
            if c.rows().checked_mul(c.cols()) != Some(c.as_slice().len()) {
                return Err("latent neighbour references do not match their shape".into());
            }
            if c.cols() != width || c.rows() != self.references() || c.rows() <= K {
                return Err(format!(
                    "latent neighbours hold {} codes of width {} for a latent of width {width}",
                    c.rows(),
                    c.cols()
                ));
            }
        }
        if self.networks() != 1 && self.networks() != networks {
            return Err(format!(
                "latent neighbours of {} networks for {networks}",
                self.networks()
            ));
        }
        let medians = [self.error_median, self.distance_median];
        if medians.iter().any(|m| !(m.is_finite() && *m > 0.0)) {
            return Err("latent neighbour medians must be positive".into());
        }
        if !(0.0..=1.0).contains(&self.weight) {
            return Err("latent neighbour weight must lie between 0 and 1".into());
        }
        Ok(())
    }

    /// Adds network `net`'s mean distance from each of `rows` (at most
    /// [`MAX_ROWS`]) transposed codes (unit `j` of row `r` at
    /// `zt[j * stride + r]`) to its [`K`] nearest references into
    /// `out[..rows]`; `scratch` is reused from call to call.
    pub fn add_nearest_t(
        &self,
        net: usize,
        zt: &[f32],
        stride: usize,
        rows: usize,
        scratch: &mut Vec<f32>,
        out: &mut [f32],
    ) {
        (self.network(net)).add_nearest(Level::detect(), zt, stride, rows, false, scratch, out);
    }

    /// Turns reconstruction scores into the combined score, given each
    /// row's neighbour distances summed over the networks.
    pub fn combine(&self, errors: &mut [f32], dist: &[f32]) {
        let n = self.networks() as f32;
        let e = (1.0 - self.weight) / self.error_median;
        let d = self.weight / self.distance_median;
        for (s, &x) in errors.iter_mut().zip(dist) {
            *s = e * *s + d * (x / n);
        }
    }

    fn all(&self) -> impl Iterator<Item = &References> {
        std::iter::once(&self.refs).chain(&self.more)
    }

    /// Whether `codes` hold the same rows in each network's latent space.
    fn fits(&self, codes: &[Matrix]) -> bool {
        let rows = codes.first().map_or(0, Matrix::rows);
        codes.len() == self.networks()
            && (codes.iter()).all(|c| c.rows() == rows && c.cols() == self.width())
    }

    fn network(&self, net: usize) -> &References {
        match net {
            0 => &self.refs,
            _ => &self.more[net - 1],
        }
    }

    /// Neighbour distances of row-major `codes(i)` for network `i`, summed
    /// over the networks; with `skip_self`, the codes are the references
    /// and each leaves itself out.
    fn distances<'a>(&self, codes: impl Fn(usize) -> &'a Matrix, skip_self: bool) -> Vec<f32> {
        let mut out = vec![0.0; codes(0).rows()];
        let (mut zt, mut scratch) = (Vec::new(), Vec::new());
        for (i, refs) in self.all().enumerate() {
            let width = refs.codes.cols();
            let blocks = codes(i).as_slice().chunks(MAX_ROWS * width.max(1));
            for (block, out) in blocks.zip(out.chunks_mut(MAX_ROWS)) {
                let n = out.len();
                kernel::transpose_into(block, n, width, MAX_ROWS, &mut zt);
                refs.add_nearest(
                    Level::detect(),
                    &zt,
                    MAX_ROWS,
                    n,
                    skip_self,
                    &mut scratch,
                    out,
                );
            }
        }
        out
    }
}

impl References {
    /// [`LatentNeighbours::add_nearest_t`] of these references; with
    /// `skip_self`, each row's smallest distance (its own, as a reference)
    /// is left out.
    #[allow(clippy::too_many_arguments)]
    fn add_nearest(
        &self,
        level: Level,
        zt: &[f32],
        stride: usize,
        rows: usize,
        skip_self: bool,
        scratch: &mut Vec<f32>,
        out: &mut [f32],
    ) {
        let width = self.codes.cols();
        assert!(rows <= MAX_ROWS && zt.len() >= width * stride);
        let lanes = rows.next_multiple_of(ROW_ALIGN);
        let mut top = [[f32::INFINITY; MAX_ROWS]; K + 1];
        let tiles = batch_tiles(level, rows).filter(|_| stride.is_multiple_of(ROW_ALIGN));
        for (w, bias) in &self.tiles {
            let prod_stride = match tiles {
                Some(t) => {
                    let l = LayerT {
                        xt: zt,
                        stride,
                        w,
                        bias,
                        act: Activation::Linear,
                    };
                    t.layer(&l, grown(scratch, TILE * stride));
                    stride
                }
                None => {
                    self.products_by_row(level, (w, bias), (zt, stride, rows), lanes, scratch);
                    lanes
                }
            };
            let prod = &scratch[..bias.len() * prod_stride];
            sink(level, prod, prod_stride, lanes, &mut top);
        }
        let first = usize::from(skip_self);
        for (r, o) in out[..rows].iter_mut().enumerate() {
            let norm: f32 = (0..width)
                .map(|j| zt[j * stride + r] * zt[j * stride + r])
                .sum();
            let sum: f32 = top[first..first + K]
                .iter()
                .map(|t| (t[r] + norm).max(0.0).sqrt())
                .sum();
            *o += sum / K as f32;
        }
    }

    /// One tile's products one row at a time (`kernel::layer_row`: the
    /// bits a batch gives that row), laid out as a batch's: reference `i`
    /// of row `r` at `scratch[i * lanes + r]`.
    fn products_by_row(
        &self,
        level: Level,
        (w, bias): (&[f32], &[f32]),
        (zt, stride, rows): (&[f32], usize, usize),
        lanes: usize,
        scratch: &mut Vec<f32>,
    ) {
        let (width, n) = (self.codes.cols(), bias.len());
        let buf = grown(scratch, n * lanes + width + n);
        let (prod, rest) = buf.split_at_mut(n * lanes);
        let (z, row_prod) = rest.split_at_mut(width);
        for r in 0..rows {
            for (j, v) in z.iter_mut().enumerate() {
                *v = zt[j * stride + r];
            }
            kernel::layer_row(level, z, w, bias, Activation::Linear, row_prod);
            for (i, &p) in row_prod.iter().enumerate() {
                prod[i * lanes + r] = p;
            }
        }
    }
}

/// The median of `v`, or 1 when it is not a positive number (all zero).
fn positive_median(v: &[f32]) -> f32 {
    let mut s = v.to_vec();
    s.sort_unstable_by(f32::total_cmp);
    let m = s.get(s.len() / 2).copied().unwrap_or(1.0);
    if m.is_finite() && m > 0.0 {
        m
    } else {
        1.0
    }
}

multiversion! {
    fn sink(prod: &[f32], stride: usize, lanes: usize, top: &mut [[f32; MAX_ROWS]; K + 1]) = sink_body;
}

/// Sinks every reference's value in `prod` (one run of `stride` lanes per
/// reference) into each lane's sorted [`K`] + 1 smallest, by a min/max
/// network over [`ROW_ALIGN`] lanes at a time (the first `lanes`), skipped
/// where no lane beats its current largest: once the lists fill, most.
#[inline(always)]
fn sink_body(prod: &[f32], stride: usize, lanes: usize, top: &mut [[f32; MAX_ROWS]; K + 1]) {
    for p in prod.chunks_exact(stride) {
        for l in (0..lanes).step_by(ROW_ALIGN) {
            let p: &[f32; ROW_ALIGN] = p[l..l + ROW_ALIGN].try_into().expect("lanes fit");
            let worst = &top[K][l..l + ROW_ALIGN];
            if !p.iter().zip(worst).fold(false, |any, (v, w)| any | (v < w)) {
                continue;
            }
            let mut carry = *p;
            for slot in top.iter_mut() {
                for (t, c) in slot[l..l + ROW_ALIGN].iter_mut().zip(&mut carry) {
                    // `f32::min` with AVX-512 enabled crashes LLVM's
                    // instruction selection; the compare selects the same
                    // (the values are never NaN).
                    let (low, high) = if *c < *t { (*c, *t) } else { (*t, *c) };
                    *t = low;
                    *c = high;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn codes(n: usize, width: usize, seed: u64) -> Matrix {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let v = (0..n * width).map(|_| rng.random::<f32>()).collect();
        Matrix::from_vec(n, width, v).unwrap()
    }

    fn fitted(refs: &[&Matrix], calib: Calibration, errors: &[f32]) -> LatentNeighbours {
        let refs = refs.iter().map(|&r| r.clone()).collect();
        LatentNeighbours::fit(refs, calib, errors, WEIGHT)
            .unwrap()
            .0
    }

    /// The plain answer: sort every distance, average the K smallest.
    fn slow(refs: &Matrix, code: &[f32], skip: Option<usize>) -> f32 {
        let mut d: Vec<f32> = refs
            .iter_rows()
            .enumerate()
            .filter(|(i, _)| Some(*i) != skip)
            .map(|(_, r)| r.iter().zip(code).map(|(a, b)| (a - b) * (a - b)).sum())
            .collect();
        d.sort_unstable_by(f32::total_cmp);
        d[..K].iter().map(|x| x.sqrt()).sum::<f32>() / K as f32
    }

    fn transposed(x: &Matrix, stride: usize) -> Vec<f32> {
        let mut zt = vec![0.0; x.cols() * stride];
        for (r, row) in x.iter_rows().enumerate() {
            for (j, &v) in row.iter().enumerate() {
                zt[j * stride + r] = v;
            }
        }
        zt
    }

    #[test]
    fn nearest_distances_match_a_full_sort_and_rows_alone_match_the_batch() {
        // 300 references: two full tiles and a part.
        let refs = codes(300, 7, 1);
        let nb = References::from(refs.clone());
        let rows = codes(150, 7, 2);
        let zt = transposed(&rows, 160);
        let mut scratch = Vec::new();
        for level in Level::supported() {
            let mut batch = vec![0.0; 150];
            nb.add_nearest(level, &zt, 160, 150, false, &mut scratch, &mut batch);
            for (r, &o) in batch.iter().enumerate() {
                let want = slow(&refs, rows.row(r), None);
                assert!(
                    (o - want).abs() <= 1e-4 * want,
                    "{level:?} row {r}: {o} {want}"
                );
            }
            // The first three rows alone take the row path: the same bits.
            let mut alone = vec![0.0; 3];
            nb.add_nearest(level, &zt, 160, 3, false, &mut scratch, &mut alone);
            assert_eq!(alone, batch[..3], "{level:?}");
        }
    }

    #[test]
    fn leave_one_out_skips_only_the_row_itself() {
        // Row 3 is duplicated: left out once, its twin still counts.
        let mut refs = codes(40, 3, 4);
        let twin = refs.row(3).to_vec();
        refs.row_mut(4).copy_from_slice(&twin);
        let nb = fitted(&[&refs], Calibration::LeaveOneOut, &[1.0; 40]);
        let d = nb.distances(|_| &refs, true);
        for (i, &v) in d.iter().enumerate() {
            let want = slow(&refs, refs.row(i), Some(i));
            assert!((v - want).abs() <= 1e-3, "row {i}: {v} {want}");
        }
    }

    #[test]
    fn scores_are_relative_to_the_calibration_medians() {
        let refs = codes(50, 4, 5);
        let calib = codes(21, 4, 6);
        let errors: Vec<f32> = (0..21).map(|i| 2.0 + i as f32).collect();
        let apart = [calib.clone()];
        let (nb, scores) = LatentNeighbours::fit(
            vec![refs.clone()],
            Calibration::Apart(&apart),
            &errors,
            WEIGHT,
        )
        .unwrap();
        assert_eq!(nb.error_median, 12.0);
        let dist = nb.distances(|_| &calib, false);
        let mut sorted = dist.clone();
        sorted.sort_unstable_by(f32::total_cmp);
        assert_eq!(nb.distance_median, sorted[10]);
        let want = |r: usize| (1.0 - WEIGHT) * errors[r] / 12.0 + WEIGHT * dist[r] / sorted[10];
        for (r, &score) in scores.iter().enumerate() {
            assert!((score - want(r)).abs() < 1e-6, "row {r}");
        }
        assert!(nb.check(4, 1).is_ok() && nb.check(4, 3).is_ok());
        assert!(nb.check(5, 1).is_err());
        let mut text = serde_json::to_value(&nb).unwrap();
        text["refs"]["rows"] = 51.into();
        let short: LatentNeighbours = serde_json::from_value(text).unwrap();
        assert!(short
            .check(4, 1)
            .unwrap_err()
            .contains("do not match their shape"));
        // A model file keeps the references, medians and weight; the tiles
        // follow. Files without a weight had the default.
        let back: LatentNeighbours =
            serde_json::from_str(&serde_json::to_string(&nb).unwrap()).unwrap();
        assert_eq!(back, nb);
        let mut text = serde_json::to_value(&nb).unwrap();
        text.as_object_mut().unwrap().remove("weight");
        assert_eq!(
            serde_json::from_value::<LatentNeighbours>(text).unwrap(),
            nb
        );
    }

    #[test]
    fn several_networks_average_their_distances() {
        let (a, b) = (codes(30, 4, 8), codes(30, 4, 9));
        let errors: Vec<f32> = (0..30).map(|i| 1.0 + i as f32).collect();
        let (nb, scores) = LatentNeighbours::fit(
            vec![a.clone(), b.clone()],
            Calibration::LeaveOneOut,
            &errors,
            0.7,
        )
        .unwrap();
        assert_eq!(nb.networks(), 2);
        let one =
            |r: &Matrix| fitted(&[r], Calibration::LeaveOneOut, &errors).distances(|_| r, true);
        let (da, db) = (one(&a), one(&b));
        let mean: Vec<f32> = da.iter().zip(&db).map(|(x, y)| (x + y) / 2.0).collect();
        let mut sorted = mean.clone();
        sorted.sort_unstable_by(f32::total_cmp);
        assert_eq!(nb.distance_median, sorted[15]);
        for (r, &score) in scores.iter().enumerate() {
            let want = 0.3 * errors[r] / nb.error_median + 0.7 * mean[r] / sorted[15];
            assert!((score - want).abs() < 1e-5, "row {r}: {score} {want}");
        }
        // Scoring adds each network's distance, as calibration did.
        let (zt, mut sum, mut scratch) = (transposed(&a, 32), vec![0.0; 30], Vec::new());
        nb.add_nearest_t(0, &zt, 32, 30, &mut scratch, &mut sum);
        nb.add_nearest_t(1, &transposed(&b, 32), 32, 30, &mut scratch, &mut sum);
        let apart = nb.distances(|i| if i == 0 { &a } else { &b }, false);
        assert_eq!(sum, apart);
        // An autoencoder of another number of networks is refused, but one
        // network's references serve any ensemble (older files).
        assert!(nb.check(4, 3).unwrap_err().contains("of 2 networks for 3"));
        assert_eq!(
            nb.to_string(),
            "0.30 x reconstruction error + 0.70 x mean latent distance to the 5 nearest of 30 \
             normal training rows (averaged over 2 networks' latent spaces), each relative to its \
             median on normal rows"
        );
        assert!(nb.check(4, 2).is_ok());
        let bad = LatentNeighbours::fit(
            vec![a.clone(), codes(29, 4, 1)],
            Calibration::LeaveOneOut,
            &errors,
            0.7,
        );
        assert!(bad.unwrap_err().to_string().contains("29 codes"));
        let mut heavy = nb.clone();
        heavy.weight = 1.5;
        assert!(heavy.check(4, 2).unwrap_err().contains("weight"));
    }

    #[test]
    fn too_few_references_or_scores_are_refused() {
        let refused = |refs: Vec<Matrix>, calib: Calibration, scores: usize| {
            let e = LatentNeighbours::fit(refs, calib, &vec![1.0; scores], WEIGHT);
            e.unwrap_err().to_string()
        };
        let e = refused(vec![codes(K, 2, 7)], Calibration::LeaveOneOut, K);
        assert!(e.contains("more than 5 reference rows"), "{e}");
        let e = refused(vec![codes(9, 2, 7)], Calibration::LeaveOneOut, 3);
        assert!(e.contains("3 calibration scores for 9 rows"), "{e}");
        let two = [codes(4, 2, 1), codes(4, 2, 2)];
        let e = refused(vec![codes(9, 2, 7)], Calibration::Apart(&two), 4);
        assert!(
            e.contains("codes from 2 networks do not match references from 1"),
            "{e}"
        );
        let ragged = [codes(4, 2, 1), codes(3, 2, 2)];
        let both = vec![codes(9, 2, 7), codes(9, 2, 8)];
        let e = refused(both, Calibration::Apart(&ragged), 4);
        assert!(e.contains("do not match"), "{e}");
    }
}
