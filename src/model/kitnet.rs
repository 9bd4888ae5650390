//! KitNET (Mirsky et al., "Kitsune", NDSS 2018): an online, unsupervised
//! ensemble of small autoencoders, with the semantics of Kitsune-py.
//!
//! Life of a [`KitNet`], one record at a time through [`KitNet::process`]:
//!
//! 1. **Mapping** (`fm_grace` records): the feature mapper accumulates
//!    incremental correlation statistics, then clusters the features by
//!    correlation distance (single linkage, as scipy's `linkage` in
//!    Kitsune-py) and cuts the dendrogram into groups of at most `max_group`.
//! 2. **Training** (`ad_grace` records): one autoencoder per group (hidden
//!    ratio 0.75, sigmoid, tied weights, inputs min-max normalised with the
//!    running range) and an output autoencoder over their RMSEs, each taking
//!    one SGD step per record.
//! 3. **Executing**: the score of a record is the RMSE of the output
//!    autoencoder; nothing is learned any more.
//!
//! Unlike Kitsune-py, the whole state is `Serialize`/`Deserialize` (a stream
//! model file holds it), so a detector can save its model after grace and
//! restart without relearning.
//! Loading validates every buffer length, so an edited file yields an error,
//! never a panic later.
//!
//! Two small departures from Kitsune-py, both to make the phases exact: the
//! mapper sees exactly `fm_grace` records (Kitsune-py sees `fm_grace + 1`) and
//! the ensemble trains on exactly `ad_grace` records; and grace records return
//! `None` instead of `0.0`.
//!
//! ```
//! use floodwatch::model::kitnet::KitNetParams;
//!
//! let mut net = KitNetParams::new().fm_grace(50).ad_grace(500).build(3)?;
//! for t in 0..550 {
//!     let v = (t as f64 * 0.1).sin();
//!     assert!(net.process(&[v, 2.0 * v, 1.0 - v])?.is_none());
//! }
//! assert!(net.is_trained());
//! let normal = net.process(&[0.5, 1.0, 0.5])?.unwrap_or_default();
//! let odd = net.process(&[9.0, -9.0, 9.0])?.unwrap_or_default();
//! assert!(odd > normal);
//! # Ok::<(), floodwatch::Error>(())
//! ```

mod dae;
mod mapper;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::model::detector::Detector;
use crate::{Error, Matrix, Result};
use dae::{Dae, DaeScratch};
use mapper::FeatureMapper;

/// Hyperparameters of a [`KitNet`], with Kitsune-py's defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KitNetParams {
    max_group: usize,
    fm_grace: u64,
    ad_grace: u64,
    learning_rate: f64,
    hidden_ratio: f64,
    seed: u64,
}

impl Default for KitNetParams {
    fn default() -> Self {
        KitNetParams {
            max_group: 10,
            fm_grace: 5_000,
            ad_grace: 50_000,
            learning_rate: 0.1,
            hidden_ratio: 0.75,
            seed: 1234,
        }
    }
}

impl KitNetParams {
    /// Kitsune's defaults: groups of at most 10 features, 5,000 mapping and
    /// 50,000 training records, learning rate 0.1, hidden ratio 0.75, seed 1234.
    pub fn new() -> Self {
        Self::default()
    }

    /// Largest number of features in one ensemble autoencoder (`m`); at least 1.
    /// Default 10.
    pub fn max_group(mut self, m: usize) -> Self {
        self.max_group = m;
        self
    }

    /// Records the feature mapper learns correlations from; at least 1.
    /// Default 5,000.
    pub fn fm_grace(mut self, n: u64) -> Self {
        self.fm_grace = n;
        self
    }

    /// Records the autoencoders train on after the mapping; at least 1.
    /// Default 50,000.
    pub fn ad_grace(mut self, n: u64) -> Self {
        self.ad_grace = n;
        self
    }

    /// SGD step size, in (0, 10]. Default 0.1.
    pub fn learning_rate(mut self, lr: f64) -> Self {
        self.learning_rate = lr;
        self
    }

    /// Hidden units per input of each autoencoder, in (0, 1]. Default 0.75.
    pub fn hidden_ratio(mut self, r: f64) -> Self {
        self.hidden_ratio = r;
        self
    }

