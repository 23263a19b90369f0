"""network.net: the netlist as HDF5 in lava-dl netx's layout, with extension groups.

    write_network(net, "network.net")
    net2 = read_network("network.net")        # the same Netlist, rebuilt from the file
    # lava-dl's netx loads the leading layers it can express (attribute netx_layers):
    network = netx_network("network.net")      # hdf5.Network(..., num_layers=netx_layers)

netx (lava.lib.dl.netx.hdf5.Network) builds a chain of layers /layer/0, /layer/1, ...,
connecting each to the one before; a layer type it has no case for it skips (0.6.0 has
no else branch), so it would join the layers around one. Our networks are not chains
(residual adds, two-part GLU inputs, a bias source), so the file starts with the chain
netx can run exactly as numerics.md says (netx_chain) and puts everything else after
it, where netx builds nothing:

- layer 0 is the input: netx `type` "input" with `shape` and no `neuron` (netx makes
  no block for it, so its network's in-port is the first dense layer's synapse).
- then the chain: the int netlist's lif_chain (each a lif or cuba_lif fed by the layer
  before it alone, with at most a lag-1 self-synapse) up to the first layer where netx
  and Lava would compute something else (_inexact): its weights at exponent 0 are whole
  numbers that netx hands to Lava's Dense unchanged (netx_scaling, lava_keeps), whose
  sums, as netx shifts them, stay inside int32, and Lava's int32 LIF takes every input
  they can deliver exactly (lava_lif_is_exact). Each is a netx `dense` (`dense_rec`
  with the self-synapse) layer: `type`, `shape` (size, 1, 1), `weight` (out, in) and
  `weight_rec` float64 whole numbers, and /neuron with `type` "CUBA", `iDecay` =
  du + 1 (netx sets du = iDecay - 1), `vDecay` = dv, `vThMant` = vth, `refDelay` 1,
  `gradedSpike` 0; no `bias` and no `delay` (netx's defaults: 0).
- every other population is an `ext` layer.

Attribute `netx_layers` is 1 + the chain's length (0 with no chain: netx can load
nothing). Every layer, whatever its type, also has attributes `name`, `kind` and
`position` (the population's index in the netlist's topological order), `params/<name>`
int64 (the integer parameters) and `attrs/` (the population's attrs as HDF5
attributes), and per incoming synapse `inputs/<j>/`: `src` (the source's layer index in
the file), `weight` (int16 mantissas, dense (dst input width, src size), or a group
`data`, `indices`, `indptr` + attribute `shape` for a CSR matrix), `weight_exp`,
`delay`, `lag`, and the synapse's `name` as an attribute. read_network builds the
netlist from those and refuses a file whose netx fields say something else, or (v2) that
holds anything else, a shape other than (size, 1, 1) or another output_latency.

The root holds the format name and version, `numeric`, the bit widths, `input_scale`,
`output_scale`, `dt_s`, `output_latency` (ticks), `ticks_per_step` and `netx_layers`
as attributes. A time-multiplexed network (ticks_per_step > 1) has no chain: netx's CUBA
neuron cannot idle between a population's ticks.

Version 1 files (every population in netlist order, layer 0 an `ext` input that netx
cannot load, a lif fed by one synapse as `dense` with its mantissas as `weight`) are
still read.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse

from snncompile.errors import CorruptInputError, MissingDependencyError, UsageError
from snncompile.ir.compartments import with_added_params
from snncompile.ir.netlist import ChainLayer, Formats, Netlist, Population, Synapse
from snncompile.ir.ops import InvalidGraphError
from snncompile.ir.serialize import check_hdf5_size, check_hdf5_tree, parse_json
from snncompile.outputs import write_through_memory

from .netx_chain import netx_chain, netx_hdf5, netx_weight

FORMAT_NAME = "snncompile-loihi2-net"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)


def _h5py():
    try:
        import h5py
    except ImportError:
        raise MissingDependencyError("network.net needs h5py: pip install h5py") from None
    return h5py


def _type(name: str) -> np.ndarray:
    # lava-dl writes `type` as a (1,) array of 10-byte strings; netx reads value[0].
    return np.array([name.encode("ascii")], dtype="S10")


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
        _write_weight(g, syn)


def _write_common(layer: Any, pop: Population, position: int) -> None:
    layer.attrs["name"] = pop.name
    layer.attrs["kind"] = pop.kind
    layer.attrs["position"] = position
    layer.create_dataset("shape", data=np.array([pop.size, 1, 1], np.int64))
    params = layer.create_group("params")
    for name, value in pop.params.items():
        params.create_dataset(name, data=np.asarray(value).astype(np.int64))
    attrs = layer.create_group("attrs")
    for key, value in pop.attrs.items():
        attrs.attrs[key] = value


def _write_netx_fields(layer: Any, step: ChainLayer) -> None:
    fields = _netx_fields_of(step)
    layer.create_dataset("type", data=_type(fields["type"]))
    for key in ("weight", "weight_rec"):
        if key in fields:
            layer.create_dataset(key, data=np.array(fields[key], np.float64))
    neuron = layer.create_group("neuron")
    for key, value in fields["neuron"].items():
        neuron.create_dataset(key, data=_type(value) if key == "type" else np.int64(value))


def write_network(net: Netlist, path: str | os.PathLike[str]) -> None:
    """Write the int netlist `net` as network.net (layout in the module docstring)."""
    h5py = _h5py()
    if net.numeric != "int":
        raise InvalidGraphError("network.net holds quantized (int) netlists only")
    # Filled in memory, then written: on a failed disk write h5py crashed the process.
    write_through_memory(path, lambda stream: _fill_network(h5py, stream, net))


def _fill_network(h5py: Any, stream: Any, net: Netlist) -> None:
    chain = {layer.pop.name: layer for layer in netx_chain(net)}
    first = [net.input, *(layer.pop for layer in chain.values())]
    order = first + [p for p in net.populations if p not in first]
    index = {pop.name: i for i, pop in enumerate(order)}
    position = {pop.name: i for i, pop in enumerate(net.populations)}
    with h5py.File(stream, "w") as f:
        f.attrs["format"] = FORMAT_NAME
        f.attrs["version"] = FORMAT_VERSION
        f.attrs["numeric"] = net.numeric
        f.attrs["formats"] = json.dumps(net.formats.to_dict())
        f.attrs["input_scale"] = net.input_scale
        f.attrs["output_scale"] = net.output_scale
        f.attrs["dt_s"] = np.nan if net.dt_s is None else net.dt_s
        f.attrs["output_latency"] = net.output_latency
        f.attrs["ticks_per_step"] = net.ticks_per_step
        f.attrs["netx_layers"] = 1 + len(chain) if chain else 0
        for pop in order:
            layer = f.create_group(f"layer/{index[pop.name]}")
            _write_common(layer, pop, position[pop.name])
            if pop is net.input:
                layer.create_dataset("type", data=_type("input"))
            elif pop.name in chain:
                _write_netx_fields(layer, chain[pop.name])
            else:
                layer.create_dataset("type", data=_type("ext"))
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


def _read_population(layer: Any, kind: str, version: int) -> Population:
    name = str(layer.attrs["name"])
    size = int(layer["shape"][0])
    if version == 1 and kind == "dense":  # v1: a lif's parameters only in netx's fields
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


def _read_synapses(layers: list[Any], pops: list[Population], order: list[int]) -> list[Synapse]:
    """Every layer's inputs, the layers taken in `order` (a src is a file index)."""
    syns = []
    for layer, pop in ((layers[i], pops[i]) for i in order):
        for j in range(len(layer.get("inputs", {}))):
            g = layer["inputs"][str(j)]
            syns.append(
                Synapse(
                    name=str(g.attrs["name"]),
                    src=pops[_layer_index(g["src"][()], len(pops))].name,
                    dst=pop.name,
                    weight=_read_weight(g["weight"]),
                    weight_exp=_whole(g["weight_exp"][()], "weight_exp"),
                    delay=_whole(g["delay"][()], "delay"),
                    lag=_whole(g["lag"][()], "lag") if "lag" in g else 0,
                )
            )
    return syns


