"""exp, tanh and sigmoid that LLVM can vectorise with fastmath off: vexp, vtanh, vsigmoid.

Why: without fastmath, np.exp / np.tanh inside an njit loop are scalar libm calls, and a
loop containing a call is never vectorised; at batch 1 they took 57-85% of the loop-path
LSTM forward. These versions are plain arithmetic and selects (no calls, no branches, no
float-to-int conversion), so a loop over a contiguous block widens to 8 or 16 lanes, while
every operation stays an ordinary IEEE operation: fastmath stays off, results are the same
on every run and every x86 machine, and NaN/inf behave as in NumPy.

Use them from njit code only, like np.exp:  `y = vexp(x)` with x a float32 or float64
scalar. Each name dispatches on the argument's type (an @overload, inlined at Numba-IR
level so the caller's loop sees straight-line code): float32 in, float32 arithmetic and
float32 constants throughout; float64 likewise. From Python they run the same compiled code
on one scalar (for tests and the REPL).

exp(x), both precisions (Cody & Waite's range reduction, as in Cephes exp.c / expf.c):
    1. clamp x to [LO, HI] with selects, which keep NaN (comparisons with NaN are false);
       LO/HI lie just past the underflow/overflow thresholds, so results still round to 0/inf
    2. t = x log2(e) + 1.5*2^m (m = mantissa bits): the addition rounds to an integer, which
       sits in t's low mantissa bits -- n = t - 1.5*2^m as a float, n from t's bits as an int
       (no fptosi, which is undefined on NaN and does not vectorise without AVX-512DQ)
    3. r = x - n ln2 with ln2 = C1 + C2 split (C1 has few bits, so n*C1 is exact): |r| <~ ln2/2
    4. exp(r) by a polynomial: float64 Taylor to r^13 (coefficients 1/k!, truncation < 5e-18
       relative, 0.04 ULP); float32 Cephes expf's degree-7 minimax (P0..P5 below). float64
       also keeps r's rounding error rl and forms 1 + r as an exact pair (Fast2Sum), so only
       the last addition rounds much: max error 1.0 -> 0.67 ULP for ~8% more time
    5. scale by 2^n as two exact power-of-two factors 2^(n//2) * 2^(n - n//2): 2^n alone is
       not representable at the ends (n = 128 / 1024 for the largest finite results, n < -126
       for subnormal ones); the first product is exact, the second rounds once, so overflow
       gives inf and gradual underflow rounds correctly, like libm.
tanh(x) = x + x z R(z), z = x^2, for |x| < 0.625 (Cephes tanh.c's rational P/Q in float64,
    tanhf.c's polynomial in float32), else sign(x) (1 - e)/(1 + e) with e = exp(-2|x|), which
    never overflows; tanh(+-0) = +-0 by a select (x + x z R rounds -0 to +0).
sigmoid(x) = 1/(1 + e) for x >= 0, e/(1 + e) below, e = exp(-|x|): the reference's sign split
    (minirnn/cells/lstm.py), so exp never overflows.
The range reduction and exp's polynomial use llvm.fma: the exact IEEE fusedMultiplyAdd (one
rounding; not a fastmath flag), hardware on every x86 since 2013, correctly emulated
elsewhere. Every operation is IEEE with a fixed order, so a result does not depend on
whether its loop was vectorised, nor on the machine.

Measured (tests/test_vmath.py; ULP = unit in the last place):
    float32, against float64 libm rounded to float32 (bit-pattern distance):
        exp <= 1 ULP: exhaustive, every float32 in [-104, 104] (all finite non-zero results)
        tanh <= 2 ULP, sigmoid <= 2 ULP: exhaustive over |x| <= 20 (MINIRNN_EXHAUSTIVE=1),
        every 17th float32 by default; constant (1, 0 or exp's tail) beyond
    float64, dense sweeps (5.5M points each):
        against long double (the error itself): exp 0.67, tanh 1.50, sigmoid 2.17 ULP
        (NumPy's own on the same points: 0.71, 1.18, 2.17 -- sigmoid's is the reference's
        sign-split formula, the same in both)
        against NumPy's np.exp / np.tanh / the reference sigmoid: <= 1, 2, 2 ULP apart
    special values (+-inf, nan, +-0, the overflow/underflow edges, subnormals): as NumPy,
    bitwise, sign of zero included.
Speed in a loop over 4096 values (one core, AVX-512): float32 exp/tanh/sigmoid 0.4/0.7/0.5
ns a value, 6x/18x faster than libm's; float64 0.9/1.7/1.2 ns, 5x/6x faster.

With MINIRNN_FASTMATH=1 the names fall back to np.exp / np.tanh: under fastmath LLVM may
reassociate (x log2 e + S) - S into x log2 e and break step 2, while its own fast exp
vectorises anyway. Kernels inline this module, so their cache stamp covers it (_common.py).
"""
from __future__ import annotations

