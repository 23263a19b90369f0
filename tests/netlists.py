"""Small netlists for the target tests (Lava, ONNX): each kind side by side."""

from __future__ import annotations

import numpy as np

from snncompile.ir.netlist import Formats, Netlist, Population, Synapse

FMT = Formats()


def pop(name: str, kind: str, size: int, attrs: dict | None = None, **params) -> Population:
    """A population with float-array parameters given as keywords."""
    return Population(
        name, kind, size, {k: np.asarray(v, float) for k, v in params.items()}, attrs or {}
    )


def side_by_side(
    pops: list[Population], *, fmt: Formats = FMT, mode: str = "last", numeric: str = "int"
) -> Netlist:
    """input -> each population (identity on its slice of the input) -> one readout."""
    widths = [p.input_width for p in pops]
    sizes = [p.size for p in pops]
    syns, start = [], 0
    for p, width in zip(pops, widths, strict=True):
        weight = np.zeros((width, sum(widths)))
        weight[:, start : start + width] = np.eye(width)
        syns.append(Synapse(f"in->{p.name}", "in", p.name, weight))
        start += width
    start = 0
    for p, size in zip(pops, sizes, strict=True):
        weight = np.zeros((sum(sizes), size))
        weight[start : start + size] = np.eye(size)
        syns.append(Synapse(f"{p.name}->out", p.name, "out", weight))
        start += size
    readout = Population("out", "readout", sum(sizes), attrs={"mode": mode})
    return Netlist(
        (Population("in", "input", sum(widths)), *pops, readout), syns, numeric, formats=fmt
    )
