//! `2^y` with the same bits as the C library's `pow(2, y)`, at a fraction of
//! its cost.
//!
//! Kitsune-py decays its statistics by `math.pow(2, -lambda * dt)`, i.e.
//! glibc's `pow`, which is not always correctly rounded (worst case 0.54 ulp;
//! `exp2` rounds some factors differently). [`pow2`] returns glibc's bits:
//! it computes `2^y` far more accurately than one ulp, and when that value
//! is far enough from a rounding midpoint for *every* function within glibc's
//! error bound to round it the same way, returns it rounded; otherwise (near
//! a midpoint, or outside the range the kernel handles) it calls `pow`
//! itself ([`libm_pow2`]). The same idea as `incstat::sq`.
//!
//! # Kernel
//!
//! `y = k/256 + r` with `k = round(256 y)` and `|r| <= 2^-9` exact; with
//! `k = 256 e + j`, `2^y = 2^e * 2^(j/256) * 2^r`. `2^(j/256)` comes from a
//! table of double-doubles `(T_hi, T_lo)` within 2^-106
//! (`scripts/gen_pow2_table.py`, exact rational arithmetic), `p = 2^r - 1`
//! from its Taylor polynomial of degree 5 (truncation below 2^-66, 2^-57
//! relative), then `t = T_hi p + T_lo`, `hi = T_hi + t` rounded and
//! `lo = (T_hi - hi) + t` (exact: Fast2Sum). `hi + lo` is the scaled result
//! `2^(j/256 + r)` in [0.997, 2.006], and `hi * 2^e` the answer. Every step
//! runs on all lanes of [`pow2_lanes`] at once (lane-indexed loops the
//! compiler turns into SSE2 pairs), the check included, so the only branch
//! is the rare fallback.
//!
//! # Error bound and margin
//!
//! Ours, `|2^(j/256 + r) - (hi + lo)| <= 2^-50 |t| + 2^-100`: `p` is within
//! 2.1 2^-53 |p| (C1 = ln 2 rounded: 0.30 2^-53 relative; the rounding of
//! `C1 + r q`, 0.71 2^-53; of `r * (..)`, 2^-53; truncation 0.06 2^-53);
//! `T_hi p` adds a rounding (2^-53), `T_lo p` is left out (<= 2^-53
//! `|T_hi p|`), `+ T_lo` rounds once more (2^-53 |t|); with `|T_hi p| <= |t| +
//! 2^-52` that sums to `2^-53 (5.1 |t| + 4.1 2^-53)`. A test checks the
//! bound against a double-double reference.
//!
//! glibc's (`sysdeps/ieee754/dbl-64/e_pow.c`, Arm's optimized-routines
//! algorithm): the result is one rounding of `scale * (1 + tmp)`, whose error
//! before that rounding is, in ulps of the result,
//! - the exp part: stated "0.509 ULP (0.511 without fma)", 0.5 being the
//!   final rounding, so 0.0089 (0.0106) ulp; its rounding errors are
//!   proportional to `|tmp|`, and when `|y| < 1/256` (glibc's own reduction
//!   gives `k = 0`, `scale = 1`, `tmp ~ y ln 2`) they are below 2.72 |y| ulp
//!   (the 0.0106 ulp at `|tmp| = ln 2 / 256`, scaled down);
//! - the log part: `log(2)` is computed to 1.5 2^-68 relative, so
//!   `y log(2)` is off by `|y| ln 2 1.5 2^-68`, i.e. 3.2e-5 |y| ulp;
//! - the polynomial's approximation error, 1.6 2^-66 absolute: 0.0002 ulp.
//!
//! The allowance is `0.0003 + min(4 |y|, 0.016) + 3.5e-5 |y|` ulp of `hi`
//! (ulps of the exact value are never larger while the test below holds):
//! the exp part is taken 1.5 times its stated no-fma bound because glibc
//! gets close to it: over the 10^9 arguments of the ignored test, glibc
//! misrounds 0.05 % of them, the farthest 0.0095 ulp from the midpoint
//! (above the stated fma figure 0.0089, below 0.0106), at most 0.54 of the
//! allowance at that argument. The fast path is
//! taken when `|lo| + 2^-50 |t| + allowance` is below half the gap from `hi`
//! to its nearer neighbour (a quarter ulp below a power of two): glibc's
//! value before its final rounding then lies strictly between the two
//! midpoints around `hi`, so glibc returns `hi`. The allowance is 0.0163 to
//! 0.0174 ulp for the usual decay arguments (1/256 < |y| < 30), less for
//! smaller |y|, 0.052 ulp at |y| = 1020; the fast path is refused for 1 to
//! 2.5 % of the realistic arguments per rate (tests, `benches/pow2.rs`).
//!
//! The bound is glibc's: with another C library the fast path matches its
//! `pow` only if that `pow` is as accurate (musl's is the same algorithm);
//! the tests compare with the `pow` actually linked.
//!
//! Range of the fast path: `|y| <= 1020`, where the result is a normal
//! double, and `y <= -1076` (NaN excluded), where it is +0 as glibc's
//! underflow. Subnormal results, overflow, NaN and `+inf` fall back.

use std::hint::black_box;

/// Table size: `2^(j/N)` for `j` in `0..N`.
const N: f64 = 256.0;

/// `1.5 * 2^52`: adding it to `|x| < 2^51` rounds `x` to an integer, held
/// in the low bits of the sum.
const SHIFT: f64 = 6_755_399_441_055_744.0;

/// Largest `|y|` of the fast path: results stay normal (glibc's special
/// case for `|y ln 2| >= 512` rounds normal results the same way), and
/// `2^e` fits the exponent field.
const Y_MAX: f64 = 1020.0;

/// `2^y` rounds to +0 for `y <= UNDERFLOW` (at most a quarter of the
/// smallest subnormal, far from the midpoint 2^-1075).
const UNDERFLOW: f64 = -1076.0;