import math

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload

from .._config import NUMBA_FLAGS

# The project's settings, minus `cache`: these bodies are inlined into their callers (which
# are cached themselves); they are never compiled on their own.
_INLINE_FLAGS = {k: v for k, v in NUMBA_FLAGS.items() if k != "cache"}
_FASTMATH = bool(NUMBA_FLAGS.get("fastmath"))

__all__ = ["vexp", "vtanh", "vsigmoid", "fma"]


# ----------------------------------------------------------------------------
# three LLVM intrinsics: an exact fused multiply-add, a select, the 2^n scaling of step 5

@intrinsic
def fma(typingctx, a, b, c):
    """fma(a, b, c) = a*b + c with one rounding (llvm.fma); a, b, c of one float type."""
    if not (isinstance(a, types.Float) and a == b == c):
        return None

    def codegen(context, builder, sig, args):
        t = args[0].type
        fn = builder.module.declare_intrinsic("llvm.fma", [t], ir.FunctionType(t, [t, t, t]))
        return builder.call(fn, args)
    return a(a, a, a), codegen


@intrinsic
def _select(typingctx, cond, a, b):
    """a if cond else b as one LLVM select. Written as a Python conditional, each inlined copy
    is a branch and a phi in Numba's IR, and inlining one such function twice into a caller
    trips Numba's SSA check (NumbaIRAssumptionWarning); a select is straight-line code."""
    if not (isinstance(cond, types.Boolean) and isinstance(a, types.Float) and a == b):
        return None

    def codegen(context, builder, sig, args):
        return builder.select(*args)
    return a(cond, a, b), codegen


@intrinsic
def _scale_pow2(typingctx, y, t):
    """y * 2^n where t = n + 1.5*2^m came out of step 2 (m = 52 or 23): n is t's bits minus
    those of 1.5*2^m, applied as 2^(n>>1) then 2^(n - (n>>1)) so that only the last product
    rounds. Integer work at the float's own width, so a float32 loop stays 16 lanes wide.
    (x NaN: t is NaN, the factors are meaningless, y is NaN and so is the product.)"""
    if not (isinstance(y, types.Float) and y == t):
        return None
    bits, mant, bias = (64, 52, 1023) if y.bitwidth == 64 else (32, 23, 127)
    shift_bits = 0x4338000000000000 if bits == 64 else 0x4B400000   # bits of 1.5*2^m

    def codegen(context, builder, sig, args):
        yv, tv = args
        ity = ir.IntType(bits)
        n = builder.sub(builder.bitcast(tv, ity), ir.Constant(ity, shift_bits))
        n1 = builder.ashr(n, ir.Constant(ity, 1))
        n2 = builder.sub(n, n1)

        def pow2(k):                                   # 2^k for a normal exponent k
            e = builder.add(k, ir.Constant(ity, bias))
            return builder.bitcast(builder.shl(e, ir.Constant(ity, mant)), yv.type)
        return builder.fmul(builder.fmul(yv, pow2(n1)), pow2(n2))
    return y(y, y), codegen


# ----------------------------------------------------------------------------
# float64

_LOG2E = 1.4426950408889634                  # log2(e) rounded
_SHIFT = 6755399441055744.0                  # 1.5 * 2^52
_C1 = 6.93145751953125e-1                    # Cephes exp.c: ln2 = C1 + C2, C1 has 19 bits
_C2 = 1.42860682030941723212e-6
_HI, _LO = 709.9, -745.5                     # exp(709.79) = DBL_MAX, exp(-745.14) = 2^-1075
_E = tuple(1.0 / math.factorial(k) for k in range(14))       # 1/k!, correctly rounded
_E2, _E3, _E4, _E5, _E6, _E7, _E8, _E9, _E10, _E11, _E12, _E13 = _E[2:]

