//! The numeric kernels under the dense networks: a safe wrapper around
//! `matrixmultiply::sgemm` and a fast `tanh`.
//!
//! Measured on this project's autoencoder, `tanh` from libm costs more than
//! the matrix products; the rational approximation below (Eigen's, accurate
//! to a few float ulps) vectorises and removes that bottleneck.

/// How an operand of [`gemm`] is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// As stored (row-major).
    N,
    /// Transposed.
    T,
}

/// `c = alpha * op(a) * op(b) + beta * c` for row-major matrices where
/// `op(a)` is `m x k`, `op(b)` is `k x n` and `c` is `m x n`.
///
/// # Panics
/// If a slice is shorter than its dimensions: a programming error.
#[allow(clippy::too_many_arguments)]
pub fn gemm(
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: &[f32],
    op_a: Op,
    b: &[f32],
    op_b: Op,
    beta: f32,
    c: &mut [f32],
) {
    assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n);
    // Row-major strides; a transposed operand swaps them.
    let (rsa, csa) = match op_a {
        Op::N => (k as isize, 1),
        Op::T => (1, m as isize),
    };
    let (rsb, csb) = match op_b {
        Op::N => (n as isize, 1),
        Op::T => (1, k as isize),
    };
    #[allow(unsafe_code)]
    // SAFETY: the assertion above guarantees that every index sgemm derives
    // from (m, k, n) and these strides lies inside `a`, `b` and `c`.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            alpha,
            a.as_ptr(),
            rsa,
            csa,
            b.as_ptr(),
            rsb,
            csb,
            beta,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

/// `tanh` by a 13/6 rational approximation, exact to about 1e-7 absolute.
#[inline]
pub fn fast_tanh(x: f32) -> f32 {
    // Beyond this bound tanh rounds to +-1 in f32.
    const CLAMP: f32 = 7.905_311;
    const A1: f32 = 4.893_524_6e-3;
    const A3: f32 = 6.372_619e-4;
    const A5: f32 = 1.485_722_4e-5;
    const A7: f32 = 5.122_297e-8;
    const A9: f32 = -8.604_672e-11;
    const A11: f32 = 2.000_188e-13;
    const A13: f32 = -2.760_768_5e-16;
    const B0: f32 = 4.893_525e-3;
    const B2: f32 = 2.268_434_7e-3;
    const B4: f32 = 1.185_347_1e-4;
    const B6: f32 = 1.198_258_4e-6;
    // Plain `*` and `+`, not `mul_add`: without a target FMA feature,
    // `mul_add` is a slow library call.
    let x = x.clamp(-CLAMP, CLAMP);
    let x2 = x * x;
    let p = x2 * A13 + A11;
    let p = x2 * p + A9;
    let p = x2 * p + A7;
    let p = x2 * p + A5;
    let p = x2 * p + A3;
    let p = x2 * p + A1;
    let q = x2 * B6 + B4;
    let q = x2 * q + B2;
    let q = x2 * q + B0;
    x * p / q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_tanh_matches_libm() {
        let mut worst = 0.0f32;
        for i in -20_000..=20_000 {
            let x = i as f32 / 1000.0;
            worst = worst.max((fast_tanh(x) - x.tanh()).abs());
        }
        assert!(worst < 2e-6, "max error {worst}");
        assert_eq!(fast_tanh(f32::INFINITY), fast_tanh(100.0));
    }

    fn naive(m: usize, k: usize, n: usize, a: &[f32], b: &[f32]) -> Vec<f32> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
            }
        }
        c
    }

    fn transpose(rows: usize, cols: usize, x: &[f32]) -> Vec<f32> {
        let mut t = vec![0.0; x.len()];
        for i in 0..rows {
            for j in 0..cols {
                t[j * rows + i] = x[i * cols + j];
            }
        }
        t
    }

    #[test]
    fn gemm_handles_every_transpose() {
        let (m, k, n) = (3, 4, 5);
        let a: Vec<f32> = (0..m * k).map(|v| v as f32 * 0.5 - 2.0).collect();
        let b: Vec<f32> = (0..k * n).map(|v| (v % 7) as f32 - 3.0).collect();
        let want = naive(m, k, n, &a, &b);
        let at = transpose(m, k, &a);
        let bt = transpose(k, n, &b);
        for (aa, oa, bb, ob) in [
            (&a, Op::N, &b, Op::N),
            (&at, Op::T, &b, Op::N),
            (&a, Op::N, &bt, Op::T),
            (&at, Op::T, &bt, Op::T),
        ] {
            let mut c = vec![1.0; m * n];
            gemm(m, k, n, 1.0, aa, oa, bb, ob, 0.0, &mut c);
            assert_eq!(c, want, "{oa:?} {ob:?}");
        }
    }
}