/// Bound on the kernel's error per unit of `|t|` (2^-50).
const KERNEL_ERR: f64 = 4.0 * f64::EPSILON;

/// glibc's error before rounding, in ulps: constant part (polynomial error
/// plus the kernel's 2^-100 and slack).
const LIBM_ERR_BASE: f64 = 3e-4;
/// ... exp part per unit of `|y|`, when `|y| < 1/256`.
const LIBM_ERR_SMALL: f64 = 4.0;
/// ... exp part, worst case.
const LIBM_ERR_EXP: f64 = 0.016;
/// ... log part per unit of `|y|`.
const LIBM_ERR_LOG: f64 = 3.5e-5;

const MANTISSA: u64 = (1 << 52) - 1;
const EXPONENT: u64 = 0x7ff << 52;

// ln(2)^i / i! (scripts/gen_pow2_table.py; C1 is the double nearest ln 2).
const C1: f64 = std::f64::consts::LN_2;
const C2: f64 = 0.24022650695910072;
const C3: f64 = 0.05550410866482158;
const C4: f64 = 0.009618129107628477;
const C5: f64 = 0.0013333558146428443;

/// `pow(2, y)` from the C library: the reference [`pow2`] reproduces, and
/// its fallback. `black_box` keeps LLVM from turning it into `exp2(y)`,
/// which rounds differently.
#[inline]
pub fn libm_pow2(y: f64) -> f64 {
    black_box(2f64).powf(y)
}

/// `2^y`, bit for bit as [`libm_pow2`] (glibc's `pow(2, y)`), for every `y`
/// (NaN and infinities included).
#[inline]
pub fn pow2(y: f64) -> f64 {
    match kernel(&[y]) {
        ([v], [true]) => v,
        _ => libm_pow2(y),
    }
}

/// [`pow2`] of every lane: the kernel runs on all lanes without branching
/// (the compiler pairs lanes in SIMD registers), then, in the rare event
/// that it cannot vouch for some lane, those go to the C library.
#[inline]
pub fn pow2_lanes<const L: usize>(ys: [f64; L]) -> [f64; L] {
    let (v, ok) = kernel(&ys);
    if ok.iter().fold(true, |all, &ok| all & ok) {
        v
    } else {
        fall_back(ys, v, ok)
    }
}

/// `2^y` when the fast path vouches for its bits (equal to [`libm_pow2`]),
/// `None` when [`pow2`] would call the C library. A benchmark hook.
#[doc(hidden)]
pub fn pow2_fast(y: f64) -> Option<f64> {
    match kernel(&[y]) {
        ([v], [true]) => Some(v),
        _ => None,
    }
}

/// The C library's result for the lanes the kernel did not vouch for, out
/// of the hot path.
#[cold]
#[inline(never)]
fn fall_back<const L: usize>(ys: [f64; L], mut v: [f64; L], ok: [bool; L]) -> [f64; L] {
    for ((v, y), ok) in v.iter_mut().zip(ys).zip(ok) {
        if !ok {
            *v = libm_pow2(y);
        }
    }
    v
}

/// `2^y` per lane from the table and polynomial, and whether it is
/// certainly glibc's result (see the module documentation for the bound).
#[inline(always)]
#[allow(clippy::needless_range_loop)] // lane-indexed loops vectorize
fn kernel<const L: usize>(ys: &[f64; L]) -> ([f64; L], [bool; L]) {
    let a = approx(ys);
    let (mut v, mut ok) = ([0.0; L], [false; L]);
    for i in 0..L {
        let (y, hi) = (ys[i], a.hi[i]);
        let bits = hi.to_bits();
        let ulp = f64::from_bits((bits & EXPONENT).wrapping_sub(52 << 52));
        // Half the gap to the nearer neighbour: a power of two has a closer
        // one below.
        let half_gap = ulp * if bits & MANTISSA == 0 { 0.25 } else { 0.5 };
        let ay = y.abs();
        let slack = a.lo[i].abs() + KERNEL_ERR * a.t[i].abs() + libm_err(ay) * ulp;
        // hi * 2^e: exact, the result being normal on the fast path.
        let e = (a.k[i] >> 8) as u64;
        // Far below the smallest subnormal: +0, as glibc's underflow (a
        // mask, not a branch).
        let zero = y <= UNDERFLOW;
        let keep = u64::from(!zero).wrapping_neg();
        v[i] = f64::from_bits(bits.wrapping_add(e << 52) & keep);
        ok[i] = ((ay <= Y_MAX) & (slack < half_gap)) | zero;
    }
    (v, ok)
}

/// glibc's error before its final rounding, in ulps of the result, for
/// `|y| = ay` (module documentation).
#[inline(always)]
fn libm_err(ay: f64) -> f64 {
    LIBM_ERR_BASE + (LIBM_ERR_SMALL * ay).min(LIBM_ERR_EXP) + LIBM_ERR_LOG * ay
}

/// The kernel's result before the check, per lane: `2^y` is `2^(k >> 8)`
/// times `hi + lo`, which is within `KERNEL_ERR * |t| + 2^-100` of the
/// exact scaled value.
struct Approx<const L: usize> {
    k: [i64; L],
    hi: [f64; L],
    lo: [f64; L],
    t: [f64; L],
}

