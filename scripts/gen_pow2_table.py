#!/usr/bin/env python3
"""Prints the table of src/features/pow2.rs: 2^(j/256), j = 0..255, as a
double-double (hi, lo) with hi = the double nearest 2^(j/256) and lo = the
double nearest the remainder, so hi + lo is within 2^-106 of 2^(j/256)
(relative). Exact rational arithmetic only: 2^(j/256) is bracketed by
bisection on t^256 = 2^j with Fraction, to 2^-140, so no library rounding
enters the constants.

Also prints the polynomial coefficients ln(2)^i / i! (decimal module, 60
digits, then rounded to the nearest double).

Usage: python3 scripts/gen_pow2_table.py > table.txt (then paste the
constants and the lines of TABLE into src/features/pow2.rs).
"""

import struct
from decimal import Decimal, getcontext
from fractions import Fraction
from math import factorial

N = 256
BITS = 140  # bracket width 2^-BITS, far below the 2^-106 the table needs


def root(j):
    """2^(j/N) as a Fraction within 2^-BITS (bisection on t^N = 2^j)."""
    # Integers scaled by 2^BITS: t = m / 2^BITS, t^N <= 2^j.
    scale = 1 << BITS
    lo_m, hi_m = scale, 2 * scale
    target_m = 1 << (j + BITS * N)
    while hi_m - lo_m > 1:
        mid = (lo_m + hi_m) // 2
        if mid**N <= target_m:
            lo_m = mid
        else:
            hi_m = mid
    return Fraction(lo_m, scale)


def bits(x):
    return struct.unpack("<Q", struct.pack("<d", x))[0]


def coefficients():
    """ln(2)^i / i!, i = 1..5: the Taylor series of 2^r - 1 (|r| <= 2^-9)."""
    getcontext().prec = 60
    ln2 = Decimal(2).ln()
    return [float(ln2**i / factorial(i)) for i in range(1, 6)]


def main():
    for i, c in enumerate(coefficients(), start=1):
        print(f"const C{i}: f64 = {c!r};")
    for j in range(N):
        t = root(j)
        hi = float(t)  # Fraction -> float rounds to nearest
        lo = float(t - Fraction(hi))
        print(f"    (0x{bits(hi):016x}, 0x{bits(lo):016x}),")


if __name__ == "__main__":
    main()
