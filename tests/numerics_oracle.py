"""A second, independent transcription of docs/numerics.md: one compartment at a time,
in plain Python integers. Tests compare the vectorized simulators against it.
"""

from __future__ import annotations


def tz(x: int, n: int) -> int:
    if n < 0:
        return x * (1 << -n)
    q = abs(x) // (1 << n)
    return q if x >= 0 else -q


def sat(x: int, bits: int) -> int:
    limit = (1 << (bits - 1)) - 1
    return max(-limit, min(limit, x))


def ssm(params: dict, state: dict, a: int, fmt) -> int:
    re, im = state["re"], state["im"]
    f = fmt.ssm_frac_bits - int(params["frac_cut"])
    new_re = tz(params["a_re_q"] * re - params["a_im_q"] * im + params["b_re_q"] * a, f)
    new_im = tz(params["a_im_q"] * re + params["a_re_q"] * im + params["b_im_q"] * a, f)
    state["re"], state["im"] = sat(new_re, fmt.state_bits), sat(new_im, fmt.state_bits)
    return sat(tz(state["re"], int(params["out_shift"])), fmt.message_bits)


def reset_refractory(params: dict, state: dict, a: int, fmt) -> int:
    m = sat(tz(state["v"] * (4096 - params["decay"]), 12) + a, fmt.state_bits)
    s = int(m > params["theta"])
    state["v"] = sat(m - (params["theta"] + params["rho"]) * s, fmt.state_bits)
    return s


def _lava_lif(params: dict, state: dict, a: int, subtract: bool) -> int:
    u1 = tz(state["u"] * (4096 - (params["du"] + 1)), 12) + a * 64
    if u1 > 2**23:
        u = u1 - 2**24
    elif u1 <= -(2**23):
        u = u1 + 2**24
    else:
        u = u1
    state["u"] = u
    v1 = sat(tz(state["v"] * (4096 - params["dv"]), 12) + u, 24)
    s = int(v1 > params["vth"] * 64)
    if s:
        v1 = v1 - params["vsub"] * 64 if subtract else 0
    state["v"] = v1
    return s


def lif(params: dict, state: dict, a: int, fmt) -> int:
    return _lava_lif(params, state, a, subtract=False)


def cuba_lif_sub(params: dict, state: dict, a: int, fmt) -> int:
    """lif's current and voltage, then v - vsub * 64 (not 0) where it spikes."""
    return _lava_lif(params, state, a, subtract=True)


def heaviside(params: dict, state: dict, a: int, fmt) -> int:
    return int(a > 0)


def accumulator(params: dict, state: dict, a: int, fmt) -> int:
    return sat(a, fmt.message_bits)


def glu(params: dict, a0: int, a1: int, fmt) -> int:
    table, k = params["pwl_table_q12"], params["pwl_shift"]
    x = a1 - params["pwl_x0"]
    i = max(0, min(len(table) - 2, x >> k))
    f = max(0, min(1 << k, x - (i << k)))
    g = table[i] + tz((table[i + 1] - table[i]) * f, k)
    return sat(tz(a0 * g, params["out_shift"]), fmt.message_bits)


KINDS = {
    "ssm": ssm,
    "reset_refractory": reset_refractory,
    "lif": lif,
    "cuba_lif_sub": cuba_lif_sub,
    "heaviside": heaviside,
    "accumulator": accumulator,
}