/// The kernel's arithmetic (module documentation), one step for all lanes
/// at a time.
#[inline(always)]
#[allow(clippy::needless_range_loop)] // lane-indexed loops vectorize
fn approx<const L: usize>(ys: &[f64; L]) -> Approx<L> {
    let mut a = Approx {
        k: [0; L],
        hi: [0.0; L],
        lo: [0.0; L],
        t: [0.0; L],
    };
    let mut r = [0.0; L];
    for i in 0..L {
        let kd = ys[i] * N + SHIFT;
        // k = round(256 y); garbage when |y| is out of range, then not
        // trusted.
        a.k[i] = kd.to_bits().wrapping_sub(SHIFT.to_bits()) as i64;
        // Exact: kd - SHIFT is k, k / 256 is exact and within a factor 2
        // of y.
        r[i] = ys[i] - (kd - SHIFT) * (1.0 / N);
    }
    let (mut th, mut tl) = ([0.0; L], [0.0; L]);
    for i in 0..L {
        let (h, l) = TABLE[(a.k[i] & 0xff) as usize];
        (th[i], tl[i]) = (f64::from_bits(h), f64::from_bits(l));
    }
    for i in 0..L {
        let r = r[i];
        // Estrin's scheme for the small terms (shorter dependency chain),
        // Horner for the leading ones (their rounding is what the bound
        // counts).
        let r2 = r * r;
        let q = (C2 + r * C3) + r2 * (C4 + r * C5);
        let p = r * (C1 + r * q);
        let t = th[i] * p + tl[i];
        let hi = th[i] + t;
        a.t[i] = t;
        a.hi[i] = hi;
        a.lo[i] = (th[i] - hi) + t;
    }
    a
}