# Cephes tanh.c, |x| < 0.625: tanh x = x + x z P(z)/Q(z), z = x^2, Q monic
_TP0, _TP1, _TP2 = -9.64399179425052238628e-1, -9.92877231001918586564e1, -1.61468768441708447952e3
_TQ0, _TQ1, _TQ2 = 1.12811678491632931402e2, 2.23548839060100448583e3, 4.84406305325125486048e3


@numba.njit(inline="always", **_INLINE_FLAGS)
def _exp64(x):
    x = _select(x > _HI, _HI, x)               # comparisons with NaN are false: NaN stays
    x = _select(x < _LO, _LO, x)
    t = fma(x, _LOG2E, _SHIFT)
    n = t - _SHIFT                             # round(x log2 e) as a float
    rh = fma(n, -_C1, x)                       # exact
    r = fma(n, -_C2, rh)
    rl = fma(n, -_C2, rh - r)                  # r's rounding error: r + rl = x - n (C1 + C2)
    q = fma(_E13, r, _E12)                     # (exp(r) - 1 - r) / r^2, small terms first
    q = fma(q, r, _E11)
    q = fma(q, r, _E10)
    q = fma(q, r, _E9)
    q = fma(q, r, _E8)
    q = fma(q, r, _E7)
    q = fma(q, r, _E6)
    q = fma(q, r, _E5)
    q = fma(q, r, _E4)
    q = fma(q, r, _E3)
    q = fma(q, r, _E2)
    hi = 1.0 + r                               # 1 + r exactly as hi + lo (Fast2Sum, |r| < 1),
    lo = (1.0 - hi) + r                        # so the only large rounding is the last one:
    p = hi + (lo + fma(r * r, q, rl))          # max error 1.0 -> 0.67 ULP for +8% time
    return _scale_pow2(p, t)


@numba.njit(inline="always", **_INLINE_FLAGS)
def _tanh64(x):
    ax = abs(x)
    z = x * x
    small = x + x * z * (((_TP0 * z + _TP1) * z + _TP2) / (((z + _TQ0) * z + _TQ1) * z + _TQ2))
    small = _select(x == 0.0, x, small)        # keep the sign of zero
    e = _exp64(-2.0 * ax)
    big = (1.0 - e) / (1.0 + e)
    big = _select(x < 0.0, -big, big)
    return _select(ax < 0.625, small, big)     # NaN: ax < 0.625 is false, big is NaN


@numba.njit(inline="always", **_INLINE_FLAGS)
def _sigmoid64(x):
    e = _exp64(-abs(x))
    return _select(x >= 0.0, 1.0, e) / (1.0 + e)   # 1/(1+e) or e/(1+e); NaN: e is NaN


# ----------------------------------------------------------------------------
# float32: every constant a float32, so no operation is promoted to float64

_f = np.float32
_LOG2Ef, _SHIFTf = _f(_LOG2E), _f(12582912.0)          # 1.5 * 2^23
_C1f, _C2f = _f(0.693359375), _f(-2.12194440e-4)       # Cephes expf.c: C1 has 9 bits
_P0f, _P1f, _P2f = _f(1.9875691500e-4), _f(1.3981999507e-3), _f(8.3334519073e-3)
_P3f, _P4f, _P5f = _f(4.1665795894e-2), _f(1.6666665459e-1), _f(5.0000001201e-1)
_HIf, _LOf = _f(88.8), _f(-104.5)                      # exp(88.72) = FLT_MAX, exp(-103.97) = 2^-150
# Cephes tanhf.c, |x| < 0.625: tanh x = x + x z T(z)
_T0f, _T1f, _T2f = _f(-5.70498872745e-3), _f(2.06390887954e-2), _f(-5.37397155531e-2)
_T3f, _T4f = _f(1.33314422036e-1), _f(-3.33332819422e-1)
_ZEROf, _ONEf, _M2f, _SMALLf = _f(0.0), _f(1.0), _f(-2.0), _f(0.625)