def _netlist_order(layers: list[Any], version: int) -> list[int]:
    """File index of each population in netlist order (v1 files are in that order)."""
    if version == 1:
        return list(range(len(layers)))
    positions = [layer.attrs["position"] for layer in layers]
    if not all(isinstance(p, np.integer) for p in positions) or sorted(
        int(p) for p in positions
    ) != list(range(len(layers))):
        raise ValueError("the layers' positions are not 0 .. layers - 1 once each")
    return sorted(range(len(layers)), key=lambda i: int(positions[i]))


def _check_netx_fields(f: Any, layers: list[Any], net: Netlist) -> None:
    """The fields netx reads say what the rest of a v2 file says: layers 1 .. hold the
    chain netx_chain finds, and no other layer has fields netx would read."""
    chain = netx_chain(net)
    if _whole(f.attrs["netx_layers"], "netx_layers") != (1 + len(chain) if chain else 0):
        raise ValueError(f"netx_layers is {f.attrs['netx_layers']}, the chain has {len(chain)}")
    if _type_of(layers[0]) != "input" or str(layers[0].attrs["name"]) != net.input.name:
        raise ValueError("layer 0 is not the input")
    # netx builds an input block (1-bit spikes out) from a `neuron` there.
    if set(layers[0]) != {"type", "shape", "params", "attrs"}:
        raise ValueError(f"layer 0 holds {sorted(layers[0])}, more than the input's fields")
    for i, layer in enumerate(layers[1:], start=1):
        if i > len(chain):
            if _type_of(layer) != "ext":
                raise ValueError(f"layer {i} is of type {_type_of(layer)!r}, not 'ext'")
        elif _netx_fields(layer) != _netx_fields_of(chain[i - 1]):
            raise ValueError(f"layer {i}'s netx fields differ from its population and synapses")