    /// Seed of the weight initialisation. Default 1234.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Checks every parameter, naming the first bad one.
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::Model(msg));
        if self.max_group == 0 {
            return bad("KitNET max_group should be at least 1, but is 0".into());
        }
        if self.fm_grace == 0 || self.ad_grace == 0 {
            return bad(format!(
                "KitNET grace periods should be at least 1, but are fm_grace={} ad_grace={}",
                self.fm_grace, self.ad_grace
            ));
        }
        let lr = self.learning_rate;
        if !(lr > 0.0 && lr <= 10.0) {
            return bad(format!(
                "KitNET learning_rate should be in (0, 10], but is {lr}"
            ));
        }
        let hr = self.hidden_ratio;
        if !(hr > 0.0 && hr <= 1.0) {
            return bad(format!(
                "KitNET hidden_ratio should be in (0, 1], but is {hr}"
            ));
        }
        Ok(())
    }

    /// A fresh detector over records of `n_features` values.
    pub fn build(&self, n_features: usize) -> Result<KitNet> {
        self.validate()?;
        if n_features == 0 {
            return Err(Error::Model("KitNET needs at least one feature".into()));
        }
        Ok(KitNet {
            params: self.clone(),
            n_features,
            phase: Phase::Mapping(FeatureMapper::new(n_features)),
            scratch: Scratch::default(),
        })
    }
}

/// Where a [`KitNet`] is in its life.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Phase {
    Mapping(FeatureMapper),
    Training(Ensemble),
    Executing(Ensemble),
}

/// The autoencoders once the features are mapped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Ensemble {
    /// Feature indices of each ensemble autoencoder.
    groups: Vec<Vec<usize>>,
    layer: Vec<Dae>,
    output: Dae,
    /// Records trained on.
    trained: u64,
}

/// Per-record buffers, rebuilt from the model's sizes (not serialised).
#[derive(Debug, Clone, Default)]
struct Scratch {
    gathered: Vec<f64>,
    rmse: Vec<f64>,
    dae: DaeScratch,
}

impl Scratch {
    fn for_ensemble(e: &Ensemble) -> Self {
        let visible = e.layer.iter().map(Dae::visible).chain([e.output.visible()]);
        let hidden = e.layer.iter().map(Dae::hidden).chain([e.output.hidden()]);
        let (v, h) = (visible.max().unwrap_or(1), hidden.max().unwrap_or(1));
        Scratch {
            gathered: vec![0.0; v],
            rmse: vec![0.0; e.layer.len()],
            dae: DaeScratch::new(v, h),
        }
    }
}

/// An online KitNET anomaly detector; see the [module docs](self).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "KitNetState", into = "KitNetState")]
pub struct KitNet {
    params: KitNetParams,
    n_features: usize,
    phase: Phase,
    scratch: Scratch,
}

/// The serialised form of a [`KitNet`]: everything but the scratch buffers.
#[derive(Serialize, Deserialize)]
struct KitNetState {
    params: KitNetParams,
    n_features: usize,
    phase: Phase,
}

impl From<KitNet> for KitNetState {
    fn from(k: KitNet) -> Self {
        KitNetState {
            params: k.params,
            n_features: k.n_features,
            phase: k.phase,
        }
    }
}

impl TryFrom<KitNetState> for KitNet {
    type Error = Error;

    fn try_from(s: KitNetState) -> Result<Self> {
        s.params.validate()?;
        let n = s.n_features;
        let bad = |msg: String| Error::Model(format!("invalid saved KitNET: {msg}"));
        let mut phase = s.phase;
        let scratch = match &mut phase {
            Phase::Mapping(fm) => {
                fm.check(n).map_err(bad)?;
                Scratch::default()
            }
            Phase::Training(e) | Phase::Executing(e) => {
                check_ensemble(e, n).map_err(bad)?;
                Scratch::for_ensemble(e)
            }
        };
        Ok(KitNet {
            params: s.params,
            n_features: n,
            phase,
            scratch,
        })
    }
}

