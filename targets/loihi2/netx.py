"""network.net: the netlist as HDF5 in lava-dl netx's layout, with extension groups.

    write_network(net, "network.net")
    net2 = read_network("network.net")        # the same Netlist, rebuilt from the file

netx (lava.lib.dl.netx.hdf5.Network) reads a chain of layers /layer/0, /layer/1, ...
Our networks are not chains (residual adds, two-part GLU inputs, a bias source), so:

- A LIF population fed by exactly one synapse is a netx `dense` layer: `type` "dense"
  (fixed-length bytes S10, shape (1,)), `shape` (C, H, W) = (size, 1, 1), `weight`
  (out, in) integer-valued float64 mantissas, `bias` zeros (out,), `delay` (out,) the
  incoming synapse's delay, `inFeatures`, `outFeatures`, and /neuron with `type` "CUBA",
  `iDecay` = du + 1 (netx sets du = iDecay - 1), `vDecay` = dv, `vThMant` = vth,
  `refDelay` = 1, `gradedSpike` = 0. netx has no weight exponent for dense layers (it
  takes `weight` as the weights and picks its own exponent): ours is in
  `inputs/0/weight_exp`, and netx would read the weights 2^-weight_exp times ours.
- Every other population is an extension layer: `type` "ext" (S10), attribute `kind`
  (the compartment kind), `shape`, its integer parameters under `params/<name>`, and
  its attrs as HDF5 attributes under `attrs`.
- Every layer with inputs has `inputs/<j>/` per incoming synapse: `src` (layer index),
  `weight` (int16 mantissas, dense (dst input width, src size), or a group `data`,
  `indices`, `indptr` + attribute `shape` for a CSR matrix), `weight_exp`, `delay`,
  `lag` (Synapse.lag; absent in older files: 0), and the synapse's `name` as an
  attribute. In a dense layer, `inputs/0/weight` is the layer's `weight` (an HDF5 hard
  link, stored once).

Every layer has attribute `name` (the population). The root holds the format name and
version, `numeric`, the bit widths, `input_scale`, `output_scale`, `dt_s`,
`output_latency` (ticks) and `ticks_per_step` (absent in older files: 1) as attributes.
A time-multiplexed network (ticks_per_step > 1) has no netx dense layers: netx's CUBA
neuron cannot idle between a population's ticks. Layers are in the netlist's
(topological) order. netx itself cannot load the file: its loader has no case for
`ext`, and layer 0 (the input) is one (lava-dl 0.6.0 stops with UnboundLocalError);
`read_network` can.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse

from snncompile.errors import CorruptInputError, MissingDependencyError
from snncompile.ir.compartments import with_added_params
from snncompile.ir.netlist import Formats, Netlist, Population, Synapse
from snncompile.ir.ops import InvalidGraphError
from snncompile.ir.serialize import check_hdf5_size, check_hdf5_tree, parse_json

FORMAT_NAME = "snncompile-loihi2-net"
FORMAT_VERSION = 1


def _h5py():
    try:
        import h5py
    except ImportError:
        raise MissingDependencyError("network.net needs h5py: pip install h5py") from None
    return h5py


def _type(name: str) -> np.ndarray:
    # lava-dl writes `type` as a (1,) array of 10-byte strings; netx reads value[0].
    return np.array([name.encode("ascii")], dtype="S10")


def is_netx_dense(net: Netlist, pop: Population) -> bool:
    """A LIF population fed by one synapse: the part netx's dense + CUBA layer expresses
    (not in a time-multiplexed netlist: netx's CUBA neuron updates at every tick)."""
    return pop.kind == "lif" and len(net.incoming(pop.name)) == 1 and net.ticks_per_step == 1


def _write_weight(group: Any, syn: Synapse) -> None:
    if sparse.issparse(syn.weight):
        w = group.create_group("weight")
        w.attrs["shape"] = np.array(syn.shape, np.int64)
        w.create_dataset("data", data=syn.weight.data.astype(np.int16))
        w.create_dataset("indices", data=syn.weight.indices.astype(np.int32))
        w.create_dataset("indptr", data=syn.weight.indptr.astype(np.int64))
    else:
        group.create_dataset("weight", data=np.asarray(syn.weight).astype(np.int16))


def _write_inputs(layer: Any, net: Netlist, pop: Population, index: dict[str, int]) -> None:
    for j, syn in enumerate(net.incoming(pop.name)):
        g = layer.create_group(f"inputs/{j}")
        g.attrs["name"] = syn.name
        g.create_dataset("src", data=np.int64(index[syn.src]))
        g.create_dataset("weight_exp", data=np.int64(syn.weight_exp))
        g.create_dataset("delay", data=np.int64(syn.delay))
        g.create_dataset("lag", data=np.int64(syn.lag))
        if is_netx_dense(net, pop):
            g["weight"] = layer["weight"]  # hard link: the netx field is the one copy
        else:
            _write_weight(g, syn)


def _write_dense(layer: Any, net: Netlist, pop: Population) -> None:
    (syn,) = net.incoming(pop.name)
    layer.create_dataset("type", data=_type("dense"))
    layer.create_dataset("shape", data=np.array([pop.size, 1, 1], np.int64))
    layer.create_dataset("weight", data=syn.dense().astype(np.float64))
    layer.create_dataset("bias", data=np.zeros(pop.size))
    layer.create_dataset("delay", data=np.full(pop.size, float(syn.delay)))
    layer.create_dataset("inFeatures", data=np.int64(syn.shape[1]))
    layer.create_dataset("outFeatures", data=np.int64(pop.size))
    neuron = layer.create_group("neuron")
    neuron.create_dataset("type", data=_type("CUBA"))
    neuron.create_dataset("iDecay", data=np.int64(int(pop.params["du"]) + 1))
    neuron.create_dataset("vDecay", data=np.int64(int(pop.params["dv"])))
    neuron.create_dataset("vThMant", data=np.int64(int(pop.params["vth"])))
    neuron.create_dataset("refDelay", data=np.int64(1))
    neuron.create_dataset("gradedSpike", data=np.int64(0))


def _write_ext(layer: Any, pop: Population) -> None:
    layer.create_dataset("type", data=_type("ext"))
    layer.attrs["kind"] = pop.kind
    layer.create_dataset("shape", data=np.array([pop.size, 1, 1], np.int64))
    params = layer.create_group("params")
    for name, value in pop.params.items():
        params.create_dataset(name, data=np.asarray(value).astype(np.int64))
    attrs = layer.create_group("attrs")
    for key, value in pop.attrs.items():
        attrs.attrs[key] = value


def write_network(net: Netlist, path: str | os.PathLike[str]) -> None:
    """Write the int netlist `net` as network.net (layout in the module docstring)."""
    h5py = _h5py()
    if net.numeric != "int":
        raise InvalidGraphError("network.net holds quantized (int) netlists only")
    index = {pop.name: i for i, pop in enumerate(net.populations)}
    with h5py.File(path, "w") as f:
        f.attrs["format"] = FORMAT_NAME
        f.attrs["version"] = FORMAT_VERSION
        f.attrs["numeric"] = net.numeric
        f.attrs["formats"] = json.dumps(net.formats.to_dict())
        f.attrs["input_scale"] = net.input_scale
        f.attrs["output_scale"] = net.output_scale
        f.attrs["dt_s"] = np.nan if net.dt_s is None else net.dt_s
        f.attrs["output_latency"] = net.output_latency
        f.attrs["ticks_per_step"] = net.ticks_per_step
        for pop in net.populations:
            layer = f.create_group(f"layer/{index[pop.name]}")
            layer.attrs["name"] = pop.name
            if is_netx_dense(net, pop):
                _write_dense(layer, net, pop)
            else:
                _write_ext(layer, pop)
            _write_inputs(layer, net, pop, index)


# -- reading ----------------------------------------------------------------------------


def _read_weight(node: Any) -> np.ndarray | sparse.csr_matrix:
    if isinstance(node, _h5py().Group):
        shape = tuple(int(s) for s in node.attrs["shape"])
        data, indices, indptr = (node[key][()] for key in ("data", "indices", "indptr"))
        if indices.dtype.kind not in "iu" or indptr.dtype.kind not in "iu":
            raise ValueError("sparse weight indices are not integers")
        matrix = sparse.csr_matrix((data.astype(np.float64), indices, indptr), shape=shape)
        # Every index in bounds before anything sorts or sums them: scipy's kernels write
        # where an indptr of 10**6 points (a native abort, not an error).
        matrix.check_format(full_check=True)
        return matrix
    return node[()].astype(np.float64)


def _type_of(layer: Any) -> str:
    return layer["type"][0].decode("ascii")


def _read_population(layer: Any, kind: str) -> Population:
    name = str(layer.attrs["name"])
    size = int(layer["shape"][0])
    if kind == "dense":
        neuron = layer["neuron"]
        params = {
            "du": np.float64(int(neuron["iDecay"][()]) - 1),
            "dv": np.float64(neuron["vDecay"][()]),
            "vth": np.float64(neuron["vThMant"][()]),
        }
        return Population(name, "lif", size, params)
    compartment = str(layer.attrs["kind"])
    params = {k: v[()].astype(np.float64) for k, v in layer["params"].items()}
    attrs = {k: _plain(v) for k, v in layer["attrs"].attrs.items()}
    return Population(name, compartment, size, with_added_params(compartment, params), attrs)


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


def read_network(path: str | os.PathLike[str]) -> Netlist:
    """Rebuild the Netlist from network.net; CorruptInputError for anything invalid."""
    h5py = _h5py()
    path = Path(path)
    check_hdf5_tree(path)
    check_hdf5_size(path)
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != FORMAT_NAME or f.attrs.get("version") != FORMAT_VERSION:
                raise CorruptInputError(f"{path}: not a {FORMAT_NAME} v{FORMAT_VERSION} file")
            layers = [f["layer"][str(i)] for i in range(len(f["layer"]))]
            pops, syns = [], []
            for layer in layers:
                kind = _type_of(layer)
                if kind not in ("dense", "ext"):
                    raise CorruptInputError(f"{path}: layer type {kind!r} is unknown")
                pops.append(_read_population(layer, kind))
            for layer, pop in zip(layers, pops, strict=True):
                for j in range(len(layer.get("inputs", {}))):
                    g = layer["inputs"][str(j)]
                    syns.append(
                        Synapse(
                            name=str(g.attrs["name"]),
                            src=pops[_layer_index(g["src"][()], len(pops))].name,
                            dst=pop.name,
                            weight=_read_weight(g["weight"]),
                            weight_exp=int(g["weight_exp"][()]),
                            delay=int(g["delay"][()]),
                            lag=int(g["lag"][()]) if "lag" in g else 0,
                        )
                    )
            dt = float(f.attrs["dt_s"])
            return Netlist(
                populations=tuple(pops),
                synapses=tuple(syns),
                numeric=str(f.attrs["numeric"]),
                formats=Formats(**parse_json(f.attrs["formats"])),
                input_scale=float(f.attrs["input_scale"]),
                output_scale=float(f.attrs["output_scale"]),
                dt_s=None if np.isnan(dt) else dt,
                ticks_per_step=int(f.attrs.get("ticks_per_step", 1)),
            )
    # AttributeError: an h5py object of another kind than the layout's (a dataset where a
    # group belongs, numbers where a string does).
    except (
        OSError,
        KeyError,
        ValueError,
        IndexError,
        TypeError,
        AttributeError,
        InvalidGraphError,
    ) as exc:
        raise CorruptInputError(f"{path}: not a readable network.net ({exc})") from None


def _layer_index(value: Any, layers: int) -> int:
    """A synapse's source layer: an integer in [0, layers). int() took 0.5 as 0 and
    Python's indexing -12 as a layer counted from the end."""
    if not (isinstance(value, np.integer) and 0 <= value < layers):
        raise ValueError(f"a synapse's src {value!r} is not a layer index below {layers}")
    return int(value)
