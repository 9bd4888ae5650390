//! KitNET's feature mapper, as Kitsune-py's `corClust`: incremental
//! correlation statistics over the grace records, then single-linkage
//! agglomerative clustering of the features by correlation distance, and the
//! dendrogram cut into clusters of at most `m` features.

use serde::{Deserialize, Serialize};

/// Stands in for a zero product of standard deviations, as Kitsune-py does.
const TINY: f64 = 1e-100;

/// Incremental correlation statistics over `n` features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct FeatureMapper {
    n: usize,
    count: u64,
    /// Linear sum of each feature.
    sum: Vec<f64>,
    /// Sum of squared residuals of each feature.
    sq_res: Vec<f64>,
    /// Sum of residual products, upper triangle without the diagonal,
    /// row-major (`i < j`).
    cross: Vec<f64>,
    /// Per-record buffer of residuals.
    #[serde(skip)]
    res: Vec<f64>,
}

impl FeatureMapper {
    /// Empty statistics over `n` features.
    pub(super) fn new(n: usize) -> Self {
        FeatureMapper {
            n,
            count: 0,
            sum: vec![0.0; n],
            sq_res: vec![0.0; n],
            cross: vec![0.0; n * n.saturating_sub(1) / 2],
            res: vec![0.0; n],
        }
    }

    /// Records seen.
    pub(super) fn count(&self) -> u64 {
        self.count
    }

    /// Checks the buffer lengths of a loaded state and sizes the scratch.
    pub(super) fn check(&mut self, n: usize) -> Result<(), String> {
        let ok = self.n == n
            && self.sum.len() == n
            && self.sq_res.len() == n
            && n.checked_mul(n.saturating_sub(1)).map(|c| c / 2) == Some(self.cross.len());
        if !ok {
            return Err(format!(
                "feature mapper statistics do not match {n} features"
            ));
        }
        self.res = vec![0.0; n];
        Ok(())
    }

    /// Adds one record of `n` values (Kitsune-py's `corClust.update`: the
    /// residual is taken against the running mean including this record).
    pub(super) fn update(&mut self, x: &[f64]) {
        self.count += 1;
        let count = self.count as f64;
        for (i, &v) in x.iter().enumerate().take(self.n) {
            self.sum[i] += v;
            let r = v - self.sum[i] / count;
            self.res[i] = r;
            self.sq_res[i] += r * r;
        }
        let mut k = 0;
        for i in 0..self.n {
            let ri = self.res[i];
            let row = &mut self.cross[k..k + self.n - i - 1];
            for (c, rj) in row.iter_mut().zip(&self.res[i + 1..]) {
                *c += ri * rj;
            }
            k += self.n - i - 1;
        }
    }

    /// Correlation distance `1 - r` of every pair `i < j`, condensed
    /// row-major as scipy's `pdist`, negatives clipped to zero.
    fn distances(&self) -> Vec<f64> {
        let sd: Vec<f64> = self.sq_res.iter().map(|s| s.sqrt()).collect();
        let mut d = Vec::with_capacity(self.cross.len());
        let mut k = 0;
        for i in 0..self.n {
            for j in i + 1..self.n {
                let mut denom = sd[i] * sd[j];
                if denom == 0.0 {
                    denom = TINY;
                }
                let dist = 1.0 - self.cross[k] / denom;
                // Unlike numpy, never let a NaN reach the clustering.
                d.push(if dist.is_finite() { dist.max(0.0) } else { 1.0 });
                k += 1;
            }
        }
        d
    }

    /// Clusters the features into groups of at most `max_group`; every
    /// feature lands in exactly one group, in dendrogram pre-order.
    pub(super) fn cluster(&self, max_group: usize) -> Vec<Vec<usize>> {
        let max_group = max_group.clamp(1, self.n.max(1));
        if self.n <= 1 {
            return vec![(0..self.n).collect()];
        }
        let tree = Dendrogram::single_linkage(&self.distances(), self.n);
        tree.cut(max_group)
    }
}

/// A binary merge tree over `n` leaves, as scipy's `to_tree`: node `n + i`
/// is the `i`-th merge, `left` the smaller of the two cluster ids.
struct Dendrogram {
    n: usize,
    /// `(left, right, count)` of each merge.
    merges: Vec<(usize, usize, usize)>,
}