/// Checks that the groups partition `0..n` and every autoencoder matches them.
fn check_ensemble(e: &Ensemble, n: usize) -> Result<(), String> {
    // A claimed width the groups cannot cover is refused before allocating.
    if n > e.groups.iter().map(Vec::len).sum::<usize>() {
        return Err(format!("{n} features, but the groups hold fewer"));
    }
    let mut seen = vec![false; n];
    for g in &e.groups {
        for &f in g {
            match seen.get_mut(f) {
                Some(s) if !*s => *s = true,
                _ => return Err(format!("feature {f} is out of range or in two groups")),
            }
        }
    }
    if seen.iter().any(|s| !s) {
        return Err("some feature is in no group".into());
    }
    if e.groups.len() != e.layer.len() || e.output.visible() != e.layer.len() {
        return Err("group and autoencoder counts differ".into());
    }
    for (g, d) in e.groups.iter().zip(&e.layer) {
        d.check()?;
        if d.visible() != g.len() {
            return Err("an autoencoder's size differs from its group's".into());
        }
    }
    e.output.check()
}

impl KitNet {
    /// The parameters it was built with.
    pub fn params(&self) -> &KitNetParams {
        &self.params
    }

    /// Number of values per record.
    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// True once both grace periods are over: records are only scored.
    pub fn is_trained(&self) -> bool {
        matches!(self.phase, Phase::Executing(_))
    }

    /// The feature groups of the ensemble, once the mapping is done.
    pub fn groups(&self) -> Option<&[Vec<usize>]> {
        match &self.phase {
            Phase::Mapping(_) => None,
            Phase::Training(e) | Phase::Executing(e) => Some(&e.groups),
        }
    }

    /// Records still to learn from before scoring starts.
    pub fn grace_left(&self) -> u64 {
        let p = &self.params;
        match &self.phase {
            Phase::Mapping(fm) => p
                .fm_grace
                .saturating_sub(fm.count())
                .saturating_add(p.ad_grace),
            Phase::Training(e) => p.ad_grace.saturating_sub(e.trained),
            Phase::Executing(_) => 0,
        }
    }

    fn check_record(&self, x: &[f64]) -> Result<()> {
        if x.len() != self.n_features {
            return Err(Error::Data(format!(
                "KitNET expects {} features, the record has {}",
                self.n_features,
                x.len()
            )));
        }
        if let Some(i) = x.iter().position(|v| !v.is_finite()) {
            return Err(Error::Data(format!(
                "KitNET feature {i} is not finite ({})",
                x[i]
            )));
        }
        Ok(())
    }

    /// Learns from `x` during the grace periods (returning `None`), then
    /// scores it (returning `Some(rmse)`). Records of the wrong length or with
    /// a non-finite value are rejected with an error and not learned from.
    /// Allocation-free except once, when the mapping ends.
    pub fn process(&mut self, x: &[f64]) -> Result<Option<f64>> {
        self.check_record(x)?;
        match &mut self.phase {
            Phase::Mapping(fm) => {
                fm.update(x);
                if fm.count() >= self.params.fm_grace {
                    let ensemble = self.build_ensemble();
                    self.scratch = Scratch::for_ensemble(&ensemble);
                    self.phase = Phase::Training(ensemble);
                }
                Ok(None)
            }
            Phase::Training(e) => {
                let lr = self.params.learning_rate;
                let s = &mut self.scratch;
                for (k, (g, d)) in e.groups.iter().zip(&mut e.layer).enumerate() {
                    gather(x, g, &mut s.gathered);
                    s.rmse[k] = d.train(&s.gathered[..g.len()], lr, &mut s.dae);
                }
                e.output.train(&s.rmse, lr, &mut s.dae);
                e.trained += 1;
                if e.trained >= self.params.ad_grace {
                    let done =
                        std::mem::replace(&mut self.phase, Phase::Mapping(FeatureMapper::new(0)));
                    if let Phase::Training(e) = done {
                        self.phase = Phase::Executing(e);
                    }
                }
                Ok(None)
            }
            Phase::Executing(e) => Ok(Some(execute(e, x, &mut self.scratch, None))),
        }
    }

    /// Clusters the features and creates the autoencoders.
    fn build_ensemble(&self) -> Ensemble {
        let groups = match &self.phase {
            Phase::Mapping(fm) => fm.cluster(self.params.max_group),
            Phase::Training(e) | Phase::Executing(e) => e.groups.clone(),
        };
        let mut rng = ChaCha8Rng::seed_from_u64(self.params.seed);
        let hr = self.params.hidden_ratio;
        let layer = groups
            .iter()
            .map(|g| Dae::new(g.len(), hr, &mut rng))
            .collect();
        let output = Dae::new(groups.len(), hr, &mut rng);
        Ensemble {
            groups,
            layer,
            output,
            trained: 0,
        }
    }