# What write_network puts in a v2 file, and nothing else: the netlist is rebuilt from part
# of it, so an edit elsewhere (a root output_latency a host reads to time the readout, a
# layer's shape beyond its size, a dataset added to an extension layer) was read as valid.
_ROOT_ATTRS = {
    "format", "version", "numeric", "formats", "input_scale", "output_scale", "dt_s",
    "output_latency", "ticks_per_step", "netx_layers",
}  # fmt: skip
_LAYER_MEMBERS = {"type", "shape", "params", "attrs", "inputs"}
_CHAIN_MEMBERS = {"weight", "weight_rec", "neuron"}  # their values: _check_netx_fields
_INPUT_MEMBERS = {"src", "weight_exp", "delay", "lag", "weight"}


def _check_layout(f: Any, layers: list[Any], net: Netlist) -> None:
    """A v2 file holds what write_network writes: its root attributes, and per layer its
    members and attributes, a shape (size, 1, 1) of integers, and per input its members;
    the root's output_latency is the netlist's. ValueError naming the first that is not."""
    extra = sorted(set(f.attrs) - _ROOT_ATTRS) or sorted(set(f) - {"layer"})
    if extra:
        raise ValueError(f"the file holds {extra[0]!r}, which network.net has not")
    latency = _whole(f.attrs["output_latency"], "output_latency")
    if latency != net.output_latency:
        raise ValueError(f"output_latency is {latency}, its layers give {net.output_latency}")
    chain = f.attrs["netx_layers"]
    for i, layer in enumerate(layers):
        allowed = _LAYER_MEMBERS | (_CHAIN_MEMBERS if 0 < i < chain else set())
        extra = sorted(set(layer) - allowed) or sorted(
            set(layer.attrs) - {"name", "kind", "position"}
        )
        if extra:
            raise ValueError(f"layer {i} holds {extra[0]!r}, which its layer type has not")
        shape = layer["shape"][()]
        size = net.population(str(layer.attrs["name"])).size
        if shape.dtype.kind not in "iu" or shape.tolist() != [size, 1, 1]:
            raise ValueError(f"layer {i}'s shape is {shape.tolist()}, not [{size}, 1, 1]")
        for j, group in layer.get("inputs", {}).items():
            extra = sorted(set(group) - _INPUT_MEMBERS) or sorted(set(group.attrs) - {"name"})
            if extra:
                raise ValueError(f"layer {i}'s input {j} holds {extra[0]!r}")


def _netx_fields(layer: Any) -> dict[str, Any]:
    """What netx reads from a dense or dense_rec layer (plus the name), as lists."""
    neuron = layer["neuron"]
    fields = {
        k: layer[k][()].tolist() for k in ("weight", "weight_rec", "bias", "delay") if k in layer
    }
    fields["neuron"] = {
        k: _type_of(neuron) if k == "type" else neuron[k][()].tolist() for k in neuron
    }
    fields["shape"] = layer["shape"][()].tolist()  # netx sizes the layer by its product
    return {"type": _type_of(layer), "name": str(layer.attrs["name"]), **fields}