impl Dendrogram {
    /// Single linkage over a condensed distance matrix, as scipy's
    /// `mst_single_linkage`: Prim's algorithm from feature 0, edges stably
    /// sorted by distance, then labelled with a union-find.
    fn single_linkage(dist: &[f64], n: usize) -> Self {
        let at = |i: usize, j: usize| {
            let (a, b) = if i < j { (i, j) } else { (j, i) };
            dist[n * a - a * (a + 1) / 2 + (b - a - 1)]
        };
        let mut merged = vec![false; n];
        let mut best = vec![f64::INFINITY; n];
        let mut edges = Vec::with_capacity(n - 1);
        let mut x = 0;
        for _ in 0..n - 1 {
            merged[x] = true;
            let mut y = None;
            let mut current = f64::INFINITY;
            for i in (0..n).filter(|&i| !merged[i]) {
                best[i] = best[i].min(at(x, i));
                if y.is_none() || best[i] < current {
                    y = Some(i);
                    current = best[i];
                }
            }
            // n - 1 rounds over n nodes always leave one unmerged node.
            let Some(y) = y else { break };
            edges.push((x, y, current));
            x = y;
        }
        edges.sort_by(|a, b| a.2.total_cmp(&b.2));

        let mut parent: Vec<usize> = (0..2 * n - 1).collect();
        let mut size = vec![1; 2 * n - 1];
        let mut merges = Vec::with_capacity(n - 1);
        for (k, &(a, b, _)) in edges.iter().enumerate() {
            let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
            let label = n + k;
            parent[ra] = label;
            parent[rb] = label;
            size[label] = size[ra] + size[rb];
            merges.push((ra.min(rb), ra.max(rb), size[label]));
        }
        Dendrogram { n, merges }
    }

    fn count(&self, node: usize) -> usize {
        if node < self.n {
            1
        } else {
            self.merges[node - self.n].2
        }
    }

    /// Leaves under `node`, left to right (scipy's `pre_order`).
    fn leaves(&self, node: usize, out: &mut Vec<usize>) {
        let mut stack = vec![node];
        while let Some(v) = stack.pop() {
            if v < self.n {
                out.push(v);
            } else {
                let (l, r, _) = self.merges[v - self.n];
                stack.push(r);
                stack.push(l);
            }
        }
    }

    /// Kitsune-py's `__breakClust__`: split nodes until every cluster has at
    /// most `max` leaves, left branches first.
    fn cut(&self, max: usize) -> Vec<Vec<usize>> {
        let root = self.n + self.merges.len() - 1;
        let mut groups = Vec::new();
        let mut stack = vec![root];
        while let Some(v) = stack.pop() {
            if self.count(v) <= max {
                let mut g = Vec::with_capacity(self.count(v));
                self.leaves(v, &mut g);
                groups.push(g);
            } else {
                let (l, r, _) = self.merges[v - self.n];
                stack.push(r);
                stack.push(l);
            }
        }
        groups
    }
}

fn find(parent: &mut [usize], mut x: usize) -> usize {
    let mut root = x;
    while parent[root] != root {
        root = parent[root];
    }
    while parent[x] != root {
        let next = parent[x];
        parent[x] = root;
        x = next;
    }
    root
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feature i follows one of `k` hidden signals, so features sharing a
    /// signal are perfectly correlated.
    fn mapper(n: usize, k: usize, records: usize) -> FeatureMapper {
        let mut fm = FeatureMapper::new(n);
        let mut x = vec![0.0; n];
        for t in 0..records {
            for (i, v) in x.iter_mut().enumerate() {
                let s = i % k;
                *v = ((t * (s + 2)) as f64 * 0.37 + s as f64).sin() * (1.0 + i as f64);
            }
            fm.update(&x);
        }
        fm
    }

    fn sorted(mut groups: Vec<Vec<usize>>) -> Vec<Vec<usize>> {
        for g in &mut groups {
            g.sort();
        }
        groups.sort();
        groups
    }

    #[test]
    fn correlated_features_share_a_group() {
        let groups = sorted(mapper(9, 3, 500).cluster(3));
        assert_eq!(groups, vec![vec![0, 3, 6], vec![1, 4, 7], vec![2, 5, 8]]);
    }

    #[test]
    fn groups_are_bounded_and_partition_the_features() {
        for (n, m) in [(1, 10), (2, 1), (17, 4), (30, 10), (30, 1), (5, 100)] {
            let groups = mapper(n, 4.min(n), 200).cluster(m);
            assert!(groups.iter().all(|g| !g.is_empty() && g.len() <= m.max(1)));
            let mut all: Vec<usize> = groups.concat();
            all.sort();
            assert_eq!(all, (0..n).collect::<Vec<_>>(), "n={n} m={m}");
        }
    }

    #[test]
    fn constant_and_empty_inputs_still_cluster() {
        let mut fm = FeatureMapper::new(4);
        for _ in 0..10 {
            fm.update(&[1.0, 1.0, 1.0, 1.0]);
        }
        let mut all = fm.cluster(2).concat();
        all.sort();
        assert_eq!(all, vec![0, 1, 2, 3]);
        // No record at all: every distance is 1.
        assert_eq!(FeatureMapper::new(3).cluster(3).concat().len(), 3);
    }

    #[test]
    fn distances_match_pearson() {
        let fm = mapper(4, 2, 300);
        let d = fm.distances();
        // Features 0 and 2 follow the same signal: distance ~0.
        assert!(d[1] < 1e-9, "{d:?}");
        assert!(d.iter().all(|v| (0.0..=2.0).contains(v)));
    }

    #[test]
    fn check_rejects_wrong_sizes() {
        let mut fm = FeatureMapper::new(4);
        assert!(fm.check(4).is_ok());
        assert!(fm.check(5).is_err());
        fm.cross.pop();
        assert!(fm.check(4).is_err());
    }
}