@numba.njit(inline="always", **_INLINE_FLAGS)
def _exp32(x):
    x = _select(x > _HIf, _HIf, x)
    x = _select(x < _LOf, _LOf, x)
    t = fma(x, _LOG2Ef, _SHIFTf)
    n = t - _SHIFTf
    r = fma(n, -_C1f, x)
    r = fma(n, -_C2f, r)
    q = fma(_P0f, r, _P1f)                     # exp(r) = 1 + r + r^2 P(r)
    q = fma(q, r, _P2f)
    q = fma(q, r, _P3f)
    q = fma(q, r, _P4f)
    q = fma(q, r, _P5f)
    p = fma(q, r * r, r) + _ONEf
    return _scale_pow2(p, t)


@numba.njit(inline="always", **_INLINE_FLAGS)
def _tanh32(x):
    ax = abs(x)
    z = x * x
    small = fma(((((_T0f * z + _T1f) * z + _T2f) * z + _T3f) * z + _T4f) * z, x, x)
    small = _select(x == _ZEROf, x, small)
    e = _exp32(_M2f * ax)
    big = (_ONEf - e) / (_ONEf + e)
    big = _select(x < _ZEROf, -big, big)
    return _select(ax < _SMALLf, small, big)


@numba.njit(inline="always", **_INLINE_FLAGS)
def _sigmoid32(x):
    e = _exp32(-abs(x))
    return _select(x >= _ZEROf, _ONEf, e) / (_ONEf + e)


# ----------------------------------------------------------------------------
# the public names: typed dispatch, inlined into the caller

def _by_type(x, f32, f64, fast32, fast64):
    """The implementation for x's type; under MINIRNN_FASTMATH=1 the NumPy-function one."""
    if x == types.float32:
        return fast32 if _FASTMATH else f32
    if x == types.float64:
        return fast64 if _FASTMATH else f64
    return None                                # other types: a typing error, as for np.exp


def _like(x, y):
    """A NumPy scalar in, the same type out (Numba returns Python floats)."""
    return x.dtype.type(y) if isinstance(x, np.generic) else y


def vexp(x):
    """exp(x) for a float32 or float64 scalar, vectorisable (see the module docstring)."""
    return _like(x, _py_vexp(x))


def vtanh(x):
    """tanh(x) for a float32 or float64 scalar, vectorisable (see the module docstring)."""
    return _like(x, _py_vtanh(x))


def vsigmoid(x):
    """1 / (1 + exp(-x)) for a float32 or float64 scalar, vectorisable, split by sign."""
    return _like(x, _py_vsigmoid(x))


@overload(vexp, inline="always", jit_options=_INLINE_FLAGS)
def _ol_vexp(x):
    return _by_type(x, _exp32.py_func, _exp64.py_func,
                    lambda x: np.exp(x), lambda x: np.exp(x))


@overload(vtanh, inline="always", jit_options=_INLINE_FLAGS)
def _ol_vtanh(x):
    return _by_type(x, _tanh32.py_func, _tanh64.py_func,
                    lambda x: np.tanh(x), lambda x: np.tanh(x))


@overload(vsigmoid, inline="always", jit_options=_INLINE_FLAGS)
def _ol_vsigmoid(x):
    # fastmath: no sign split (a conditional inlined twice trips Numba, see _select); exp(-x)
    # may overflow to inf, and 1/(1 + inf) is the right 0
    return _by_type(x, _sigmoid32.py_func, _sigmoid64.py_func,
                    lambda x: _ONEf / (_ONEf + np.exp(-x)), lambda x: 1.0 / (1.0 + np.exp(-x)))


if numba.config.DISABLE_JIT:
    # coverage runs (NUMBA_DISABLE_JIT=1): the kernels run as Python and the LLVM intrinsics
    # above cannot, so the names are NumPy's functions there (within 2 ULP of these; a
    # jitted wrapper would only call back into itself)
    _py_vexp, _py_vtanh = np.exp, np.tanh

    def _py_vsigmoid(x):
        e = np.exp(-abs(x))
        return 1 / (1 + e) if x >= 0 else e / (1 + e)
else:
    # the Python-level calls: the same compiled code, one scalar at a time
    _py_vexp = numba.njit(**_INLINE_FLAGS)(lambda x: vexp(x))
    _py_vtanh = numba.njit(**_INLINE_FLAGS)(lambda x: vtanh(x))
    _py_vsigmoid = numba.njit(**_INLINE_FLAGS)(lambda x: vsigmoid(x))