def _netx_fields_of(step: ChainLayer) -> dict[str, Any]:
    params = {k: int(step.pop.params[k]) for k in ("du", "dv", "vth")}
    fields = {"type": "dense", "name": step.pop.name, "weight": netx_weight(step.feed).tolist()}
    if step.recurrent is not None:
        fields["type"] = "dense_rec"
        fields["weight_rec"] = netx_weight(step.recurrent).tolist()
    fields["shape"] = [step.pop.size, 1, 1]
    fields["neuron"] = {
        "type": "CUBA", "iDecay": params["du"] + 1, "vDecay": params["dv"],
        "vThMant": params["vth"], "refDelay": 1, "gradedSpike": 0,
    }  # fmt: skip
    return fields


def netx_network(path: str | os.PathLike[str]) -> Any:
    """lava-dl's netx Network of network.net's chain (netx_layers layers, the input's
    messages formats.message_bits wide): its in-port takes the input population's
    messages, its out-port sends the last chain layer's spikes. CorruptInputError for a
    file read_network refuses (netx builds whatever the fields say: an edited shape, a
    NaN weight or netx_layers of 10**9 loaded, helper-74), UsageError when netx can load
    no layer of it; MissingDependencyError without lava-dl."""
    message_bits = read_network(path).formats.message_bits
    layers = netx_layers(path)
    if layers < 2:
        raise UsageError(f"{path}: netx can load no layer of it (netx_layers {layers})")
    return load_unchecked(path, layers, message_bits)


def load_unchecked(path: str | os.PathLike[str], layers: int, message_bits: int) -> Any:
    """netx's Network of the file's first `layers` layers, unchecked: for tests that
    show what netx computes from a file read_network refuses."""
    return netx_hdf5().Network(
        net_config=str(path), num_layers=layers, input_message_bits=message_bits
    )


def netx_layers(path: str | os.PathLike[str]) -> int:
    """The root attribute netx_layers of a network.net read_network accepted (0 in a
    version 1 file, which netx could not load)."""
    with _h5py().File(path, "r") as f:
        return int(f.attrs.get("netx_layers", 0))


def read_network(path: str | os.PathLike[str]) -> Netlist:
    """Rebuild the Netlist from network.net; CorruptInputError for anything invalid."""
    h5py = _h5py()
    path = Path(path)
    check_hdf5_tree(path)
    check_hdf5_size(path)
    try:
        with h5py.File(path, "r") as f:
            version = f.attrs.get("version")
            if f.attrs.get("format") != FORMAT_NAME or version not in READABLE_VERSIONS:
                raise CorruptInputError(f"{path}: not a {FORMAT_NAME} v{FORMAT_VERSION} file")
            layers = [f["layer"][str(i)] for i in range(len(f["layer"]))]
            known = ("dense", "ext") if version == 1 else ("input", "dense", "dense_rec", "ext")
            pops = []
            for layer in layers:
                kind = _type_of(layer)
                if kind not in known:
                    raise CorruptInputError(f"{path}: layer type {kind!r} is unknown")
                pops.append(_read_population(layer, kind, version))
            order = _netlist_order(layers, version)
            syns = _read_synapses(layers, pops, order)
            dt = float(f.attrs["dt_s"])
            net = Netlist(
                populations=tuple(pops[i] for i in order),
                synapses=tuple(syns),
                numeric=str(f.attrs["numeric"]),
                formats=Formats(**parse_json(f.attrs["formats"])),
                input_scale=float(f.attrs["input_scale"]),
                output_scale=float(f.attrs["output_scale"]),
                dt_s=None if np.isnan(dt) else dt,
                ticks_per_step=int(f.attrs.get("ticks_per_step", 1)),
            )
            if version > 1:
                _check_netx_fields(f, layers, net)
                _check_layout(f, layers, net)
            return net
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


def _whole(value: Any, what: str) -> int:
    """An integer field as stored (an HDF5 integer): int() took 10.7 as 10 and the string
    '3' as 3 (helper-74)."""
    if not isinstance(value, np.integer):
        raise ValueError(f"{what} {value!r} is not an integer")
    return int(value)


def _layer_index(value: Any, layers: int) -> int:
    """A synapse's source layer: an integer in [0, layers). int() took 0.5 as 0 and
    Python's indexing -12 as a layer counted from the end."""
    if not (isinstance(value, np.integer) and 0 <= value < layers):
        raise ValueError(f"a synapse's src {value!r} is not a layer index below {layers}")
    return int(value)