    fn trained_ensemble(&self) -> Result<&Ensemble> {
        match &self.phase {
            Phase::Executing(e) => Ok(e),
            _ => Err(self.not_trained()),
        }
    }

    fn not_trained(&self) -> Error {
        Error::Model(format!(
            "KitNET is still in grace: {} records to learn",
            self.grace_left()
        ))
    }

    /// Scores `x` with a trained model, learning nothing. Allocates its
    /// buffers; [`process`](Self::process) is the allocation-free path.
    pub fn score(&self, x: &[f64]) -> Result<f64> {
        self.check_record(x)?;
        let e = self.trained_ensemble()?;
        Ok(execute(e, x, &mut Scratch::for_ensemble(e), None))
    }

    /// Scores `x` with a trained model and writes into `contrib` each
    /// feature's share of the ensemble's squared reconstruction error (the
    /// shares sum to 1, or are all 0 for a perfect reconstruction), so alerts
    /// can name the features that made the record anomalous.
    pub fn explain(&mut self, x: &[f64], contrib: &mut [f64]) -> Result<f64> {
        self.check_record(x)?;
        if contrib.len() != self.n_features {
            return Err(Error::Data(format!(
                "KitNET explain needs room for {} shares, got {}",
                self.n_features,
                contrib.len()
            )));
        }
        let e = match &self.phase {
            Phase::Executing(e) => e,
            _ => return Err(self.not_trained()),
        };
        let score = execute(e, x, &mut self.scratch, Some(contrib));
        let total: f64 = contrib.iter().sum();
        if total > 0.0 {
            contrib.iter_mut().for_each(|c| *c /= total);
        }
        Ok(score)
    }
}

/// Copies the features of group `g` from `x` into `out`.
fn gather(x: &[f64], g: &[usize], out: &mut [f64]) {
    for (o, &f) in out.iter_mut().zip(g) {
        *o = x[f];
    }
}

/// The output autoencoder's RMSE over the ensemble's RMSEs for `x`; when
/// `contrib` is given, each feature's squared error in its group goes there.
fn execute(e: &Ensemble, x: &[f64], s: &mut Scratch, mut contrib: Option<&mut [f64]>) -> f64 {
    for (k, (g, d)) in e.groups.iter().zip(&e.layer).enumerate() {
        gather(x, g, &mut s.gathered);
        s.rmse[k] = d.execute(&s.gathered[..g.len()], &mut s.dae);
        if let Some(c) = contrib.as_deref_mut() {
            for (&f, err) in g.iter().zip(s.dae.squared_errors(g.len())) {
                c[f] = err;
            }
        }
    }
    e.output.execute(&s.rmse, &mut s.dae)
}

/// KitNET with both grace periods as long as `x`: one pass over the rows maps
/// the features, a second trains the ensemble (see
/// [`Fit`](super::detector::Fit)).
pub(crate) fn fit(x: &Matrix, seed: u64) -> Result<Box<dyn Detector>> {
    let n = x.rows() as u64;
    let mut net = KitNetParams::new()
        .fm_grace(n)
        .ad_grace(n)
        .seed(seed)
        .build(x.cols())?;
    let mut row = vec![0.0f64; x.cols()];
    for _pass in 0..2 {
        for r in x.iter_rows() {
            row.iter_mut().zip(r).for_each(|(o, &v)| *o = f64::from(v));
            net.process(&row)?;
        }
    }
    net.trained_ensemble()?;
    Ok(Box::new(net))
}