/// `2^(j/256)` as a double-double: bits of the nearest double and of the
/// nearest double to the remainder (scripts/gen_pow2_table.py).
static TABLE: [(u64, u64); 256] = [
    (0x3ff0000000000000, 0x0000000000000000),
    (0x3ff00b1afa5abcbf, 0xbc84f6b2a7609f71),
    (0x3ff0163da9fb3335, 0x3c9b61299ab8cdb7),
    (0x3ff02168143b0281, 0xbc82bf310fc54eb6),
    (0x3ff02c9a3e778061, 0xbc719083535b085d),
    (0x3ff037d42e11bbcc, 0x3c656811eeade11a),
    (0x3ff04315e86e7f85, 0xbc90a31c1977c96e),
    (0x3ff04e5f72f654b1, 0x3c84c3793aa0d08d),
    (0x3ff059b0d3158574, 0x3c8d73e2a475b465),
    (0x3ff0650a0e3c1f89, 0xbc95cb7b5799c397),
    (0x3ff0706b29ddf6de, 0xbc8c91dfe2b13c27),
    (0x3ff07bd42b72a836, 0x3c83233454458700),
    (0x3ff0874518759bc8, 0x3c6186be4bb284ff),
    (0x3ff092bdf66607e0, 0xbc968063800a3fd1),
    (0x3ff09e3ecac6f383, 0x3c91487818316136),
    (0x3ff0a9c79b1f3919, 0x3c85d16c873d1d38),
    (0x3ff0b5586cf9890f, 0x3c98a62e4adc610b),
    (0x3ff0c0f145e46c85, 0x3c94f98906d21cef),
    (0x3ff0cc922b7247f7, 0x3c901edc16e24f71),
    (0x3ff0d83b23395dec, 0xbc9bc14de43f316a),
    (0x3ff0e3ec32d3d1a2, 0x3c403a1727c57b53),
    (0x3ff0efa55fdfa9c5, 0xbc949db9bc54021b),
    (0x3ff0fb66affed31b, 0xbc6b9bedc44ebd7b),
    (0x3ff1073028d7233e, 0x3c8d46eb1692fdd5),
    (0x3ff11301d0125b51, 0xbc96c51039449b3a),
    (0x3ff11edbab5e2ab6, 0xbc9ca454f703fb72),
    (0x3ff12abdc06c31cc, 0xbc51b514b36ca5c7),
    (0x3ff136a814f204ab, 0xbc67108fba48dcf0),
    (0x3ff1429aaea92de0, 0xbc932fbf9af1369e),
    (0x3ff14e95934f312e, 0xbc8b91e839bf44ab),
    (0x3ff15a98c8a58e51, 0x3c82406ab9eeab0a),
    (0x3ff166a45471c3c2, 0x3c58f23b82ea1a32),
    (0x3ff172b83c7d517b, 0xbc819041b9d78a76),
    (0x3ff17ed48695bbc0, 0x3c709e3fe2ac5a64),
    (0x3ff18af9388c8dea, 0xbc911023d1970f6c),
    (0x3ff1972658375d2f, 0x3c94aadd85f17e08),
    (0x3ff1a35beb6fcb75, 0x3c8e5b4c7b4968e4),
    (0x3ff1af99f8138a1c, 0x3c97bf85a4b69280),
    (0x3ff1bbe084045cd4, 0xbc995386352ef607),
    (0x3ff1c82f95281c6b, 0x3c9009778010f8c9),
    (0x3ff1d4873168b9aa, 0x3c9e016e00a2643c),
    (0x3ff1e0e75eb44027, 0xbc96fdd8088cb6de),
    (0x3ff1ed5022fcd91d, 0xbc91df98027bb78c),
    (0x3ff1f9c18438ce4d, 0xbc9bf524a097af5c),
    (0x3ff2063b88628cd6, 0x3c8dc775814a8495),
    (0x3ff212be3578a819, 0x3c93592d2cfcaac9),
    (0x3ff21f49917ddc96, 0x3c82a97e9494a5ee),
    (0x3ff22bdda27912d1, 0x3c8d34fb5577d69f),
    (0x3ff2387a6e756238, 0x3c99b07eb6c70573),
    (0x3ff2451ffb82140a, 0x3c8acfcc911ca996),
    (0x3ff251ce4fb2a63f, 0x3c8ac155bef4f4a4),
    (0x3ff25e85711ece75, 0x3c93e1a24ac31b2c),
    (0x3ff26b4565e27cdd, 0x3c82bd339940e9d9),
    (0x3ff2780e341ddf29, 0x3c9e067c05f9e76c),
    (0x3ff284dfe1f56381, 0xbc9a4c3a8c3f0d7e),
    (0x3ff291ba7591bb70, 0xbc82cc7228401cbd),
    (0x3ff29e9df51fdee1, 0x3c8612e8afad1255),
    (0x3ff2ab8a66d10f13, 0xbc995743191690a7),
    (0x3ff2b87fd0dad990, 0xbc410adcd6381aa4),
    (0x3ff2c57e39771b2f, 0xbc950145a6eb5124),
    (0x3ff2d285a6e4030b, 0x3c90024754db41d5),
    (0x3ff2df961f641589, 0x3c9d16cffbbce198),
    (0x3ff2ecafa93e2f56, 0x3c71ca0f45d52383),
    (0x3ff2f9d24abd886b, 0xbc653c55532bda93),
    (0x3ff306fe0a31b715, 0x3c86f46ad23182e4),
    (0x3ff31432edeeb2fd, 0x3c8959a3f3f3fcd1),
    (0x3ff32170fc4cd831, 0x3c8a9ce78e18047c),
    (0x3ff32eb83ba8ea32, 0xbc9c45e83cb4f318),
    (0x3ff33c08b26416ff, 0x3c932721843659a6),
    (0x3ff3496266e3fa2d, 0xbc835a75930881a4),
    (0x3ff356c55f929ff1, 0xbc8b5cee5c4e4628),
    (0x3ff36431a2de883b, 0xbc8c3144a06cb85e),
    (0x3ff371a7373aa9cb, 0xbc963aeabf42eae2),
    (0x3ff37f26231e754a, 0xbc99f5ca9eceb23c),
    (0x3ff38cae6d05d866, 0xbc9e958d3c9904bd),
    (0x3ff39a401b7140ef, 0xbc99a9a5fc8e2934),
    (0x3ff3a7db34e59ff7, 0xbc75e436d661f5e3),
    (0x3ff3b57fbfec6cf4, 0x3c954c66e26fff18),
    (0x3ff3c32dc313a8e5, 0xbc9efff8375d29c3),
    (0x3ff3d0e544ede173, 0x3c7fe8d08c284c71),
    (0x3ff3dea64c123422, 0x3c8ada0911f09ebc),
    (0x3ff3ec70df1c5175, 0xbc8af6637b8c9bca),
    (0x3ff3fa4504ac801c, 0xbc97d023f956f9f3),
    (0x3ff40822c367a024, 0x3c8bddf8b6f4d048),
    (0x3ff4160a21f72e2a, 0xbc5ef3691c309278),
    (0x3ff423fb2709468a, 0xbc98462dc0b314dd),
    (0x3ff431f5d950a897, 0xbc81c7dde35f7999),
    (0x3ff43ffa3f84b9d4, 0x3c8880be9704c003),
    (0x3ff44e086061892d, 0x3c489b7a04ef80d0),
    (0x3ff45c2042a7d232, 0xbc68641982fb1f8e),
    (0x3ff46a41ed1d0057, 0x3c9c944bd1648a76),
    (0x3ff4786d668b3237, 0xbc9c20f0ed445733),
    (0x3ff486a2b5c13cd0, 0x3c73c1a3b69062f0),
    (0x3ff494e1e192aed2, 0xbc83b2895e499ea0),
    (0x3ff4a32af0d7d3de, 0x3c99cb62f3d1be56),
    (0x3ff4b17dea6db7d7, 0xbc8125b87f2897f0),
    (0x3ff4bfdad5362a27, 0x3c7d4397afec42e2),
    (0x3ff4ce41b817c114, 0x3c905e29690abd5d),
    (0x3ff4dcb299fddd0d, 0x3c98ecdbbc6a7833),
    (0x3ff4eb2d81d8abff, 0xbc95257d2e5d7a52),
    (0x3ff4f9b2769d2ca7, 0xbc94b309d25957e3),
    (0x3ff508417f4531ee, 0x3c7a249b49b7465f),
    (0x3ff516daa2cf6642, 0xbc8f768569bd93ef),
    (0x3ff5257de83f4eef, 0xbc7c998d43efef71),
    (0x3ff5342b569d4f82, 0xbc807abe1db13cad),
    (0x3ff542e2f4f6ad27, 0x3c87926d192d5f7e),
    (0x3ff551a4ca5d920f, 0xbc8d689cefede59b),
    (0x3ff56070dde910d2, 0xbc90fb6e168eebf0),
    (0x3ff56f4736b527da, 0x3c99bb2c011d93ad),
    (0x3ff57e27dbe2c4cf, 0xbc90b98c8a57b9c4),
    (0x3ff58d12d497c7fd, 0x3c8295e15b9a1de8),
    (0x3ff59c0827ff07cc, 0xbc97e2cee467e60f),
    (0x3ff5ab07dd485429, 0x3c96324c054647ad),
    (0x3ff5ba11fba87a03, 0xbc9b77a14c233e1a),
    (0x3ff5c9268a5946b7, 0x3c3c4b1b816986a2),
    (0x3ff5d84590998b93, 0xbc9cd6a7a8b45643),
    (0x3ff5e76f15ad2148, 0x3c9ba6f93080e65e),
    (0x3ff5f6a320dceb71, 0xbc89eadde3cdcf92),
    (0x3ff605e1b976dc09, 0xbc93e2429b56de47),
    (0x3ff6152ae6cdf6f4, 0x3c9e4b3e4ab84c27),
    (0x3ff6247eb03a5585, 0xbc9383c17e40b497),
    (0x3ff633dd1d1929fd, 0x3c984710beb964e5),
    (0x3ff6434634ccc320, 0xbc8c483c759d8933),
    (0x3ff652b9febc8fb7, 0xbc9ae3d5c9a73e09),
    (0x3ff6623882552225, 0xbc9bb60987591c34),
    (0x3ff671c1c70833f6, 0xbc8e8732586c6134),
    (0x3ff68155d44ca973, 0x3c6038ae44f73e65),
    (0x3ff690f4b19e9538, 0x3c8804bd9aeb445d),
    (0x3ff6a09e667f3bcd, 0xbc9bdd3413b26456),
    (0x3ff6b052fa75173e, 0x3c7a38f52c9a9d0e),
    (0x3ff6c012750bdabf, 0xbc72895667ff0b0d),
    (0x3ff6cfdcddd47645, 0x3c9c7aa9b6f17309),
    (0x3ff6dfb23c651a2f, 0xbc6bbe3a683c88ab),
    (0x3ff6ef9298593ae5, 0xbc90b9749e1ac8b2),
    (0x3ff6ff7df9519484, 0xbc883c0f25860ef6),
    (0x3ff70f7466f42e87, 0x3c59d644d45aa65f),
    (0x3ff71f75e8ec5f74, 0xbc816e4786887a99),
    (0x3ff72f8286ead08a, 0xbc920aa02cd62c72),
    (0x3ff73f9a48a58174, 0xbc90a8d96c65d53c),
    (0x3ff74fbd35d7cbfd, 0x3c9047fd618a6e1c),
    (0x3ff75feb564267c9, 0xbc90245957316dd3),
    (0x3ff77024b1ab6e09, 0x3c9b7877169147f8),
    (0x3ff780694fde5d3f, 0x3c9866b80a02162d),
    (0x3ff790b938ac1cf6, 0x3c9349a862aadd3e),
    (0x3ff7a11473eb0187, 0xbc841577ee04992f),
    (0x3ff7b17b0976cfdb, 0xbc9bebb58468dc88),
    (0x3ff7c1ed0130c132, 0x3c9f124cd1164dd6),
    (0x3ff7d26a62ff86f0, 0x3c91bddbfb72b8b4),
    (0x3ff7e2f336cf4e62, 0x3c705d02ba15797e),
    (0x3ff7f3878491c491, 0xbc807f11cf9311ae),
    (0x3ff80427543e1a12, 0xbc927c86626d972b),
    (0x3ff814d2add106d9, 0x3c9464370d151d4d),
    (0x3ff82589994cce13, 0xbc9d4c1dd41532d8),
    (0x3ff8364c1eb941f7, 0x3c999b9a31df2bd5),
    (0x3ff8471a4623c7ad, 0xbc88d684a341cdfb),
    (0x3ff857f4179f5b21, 0xbc5ba748f8b216d0),
    (0x3ff868d99b4492ed, 0xbc9fc6f89bd4f6ba),
    (0x3ff879cad931a436, 0x3c85d2d7d2db47bd),
    (0x3ff88ac7d98a6699, 0x3c9994c2f37cb53a),
    (0x3ff89bd0a478580f, 0x3c9d53954475202b),
    (0x3ff8ace5422aa0db, 0x3c96e9f156864b27),
    (0x3ff8be05bad61778, 0x3c9ecb5efc43446e),
    (0x3ff8cf3216b5448c, 0xbc70d55e32e9e3aa),
    (0x3ff8e06a5e0866d9, 0xbc97114a6fc9b2e6),
    (0x3ff8f1ae99157736, 0x3c85cc13a2e3976c),
    (0x3ff902fed0282c8a, 0x3c9592ca85fe3fd2),
    (0x3ff9145b0b91ffc6, 0xbc9dd6792e582524),
    (0x3ff925c353aa2fe2, 0xbc83455fa639db7f),
    (0x3ff93737b0cdc5e5, 0xbc675fc781b57ebc),
    (0x3ff948b82b5f98e5, 0xbc8dc3d6797d2d99),
    (0x3ff95a44cbc8520f, 0xbc764b7c96a5f039),
    (0x3ff96bdd9a7670b3, 0xbc5ba5967f19c896),
    (0x3ff97d829fde4e50, 0xbc9d185b7c1b85d1),
    (0x3ff98f33e47a22a2, 0x3c7cabdaa24c78ed),
    (0x3ff9a0f170ca07ba, 0xbc9173bd91cee632),
    (0x3ff9b2bb4d53fe0d, 0xbc9dd84e4df6d518),
    (0x3ff9c49182a3f090, 0x3c7c7c46b071f2be),
    (0x3ff9d674194bb8d5, 0xbc9516bea3dd8233),
    (0x3ff9e86319e32323, 0x3c7824ca78e64c6e),
    (0x3ff9fa5e8d07f29e, 0xbc84a9ceaaf1face),
    (0x3ffa0c667b5de565, 0xbc9359495d1cd533),
    (0x3ffa1e7aed8eb8bb, 0x3c9c6618ee8be70e),
    (0x3ffa309bec4a2d33, 0x3c96305c7ddc36ab),
    (0x3ffa42c980460ad8, 0xbc9aa780589fb120),
    (0x3ffa5503b23e255d, 0xbc9d2f6edb8d41e1),
    (0x3ffa674a8af46052, 0x3c650f5630670366),
    (0x3ffa799e1330b358, 0x3c9bcb7ecac563c7),
    (0x3ffa8bfe53c12e59, 0xbc94f867b2ba15a9),
    (0x3ffa9e6b5579fdbf, 0x3c90fac90ef7fd31),
    (0x3ffab0e521356eba, 0x3c889c31dae94545),
    (0x3ffac36bbfd3f37a, 0xbc8f9234cae76cd0),
    (0x3ffad5ff3a3c2774, 0x3c97ef3bb6b1b8e5),
    (0x3ffae89f995ad3ad, 0x3c97a1cd345dcc81),
    (0x3ffafb4ce622f2ff, 0xbc94b2fc0f315ecd),
    (0x3ffb0e07298db666, 0xbc9bdef54c80e425),
    (0x3ffb20ce6c9a8952, 0x3c94dd024a0756cc),
    (0x3ffb33a2b84f15fb, 0xbc62805e3084d708),
    (0x3ffb468415b749b1, 0xbc7f763de9df7c90),
    (0x3ffb59728de5593a, 0xbc9c71dfbbba6de3),
    (0x3ffb6c6e29f1c52a, 0x3c92a8f352883f6e),
    (0x3ffb7f76f2fb5e47, 0xbc75584f7e54ac3b),
    (0x3ffb928cf22749e4, 0xbc9b721654cb65c6),
    (0x3ffba5b030a1064a, 0xbc9efcd30e54292e),
    (0x3ffbb8e0b79a6f1f, 0xbc3f52d1c9696205),
    (0x3ffbcc1e904bc1d2, 0x3c823dd07a2d9e84),
    (0x3ffbdf69c3f3a207, 0xbc3c262360ea5b52),
    (0x3ffbf2c25bd71e09, 0xbc9efdca3f6b9c73),
    (0x3ffc06286141b33d, 0xbc8d8a5aa1fbca34),
    (0x3ffc199bdd85529c, 0x3c811065895048dd),
    (0x3ffc2d1cd9fa652c, 0xbc96e51617c8a5d7),
    (0x3ffc40ab5fffd07a, 0x3c9b4537e083c60a),
    (0x3ffc544778fafb22, 0x3c912f072493b5af),
    (0x3ffc67f12e57d14b, 0x3c92884dff483cad),
    (0x3ffc7ba88988c933, 0xbc8e76bbbe255559),
    (0x3ffc8f6d9406e7b5, 0x3c71acbc48805c44),
    (0x3ffca3405751c4db, 0xbc87f2bed10d08f5),
    (0x3ffcb720dcef9069, 0x3c7503cbd1e949db),
    (0x3ffccb0f2e6d1675, 0xbc7d220f86009093),
    (0x3ffcdf0b555dc3fa, 0xbc8dd83b53829d72),
    (0x3ffcf3155b5bab74, 0xbc9a08e9b86dff57),
    (0x3ffd072d4a07897c, 0xbc9cbc3743797a9c),
    (0x3ffd1b532b08c968, 0x3c955636219a36ee),
    (0x3ffd2f87080d89f2, 0xbc9d487b719d8578),
    (0x3ffd43c8eacaa1d6, 0x3c93db53bf5a1614),
    (0x3ffd5818dcfba487, 0x3c82ed02d75b3707),
    (0x3ffd6c76e862e6d3, 0x3c5fe87a4a8165a0),
    (0x3ffd80e316c98398, 0xbc911ec18beddfe8),
    (0x3ffd955d71ff6075, 0x3c9a052dbb9af6be),
    (0x3ffda9e603db3285, 0x3c9c2300696db532),
    (0x3ffdbe7cd63a8315, 0xbc9b76f1926b8be4),
    (0x3ffdd321f301b460, 0x3c92da5778f018c3),
    (0x3ffde7d5641c0658, 0xbc9ca5528e79ba8f),
    (0x3ffdfc97337b9b5f, 0xbc91a5cd4f184b5c),
    (0x3ffe11676b197d17, 0xbc72b529bd5c7f44),
    (0x3ffe264614f5a129, 0xbc97b627817a1496),
    (0x3ffe3b333b16ee12, 0xbc99f4a431fdc68b),
    (0x3ffe502ee78b3ff6, 0x3c839e8980a9cc8f),
    (0x3ffe653924676d76, 0xbc863ff87522b735),
    (0x3ffe7a51fbc74c83, 0x3c92d522ca0c8de2),
    (0x3ffe8f7977cdb740, 0xbc91089480b054b1),
    (0x3ffea4afa2a490da, 0xbc9e9c23179c2893),
    (0x3ffeb9f4867cca6e, 0x3c94832f2293e4f2),
    (0x3ffecf482d8e67f1, 0xbc9c93f3b411ad8c),
    (0x3ffee4aaa2188510, 0x3c91c68da487568d),
    (0x3ffefa1bee615a27, 0x3c9dc7f486a4b6b0),
    (0x3fff0f9c1cb6412a, 0xbc93220065181d45),
    (0x3fff252b376bba97, 0x3c93a1a5bf0d8e43),
    (0x3fff3ac948dd7274, 0xbc795a5a3ed837de),
    (0x3fff50765b6e4540, 0x3c99d3e12dd8a18b),
    (0x3fff6632798844f8, 0x3c9fa37b3539343e),
    (0x3fff7bfdad9cbe14, 0xbc9dbb12d006350a),
    (0x3fff91d802243c89, 0xbc612ea8a779f689),
    (0x3fffa7c1819e90d8, 0x3c874853f3a5931e),
    (0x3fffbdba3692d514, 0xbc79677315098eb6),
    (0x3fffd3c22b8f71f1, 0x3c62eb74966579e7),
    (0x3fffe9d96b2a23d9, 0x3c74a6037442fde3),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::incstat::LAMBDAS;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Log-uniform in [lo, hi).
    fn log_uniform(rng: &mut ChaCha8Rng, lo: f64, hi: f64) -> f64 {
        lo * (hi / lo).powf(rng.random::<f64>())
    }

    // Double-double arithmetic (Dekker, Knuth) for reference values.
    type Dd = (f64, f64);

    const LN2: Dd = (std::f64::consts::LN_2, 2.3190468138462996e-17);

    fn fast_two_sum(a: f64, b: f64) -> Dd {
        let s = a + b;
        (s, b - (s - a))
    }

    fn two_sum(a: f64, b: f64) -> Dd {
        let s = a + b;
        let bb = s - a;
        (s, (a - (s - bb)) + (b - bb))
    }

    fn split(a: f64) -> Dd {
        let c = 134_217_729.0 * a;
        let h = c - (c - a);
        (h, a - h)
    }

    fn two_prod(a: f64, b: f64) -> Dd {
        let p = a * b;
        let ((ah, al), (bh, bl)) = (split(a), split(b));
        (p, ((ah * bh - p) + ah * bl + al * bh) + al * bl)
    }

    fn dd_mul(a: Dd, b: Dd) -> Dd {
        let (p, e) = two_prod(a.0, b.0);
        fast_two_sum(p, e + (a.0 * b.1 + a.1 * b.0))
    }

    fn dd_add(a: Dd, b: Dd) -> Dd {
        let (s, e) = two_sum(a.0, b.0);
        fast_two_sum(s, e + (a.1 + b.1))
    }

    fn dd_div_int(a: Dd, n: f64) -> Dd {
        let q = a.0 / n;
        let (p, e) = two_prod(q, n);
        fast_two_sum(q, (((a.0 - p) - e) + a.1) / n)
    }

    fn table(j: i64) -> Dd {
        let (hi, lo) = TABLE[j.rem_euclid(256) as usize];
        (f64::from_bits(hi), f64::from_bits(lo))
    }

    /// `k = round(256 y)` and `2^(y - (k >> 8))` as a double-double within
    /// about 2^-100, computed independently of the kernel (Taylor series of
    /// `exp(r ln 2)` to degree 12 in double-double).
    fn reference(y: f64) -> (i64, Dd) {
        let kf = (y * N).round_ties_even();
        let r = y - kf / N;
        let x = dd_mul((r, 0.0), LN2);
        let (mut term, mut sum) = (x, x);
        for i in 2..=12 {
            term = dd_div_int(dd_mul(term, x), f64::from(i));
            sum = dd_add(sum, term);
        }
        let t = table(kf as i64);
        (kf as i64, dd_add(t, dd_mul(t, sum)))
    }

    fn ulp_of(x: f64) -> f64 {
        f64::from_bits((x.to_bits() & EXPONENT) - (52 << 52))
    }

    /// Compares [`pow2`] with the C library on `ys`; returns the inputs
    /// that differ.
    fn mismatches(ys: impl Iterator<Item = f64>) -> Vec<f64> {
        ys.filter(|&y| pow2(y).to_bits() != libm_pow2(y).to_bits())
            .collect()
    }

    fn assert_none(bad: &[f64], what: &str) {
        assert!(
            bad.is_empty(),
            "{what}: {} inputs differ from pow(2, y), first: {:?}",
            bad.len(),
            &bad[..bad.len().min(5)]
        );
    }

    /// Distance in ulps from the exact `2^y` to the rounding midpoint glibc
    /// crossed, when glibc's `pow` is not correctly rounded at `y` (only
    /// inputs of the fast range are looked at).
    fn libm_misround(y: f64) -> Option<f64> {
        if y.is_nan() || y.abs() > Y_MAX {
            return None;
        }
        let (k, (rh, rl)) = reference(y);
        let g = libm_pow2(y).to_bits();
        let scaled = f64::from_bits(g.wrapping_sub(((k >> 8) as u64) << 52));
        if scaled == rh {
            return None;
        }
        let ulp = ulp_of(rh);
        let below_power = rh.to_bits() & MANTISSA == 0 && rl < 0.0;
        let half = if below_power { ulp / 4.0 } else { ulp / 2.0 };
        Some((half - rl.abs()) / ulp)
    }

    /// Fallback and misrounding counts over a set of inputs, and the
    /// inputs where `pow2` differed from glibc.
    #[derive(Default)]
    struct Tally {
        inputs: u64,
        bad: Vec<f64>,
        fallbacks: u64,
        misrounded: u64,
        /// Largest distance to the midpoint of a misrounded value (ulps),
        /// and the largest ratio of that distance to the allowance.
        worst: f64,
        worst_ratio: f64,
    }

    impl Tally {
        /// Checks `got`, computed for `y`, against glibc bit for bit.
        fn check(&mut self, y: f64, got: f64) {
            self.inputs += 1;
            if pow2_fast(y).is_none() {
                self.fallbacks += 1;
                if let Some(d) = libm_misround(y) {
                    self.misrounded += 1;
                    self.worst = self.worst.max(d);
                    self.worst_ratio = self.worst_ratio.max(d / libm_err(y.abs()));
                }
            }
            if got.to_bits() != libm_pow2(y).to_bits() {
                self.bad.push(y);
            }
        }

        /// Prints the counts and fails on any mismatch.
        fn finish(&self, what: &str) {
            eprintln!(
                "{what}: {} inputs, fallback rate {:.4} %, glibc misrounded {} \
                 (farthest {:.5} ulp from the midpoint, {:.3} of the allowance)",
                self.inputs,
                100.0 * self.fallbacks as f64 / self.inputs as f64,
                self.misrounded,
                self.worst,
                self.worst_ratio,
            );
            assert_none(&self.bad, what);
        }
    }

    #[test]
    fn table_holds_2_to_the_j_over_256() {
        for j in 0..256 {
            let (hi, lo) = table(j);
            // hi is the nearest double, lo below half an ulp of hi.
            assert!(lo.abs() < ulp_of(hi) / 2.0 - 2f64.powi(-100), "j {j}");
            // (hi + lo)^256 = 2^j: eight double-double squarings multiply
            // the table's error by 256 and add about 2^-96 of their own.
            let mut x = (hi, lo);
            for _ in 0..8 {
                x = dd_mul(x, x);
            }
            let two_j = 2f64.powi(j as i32);
            let err = ((x.0 - two_j) + x.1) / two_j;
            assert!(err.abs() < 2f64.powi(-94), "j {j}: relative error {err:e}");
        }
        assert_eq!(table(0), (1.0, 0.0));
        assert_eq!(table(128).0, std::f64::consts::SQRT_2);
    }

    #[test]
    fn kernel_error_is_within_its_bound() {
        let mut rng = ChaCha8Rng::seed_from_u64(0x1234_5678_9abc_def1);
        let mut worst = 0f64;
        for i in 0..1_000_000 {
            let y = match i % 3 {
                0 => rng.random_range(-1100.0..10.0),
                1 => -log_uniform(&mut rng, 1e-12, 1e3),
                _ => log_uniform(&mut rng, 1e-12, 1e3),
            };
            let Approx {
                k: [ak],
                hi: [hi],
                lo: [lo],
                t: [t],
            } = approx(&[y]);
            let (k, (rh, rl)) = reference(y);
            assert_eq!(ak, k, "y = {y:e}");
            let err = ((rh - hi) + (rl - lo)).abs();
            let bound = KERNEL_ERR * t.abs() + 2f64.powi(-97);
            assert!(err <= bound, "y = {y:e}: error {err:e} > {bound:e}");
            if t != 0.0 {
                worst = worst.max(err / (t.abs() * f64::EPSILON / 2.0));
            }
        }
        eprintln!("kernel error: at most {worst:.3} * 2^-53 |t| (bound 8)");
    }

    #[test]
    fn matches_libm_on_decay_arguments() {
        // 2,000,000 gaps log-uniform in [1e-9 s, 1e7 s], five rates each.
        let mut rng = ChaCha8Rng::seed_from_u64(0x5eed_0000_0000_0001);
        let mut tally = Tally::default();
        for _ in 0..2_000_000 {
            let dt = log_uniform(&mut rng, 1e-9, 1e7);
            let ys = LAMBDAS.map(|lambda| -lambda * dt);
            for (y, got) in ys.into_iter().zip(pow2_lanes(ys)) {
                tally.check(y, got);
            }
        }
        tally.finish("decay arguments");
    }

    #[test]
    fn matches_libm_on_uniform_arguments() {
        let mut rng = ChaCha8Rng::seed_from_u64(0x5eed_0000_0000_0002);
        let mut tally = Tally::default();
        for _ in 0..3_000_000 {
            let y = rng.random_range(-1100.0..10.0);
            tally.check(y, pow2(y));
        }
        tally.finish("uniform in [-1100, 10]");
    }

    #[test]
    fn matches_libm_on_edge_cases() {
        let special = [
            0.0,
            -0.0,
            f64::MIN_POSITIVE,
            -f64::MIN_POSITIVE,
            5e-324,
            -5e-324,
            2f64.powi(-65),
            -(2f64.powi(-65)),
            2f64.powi(-54),
            -(2f64.powi(-54)),
            f64::EPSILON,
            -f64::EPSILON,
            1.0 / 512.0,
            -1.0 / 512.0,
            Y_MAX,
            -Y_MAX,
            -1022.0,
            -1022.5,
            -1074.0,
            -1074.5,
            -1075.0,
            -1076.0,
            -1100.0,
            1023.0,
            1023.999,
            1024.0,
            1e300,
            -1e300,
            f64::MAX,
            f64::MIN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            -f64::NAN,
        ];
        let neighbours = |y: f64| [y.next_down(), y, y.next_up()];
        assert_none(
            &mismatches(special.into_iter().flat_map(neighbours)),
            "special values",
        );
        assert!(pow2(f64::NAN).is_nan());
        assert_eq!(pow2(f64::NEG_INFINITY), 0.0);
        assert_eq!(pow2(f64::INFINITY), f64::INFINITY);
        assert_eq!(pow2(-0.0), 1.0);
        // Every multiple of 1/256 (the table's nodes) and its neighbours.
        let nodes = (-1100 * 256..=1100 * 256).map(|k| f64::from(k) / N);
        assert_none(&mismatches(nodes.flat_map(neighbours)), "k / 256");
        let mut rng = ChaCha8Rng::seed_from_u64(0x5eed_0000_0000_0003);
        // Around the subnormal range and the overflow threshold.
        let edges = (0..200_000).map(|i| {
            if i % 2 == 0 {
                rng.random_range(-1080.0..-1015.0)
            } else {
                rng.random_range(1015.0..1030.0)
            }
        });
        assert_none(&mismatches(edges), "subnormal and overflow edges");
        // Tiny |y| of both signs, down to the subnormals.
        let tiny = (0..500_000).map(|i| {
            let y = log_uniform(&mut rng, 1e-320, 1e-3);
            if i % 2 == 0 {
                y
            } else {
                -y
            }
        });
        assert_none(&mismatches(tiny), "tiny arguments");
    }

    #[test]
    fn fallback_is_rare_on_realistic_gaps() {
        // Gaps log-uniform in [1e-7 s, 10 s], as between packets of a flow.
        let mut rng = ChaCha8Rng::seed_from_u64(0x5eed_0000_0000_0004);
        let mut per_lane = [0u32; 5];
        let calls = 200_000;
        let mut any = 0;
        for _ in 0..calls {
            let dt = log_uniform(&mut rng, 1e-7, 10.0);
            let misses = LAMBDAS.map(|lambda| pow2_fast(-lambda * dt).is_none());
            for (n, miss) in per_lane.iter_mut().zip(misses) {
                *n += u32::from(miss);
            }
            any += u32::from(misses.contains(&true));
        }
        let rate = |n: u32| f64::from(n) / f64::from(calls);
        eprintln!(
            "fallback rate per lane (lambda 5, 3, 1, 0.1, 0.01): {:?}, calls with one: {:.4}",
            per_lane.map(rate),
            rate(any)
        );
        assert!(per_lane.iter().all(|&n| rate(n) < 0.04), "{per_lane:?}");
    }

    /// `cargo test --release --lib pow2 -- --ignored --nocapture`: 10^9
    /// inputs, with the fallback rate and glibc's misroundings.
    #[test]
    #[ignore = "10^9 inputs, about a minute in release"]
    fn matches_libm_on_a_billion_arguments() {
        let mut rng = ChaCha8Rng::seed_from_u64(0x5eed_0000_0000_0005);
        let (mut decay, mut uniform) = (Tally::default(), Tally::default());
        for _ in 0..150_000_000 {
            let dt = log_uniform(&mut rng, 1e-9, 1e7);
            let ys = LAMBDAS.map(|lambda| -lambda * dt);
            for (y, got) in ys.into_iter().zip(pow2_lanes(ys)) {
                decay.check(y, got);
            }
        }
        for _ in 0..250_000_000 {
            let y = rng.random_range(-1100.0..10.0);
            uniform.check(y, pow2(y));
        }
        decay.finish("decay arguments");
        uniform.finish("uniform in [-1100, 10]");
    }
}
