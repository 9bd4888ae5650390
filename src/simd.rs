//! Runtime choice of the instruction set for the hot loops of inference.
//!
//! The crate is compiled for baseline x86-64, where the loops vectorise only
//! 4-wide (SSE2). [`multiversion!`] compiles one safe loop body several
//! times, with AVX-512 and with AVX2 + FMA enabled, and calls the best one the
//! CPU supports ([`Level::detect`], checked once per process); every other
//! target gets the portable build of the same body. The fused kernels of
//! `model::kernel::Tiles` use the same detection.

use std::sync::atomic::{AtomicU8, Ordering};

/// An instruction-set level a kernel is compiled for, worst first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Level {
    /// The target's baseline (SSE2 on x86-64).
    Portable,
    /// x86-64 with AVX2 and FMA.
    Avx2,
    /// x86-64 with AVX-512F (which implies AVX2 and FMA).
    Avx512,
}

/// [`Level::detect`]'s answer, cached; 0 means not yet known.
static DETECTED: AtomicU8 = AtomicU8::new(0);

impl Level {
    /// The best level this CPU runs (detected once, then cached).
    pub(crate) fn detect() -> Level {
        match DETECTED.load(Ordering::Relaxed) {
            1 => Level::Portable,
            2 => Level::Avx2,
            3 => Level::Avx512,
            _ => {
                let level = Self::probe();
                DETECTED.store(level as u8 + 1, Ordering::Relaxed);
                level
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    fn probe() -> Level {
        let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
        if avx2 && is_x86_feature_detected!("avx512f") {
            Level::Avx512
        } else if avx2 {
            Level::Avx2
        } else {
            Level::Portable
        }
    }

    #[cfg(not(target_arch = "x86_64"))]
    fn probe() -> Level {
        Level::Portable
    }

    /// Every level this CPU runs, worst first (for tests comparing them).
    #[cfg(test)]
    pub(crate) fn supported() -> Vec<Level> {
        [Level::Portable, Level::Avx2, Level::Avx512]
            .into_iter()
            .filter(|&l| l <= Self::detect())
            .collect()
    }
}

/// `a * b + c`, fused (one rounding) when `FMA`: callers pass `FMA = true`
/// only from a body compiled with the `fma` feature, where it is one
/// instruction instead of a library call.
#[inline(always)]
pub(crate) fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// Defines `fn $name(level: Level, args...)` calling `$body` compiled for
/// `level` (lowered to what the CPU supports). The body must give the same
/// bits at every level: no `mul_add`, whose rounding differs with FMA.
macro_rules! multiversion {
    ($vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? = $body:ident;) => {
        $vis fn $name(level: $crate::simd::Level, $($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx2,fma")]
                fn avx512($($arg: $ty),*) $(-> $ret)? {
                    $body($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($arg: $ty),*) $(-> $ret)? {
                    $body($($arg),*)
                }
                match level.min($crate::simd::Level::detect()) {
                    $crate::simd::Level::Avx512 => {
                        #[allow(unsafe_code)]
                        // SAFETY: `Level::detect` found AVX-512F, AVX2 and
                        // FMA on this CPU.
                        return unsafe { avx512($($arg),*) };
                    }
                    $crate::simd::Level::Avx2 => {
                        #[allow(unsafe_code)]
                        // SAFETY: `Level::detect` found AVX2 and FMA on this
                        // CPU.
                        return unsafe { avx2($($arg),*) };
                    }
                    $crate::simd::Level::Portable => {}
                }
            }
            let _ = level;
            $body($($arg),*)
        }
    };
}
pub(crate) use multiversion;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection_is_cached_and_ordered() {
        let first = Level::detect();
        assert_eq!(Level::detect(), first);
        let all = Level::supported();
        assert_eq!(all.first(), Some(&Level::Portable));
        assert_eq!(all.last(), Some(&first));
        assert!(all.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn madd_fuses_only_when_asked() {
        // 1 + 2^-12 squared needs 25 bits: only the fused form keeps 2^-24.
        let a = 1.0 + f32::EPSILON * 2048.0;
        let c = -(1.0 + f32::EPSILON * 4096.0);
        assert_eq!(madd::<false>(a, a, c), 0.0);
        assert_eq!(madd::<true>(a, a, c), 2f32.powi(-24));
    }
}