impl Detector for KitNet {
    fn score_batch(&self, x: &Matrix, out: &mut [f32]) -> Result<()> {
        let e = self.trained_ensemble()?;
        if out.len() != x.rows() {
            return Err(Error::Data(format!(
                "KitNET: output has {} slots for {} rows",
                out.len(),
                x.rows()
            )));
        }
        let mut scratch = Scratch::for_ensemble(e);
        let mut row = vec![0.0f64; x.cols()];
        for (r, o) in x.iter_rows().zip(out) {
            row.iter_mut().zip(r).for_each(|(o, &v)| *o = f64::from(v));
            self.check_record(&row)?;
            *o = execute(e, &row, &mut scratch, None) as f32;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    /// A standard normal draw (Box-Muller).
    fn gauss(rng: &mut ChaCha8Rng) -> f64 {
        let u: f64 = 1.0 - rng.random::<f64>();
        let v: f64 = rng.random();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    /// `groups` latent gaussians, each driving `per` noisy features.
    struct Synth {
        rng: ChaCha8Rng,
        groups: usize,
        per: usize,
    }

    impl Synth {
        fn new(seed: u64, groups: usize, per: usize) -> Self {
            Synth {
                rng: ChaCha8Rng::seed_from_u64(seed),
                groups,
                per,
            }
        }

        fn next(&mut self) -> Vec<f64> {
            let mut x = Vec::with_capacity(self.groups * self.per);
            for g in 0..self.groups {
                let z = gauss(&mut self.rng);
                for j in 0..self.per {
                    let noise = gauss(&mut self.rng);
                    x.push((g + 1) as f64 * z + 0.1 * noise + j as f64);
                }
            }
            x
        }
    }

    fn trained(seed: u64) -> (KitNet, Synth) {
        let mut data = Synth::new(seed, 4, 5);
        let mut net = KitNetParams::new()
            .max_group(5)
            .fm_grace(500)
            .ad_grace(5_000)
            .build(20)
            .unwrap();
        for _ in 0..5_500 {
            assert_eq!(net.process(&data.next()).unwrap(), None);
        }
        (net, data)
    }

    #[test]
    fn phases_last_exactly_the_grace_periods() {
        let mut net = KitNetParams::new()
            .fm_grace(3)
            .ad_grace(2)
            .build(2)
            .unwrap();
        let mut out = Vec::new();
        for t in 0..7 {
            assert_eq!(net.grace_left(), 5u64.saturating_sub(t));
            out.push(net.process(&[t as f64, (t * t) as f64]).unwrap().is_some());
        }
        assert_eq!(out, [false, false, false, false, false, true, true]);
        assert!(net.is_trained());
    }

    #[test]
    fn outlier_scores_far_above_normal_records() {
        let (mut net, mut data) = trained(1);
        assert!(net.is_trained());
        let mut normal = Vec::new();
        for _ in 0..500 {
            normal.push(net.process(&data.next()).unwrap().unwrap());
        }
        normal.sort_by(f64::total_cmp);
        let p99 = normal[494];
        let mut odd = data.next();
        // Break the correlation inside the first group only.
        odd[0] += 8.0;
        odd[1] -= 8.0;
        let s = net.process(&odd).unwrap().unwrap();
        assert!(s > 3.0 * p99, "outlier {s} vs normal p99 {p99}");
    }

    #[test]
    fn mapper_groups_correlated_features() {
        let (net, _) = trained(2);
        let groups = net.groups().unwrap();
        assert!(groups.iter().all(|g| g.len() <= 5));
        let mut all = groups.concat();
        all.sort();
        assert_eq!(all, (0..20).collect::<Vec<_>>());
        // Features of one latent signal are 0..5, 5..10, ...
        for g in groups {
            assert!(g.iter().all(|f| f / 5 == g[0] / 5), "{groups:?}");
        }
    }

    #[test]
    fn explain_points_at_the_broken_features() {
        let (mut net, mut data) = trained(3);
        let mut odd = data.next();
        odd[12] += 50.0;
        let mut share = vec![0.0; 20];
        let s = net.explain(&odd, &mut share).unwrap();
        assert_eq!(s, net.score(&odd).unwrap());
        let top = (0..20).max_by(|&a, &b| share[a].total_cmp(&share[b]));
        assert_eq!(top, Some(12));
        assert!((share.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        assert!(net.explain(&odd, &mut [0.0; 3]).is_err());
    }

    #[test]
    fn same_seed_same_scores_other_seed_other_weights() {
        let (mut a, mut da) = trained(4);
        let (mut b, mut db) = trained(4);
        for _ in 0..50 {
            assert_eq!(
                a.process(&da.next()).unwrap(),
                b.process(&db.next()).unwrap()
            );
        }
        let mut c = KitNetParams::new()
            .fm_grace(5)
            .ad_grace(5)
            .seed(9)
            .build(3)
            .unwrap();
        let mut d = KitNetParams::new()
            .fm_grace(5)
            .ad_grace(5)
            .build(3)
            .unwrap();
        let mut r = ChaCha8Rng::seed_from_u64(0);
        for _ in 0..11 {
            let x: [f64; 3] = [r.random(), r.random(), r.random()];
            let (sc, sd) = (c.process(&x).unwrap(), d.process(&x).unwrap());
            if let (Some(sc), Some(sd)) = (sc, sd) {
                assert_ne!(sc, sd);
            }
        }
    }

    #[test]
    fn save_load_gives_identical_scores_in_every_phase() {
        let mut data = Synth::new(5, 3, 4);
        let mut net = KitNetParams::new()
            .fm_grace(100)
            .ad_grace(300)
            .build(12)
            .unwrap();
        for t in 0..600 {
            let x = data.next();
            if t % 97 == 0 {
                let json = serde_json::to_string(&net).unwrap();
                let mut copy: KitNet = serde_json::from_str(&json).unwrap();
                // Both go on identically from here.
                let mut twin = data.next();
                twin[0] += 0.5;
                assert_eq!(
                    copy.process(&twin).unwrap(),
                    net.clone().process(&twin).unwrap()
                );
                assert_eq!(serde_json::to_string(&copy).unwrap(), {
                    let mut n2 = net.clone();
                    n2.process(&twin).unwrap();
                    serde_json::to_string(&n2).unwrap()
                });
            }
            net.process(&x).unwrap();
        }
        assert!(net.is_trained());
        let json = serde_json::to_string(&net).unwrap();
        let copy: KitNet = serde_json::from_str(&json).unwrap();
        for _ in 0..20 {
            let x = data.next();
            assert_eq!(copy.score(&x).unwrap(), net.process(&x).unwrap().unwrap());
        }
    }

    #[test]
    fn malformed_records_and_states_are_errors() {
        let mut net = KitNetParams::new()
            .fm_grace(2)
            .ad_grace(2)
            .build(3)
            .unwrap();
        assert!(net.process(&[1.0, 2.0]).is_err());
        assert!(net.process(&[1.0, f64::NAN, 2.0]).is_err());
        assert!(net.process(&[1.0, f64::INFINITY, 2.0]).is_err());
        assert_eq!(net.grace_left(), 4, "rejected records are not learned");
        assert!(net.score(&[1.0, 2.0, 3.0]).is_err(), "not trained yet");
        for _ in 0..4 {
            net.process(&[1.0, 2.0, 3.0]).unwrap();
        }
        let json = serde_json::to_string(&net).unwrap();
        let broken = json.replacen("\"groups\":[[", "\"groups\":[[7,", 1);
        assert!(serde_json::from_str::<KitNet>(&broken).is_err());
        let broken = json.replacen("\"n_features\":3", "\"n_features\":4", 1);
        assert!(serde_json::from_str::<KitNet>(&broken).is_err());
        // A training count past the grace (edited file) neither panics nor
        // stalls: the next record ends the training.
        let mut net = KitNetParams::new()
            .fm_grace(2)
            .ad_grace(5)
            .build(3)
            .unwrap();
        for _ in 0..3 {
            net.process(&[1.0, 2.0, 3.0]).unwrap();
        }
        let json = serde_json::to_string(&net).unwrap();
        assert!(json.contains("\"trained\":1"), "{json}");
        let mut edited: KitNet =
            serde_json::from_str(&json.replace("\"trained\":1", "\"trained\":99")).unwrap();
        assert_eq!(edited.grace_left(), 0);
        assert_eq!(edited.process(&[1.0, 2.0, 3.0]).unwrap(), None);
        assert!(edited.is_trained());
        assert!(serde_json::from_str::<KitNet>("{\"params\":1}").is_err());
    }

    #[test]
    fn parameters_are_validated() {
        assert!(KitNetParams::new().max_group(0).build(3).is_err());
        assert!(KitNetParams::new().fm_grace(0).build(3).is_err());
        assert!(KitNetParams::new().ad_grace(0).build(3).is_err());
        assert!(KitNetParams::new().learning_rate(0.0).build(3).is_err());
        assert!(KitNetParams::new()
            .learning_rate(f64::NAN)
            .build(3)
            .is_err());
        assert!(KitNetParams::new().hidden_ratio(1.5).build(3).is_err());
        assert!(KitNetParams::new().build(0).is_err());
        let e = KitNetParams::new()
            .hidden_ratio(-1.0)
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("hidden_ratio"), "{e}");
    }

    #[test]
    fn kitnet_is_send_and_sync() {
        fn assert_auto<T: Send + Sync>() {}
        assert_auto::<KitNet>();
    }
}
