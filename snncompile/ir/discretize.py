"""S4D -> SSM: the discretization, in complex128, with the float operations (and their
order) of snncompile.models.s4d.S4D.discretize, so a float64 model and the IR agree to
rounding. Shared by the `discretize_ssm` pass and the test interpreter.
"""

from __future__ import annotations

import numpy as np

from snncompile.ir.ops import S4D, SSM


def discretize_s4d(op: S4D) -> SSM:
    """ZOH: a_bar = exp(dt a), b_bar = (a_bar - 1) / a * b;
    bilinear: a_bar = (1 + dt a/2) / (1 - dt a/2), b_bar = dt / (1 - dt a/2) * b."""
    dt = np.exp(op.log_dt.astype(np.float64))[:, None]
    a = op.a.astype(np.complex128)
    b = op.b.astype(np.complex128)
    dta = dt * a
    if op.discretization == "zoh":
        a_bar = np.exp(dta)
        b_bar = (a_bar - 1) / a * b
    else:
        denom = 1 - dta / 2
        a_bar = (1 + dta / 2) / denom
        b_bar = dt / denom * b
    return SSM(
        a_bar=a_bar,
        b_bar=b_bar,
        c=op.c.astype(np.complex128).copy(),
        d=op.d.astype(np.float64).copy(),
        u_shift=np.zeros_like(op.d, dtype=np.float64),
    )
