"""The Loihi 2 target: network.net against the netlist, hashes, the design-rule check,
the core mapping and the energy estimate (the last two also by hand on a tiny netlist)."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest
from scipy import sparse

from snncompile.api import export_model
from snncompile.artifact import read_artifact, write_artifact
from snncompile.cli import main
from snncompile.errors import CorruptInputError, HardwareRuleError, UsageError
from snncompile.frontend.nir_compile import default_calibration
from snncompile.ir.graph import Graph, Node
from snncompile.ir.netlist import Formats, Netlist, Population, Synapse, first_difference
from snncompile.ir.ops import LIF, Input, Linear, Output, Pool
from snncompile.reference.simulator import simulate
from snncompile.targets.loihi2 import (
    activity_rates,
    check,
    enforce,
    estimate,
    load_config,
    map_netlist,
    measure_graded_rates,
    read_network,
)
from snncompile.targets.loihi2.config import DEFAULT_PATH
from snncompile.targets.loihi2.mapping import Core

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINTS = ROOT / "examples" / "checkpoints"
NIR_EXAMPLES = ROOT / "tests" / "data" / "nir-examples"


def run(argv: list, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


def _export(tmp: Path, family: str) -> Path:
    out = tmp / f"{family}.loihi2"
    ckpt = CHECKPOINTS / f"{family}-sdigits.pt"
    with pytest.raises(SystemExit) as info:
        main(["export", str(ckpt), "--target", "loihi2", "-o", str(out)])
    assert info.value.code in (0, None)
    return out


@pytest.fixture(scope="module")
def spike_ssm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _export(tmp_path_factory.mktemp("l2"), "spike-ssm")


@pytest.fixture(scope="module")
def spiking_ssm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _export(tmp_path_factory.mktemp("l2"), "spiking-ssm")


# -- the bundled models -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["spike_ssm", "spiking_ssm"])
def test_artifact_files_and_hashes(name: str, request: pytest.FixtureRequest) -> None:
    path: Path = request.getfixturevalue(name)
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["target"] == "loihi2"
    assert set(manifest["files"]) | {"manifest.json"} == set(os.listdir(path))
    assert {"network.net", "resources.json", "estimate.json", "netlist.npz"} <= set(
        manifest["files"]
    )
    for file, digest in manifest["files"].items():
        assert hashlib.sha256((path / file).read_bytes()).hexdigest() == digest
    art = read_artifact(path)
    counts = {k: v for k, v in art.netlist.counts().items() if k != "synapses"}
    assert manifest["compartments"] == counts
    assert manifest["message_bits"] == 24 and manifest["output_latency"] == 10
    resources = json.loads((path / "resources.json").read_text())
    assert manifest["loihi2"]["cores"] == resources["cores"] >= len(art.netlist.populations)
    assert manifest["loihi2"]["chips"] == resources["chips"] == 1


def _layers(f: h5py.File) -> list[h5py.Group]:
    return [f["layer"][str(i)] for i in range(len(f["layer"]))]


def test_bundled_models_have_no_layer_netx_can_load(spiking_ssm: Path) -> None:
    """The bundled models' LIFs follow SSMs (netx's chain starts at the input) and take
    weights at exponent -15 (netx has no such weights): layer 0 is the input in netx's
    schema, netx_layers 0, and every other layer an extension layer."""
    net = read_artifact(spiking_ssm).netlist
    with h5py.File(spiking_ssm / "network.net", "r") as f:
        assert (f.attrs["version"], f.attrs["netx_layers"]) == (2, 0)
        types = [layer["type"][0] for layer in _layers(f)]
        assert types[0] == b"input" and set(types[1:]) == {b"ext"}
        lifs = [layer for layer in _layers(f) if layer.attrs["kind"] == "lif"]
        assert [layer.attrs["name"] for layer in lifs] == ["blocks.0.act", "blocks.1.act"]
        assert not any("neuron" in layer or "weight" in layer for layer in lifs)
    assert {s.weight_exp for p in ("blocks.0.act", "blocks.1.act") for s in net.incoming(p)} == {
        -15
    }


def test_a_version_1_network_net_is_still_read(spiking_ssm: Path, tmp_path: Path) -> None:
    """v1 (before netx_layers): layer 0 an `ext` input, a lif fed by one synapse a
    `dense` layer whose parameters are only in netx's neuron fields, no positions."""
    path = tmp_path / "network.net"
    shutil.copy(spiking_ssm / "network.net", path)
    with h5py.File(path, "r+") as f:
        f.attrs["version"] = 1
        del f.attrs["netx_layers"]
        for layer in _layers(f):
            del layer.attrs["position"]
        _replace_dataset(f, "layer/0/type", np.array([b"ext"], "S10"))
        for layer in _layers(f):
            if layer.attrs["kind"] == "lif":
                _replace_dataset(f, f"{layer.name}/type", np.array([b"dense"], "S10"))
                params = {k: int(v[()]) for k, v in layer["params"].items()}
                del layer["params"], layer.attrs["kind"]
                neuron = layer.create_group("neuron")
                neuron["iDecay"], neuron["vDecay"] = params["du"] + 1, params["dv"]
                neuron["vThMant"] = params["vth"]
    assert first_difference(read_network(path), read_artifact(spiking_ssm).netlist) is None


def _weight(node: h5py.Dataset | h5py.Group) -> np.ndarray:
    if isinstance(node, h5py.Group):
        shape = tuple(node.attrs["shape"])
        parts = (node["data"][()], node["indices"][()], node["indptr"][()])
        return sparse.csr_matrix(parts, shape=shape).toarray()
    return node[()]


@pytest.mark.parametrize("name", ["spike_ssm", "spiking_ssm"])
def test_extension_layers_equal_the_netlist(name: str, request: pytest.FixtureRequest) -> None:
    path: Path = request.getfixturevalue(name)
    net = read_artifact(path).netlist
    with h5py.File(path / "network.net", "r") as f:
        assert f.attrs["format"] == "snncompile-loihi2-net"
        layers = _layers(f)
        assert [layer.attrs["name"] for layer in layers] == [p.name for p in net.populations]
        for i, (layer, pop) in enumerate(zip(layers, net.populations, strict=True)):
            syns = net.incoming(pop.name)
            assert len(layer.get("inputs", {})) == len(syns)
            for j, syn in enumerate(syns):
                g = layer["inputs"][str(j)]
                assert g.attrs["name"] == syn.name
                assert layers[g["src"][()]].attrs["name"] == syn.src
                assert np.array_equal(_weight(g["weight"]), syn.dense())
                assert (g["weight_exp"][()], g["delay"][()]) == (syn.weight_exp, syn.delay)
            assert layer["type"][0] == (b"input" if i == 0 else b"ext")
            assert layer.attrs["kind"] == pop.kind and layer.attrs["position"] == i
            assert layer["shape"][()].tolist() == [pop.size, 1, 1]
            assert set(layer["params"]) == set(pop.params)
            for key, value in pop.params.items():
                stored = layer["params"][key][()]
                assert stored.dtype == np.int64 and np.array_equal(stored, value), key
            assert dict(layer["attrs"].attrs) == pop.attrs


@pytest.mark.parametrize("name", ["spike_ssm", "spiking_ssm"])
def test_network_net_alone_rebuilds_the_netlist(name: str, request: pytest.FixtureRequest) -> None:
    path: Path = request.getfixturevalue(name)
    net = read_artifact(path).netlist
    rebuilt = read_network(path / "network.net")
    assert [(p.name, p.kind, p.size) for p in rebuilt.populations] == [
        (p.name, p.kind, p.size) for p in net.populations
    ]
    assert (rebuilt.formats, rebuilt.input_scale, rebuilt.output_scale) == (
        net.formats,
        net.input_scale,
        net.output_scale,
    )
    x = np.random.default_rng(0).uniform(0, 1, size=(3, 24, 1))
    a, b = simulate(net, x, record=True), simulate(rebuilt, x, record=True)
    assert np.array_equal(a.readout, b.readout)
    for pop in net.populations:
        if pop.compartment.sends:
            assert np.array_equal(a.traces[pop.name], b.traces[pop.name]), pop.name


def test_tampered_network_net_is_refused(spike_ssm: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    copy = tmp_path / "copy.loihi2"
    shutil.copytree(spike_ssm, copy)
    data = bytearray((copy / "network.net").read_bytes())
    data[len(data) // 2] ^= 1
    (copy / "network.net").write_bytes(bytes(data))
    with pytest.raises(CorruptInputError, match=r"network\.net: sha256 does not match"):
        read_artifact(copy)
    code, out, err = run(["inspect", copy], capsys)
    assert code == 6 and out == "" and "network.net: sha256 does not match" in err


def test_manifest_must_list_the_target_files(spike_ssm: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy.loihi2"
    shutil.copytree(spike_ssm, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    del manifest["files"]["estimate.json"]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CorruptInputError, match=r"does not list estimate\.json"):
        read_artifact(copy)


@pytest.mark.parametrize("unlist", [False, True], ids=["listed", "unlisted"])
@pytest.mark.parametrize("target", ["reference", "lava"])
def test_a_manifest_naming_another_target_is_refused(
    spike_ssm: Path, tmp_path: Path, target: str, unlist: bool
) -> None:
    """The manifest is not hashed: "target" edited from loihi2 to reference was read as a
    reference artifact, so network.net was never compared with the netlist again; also
    with the Loihi 2 files taken out of the manifest's list (audit47)."""
    copy = tmp_path / "copy.loihi2"
    shutil.copytree(spike_ssm, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["target"] = target
    if unlist:
        for name in ("network.net", "resources.json", "estimate.json"):
            del manifest["files"][name]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    verb = "sits beside estimate.json, " if unlist else "lists "
    message = rf"manifest\.json: {verb}network\.net, .*which a {target} artifact does not hold"
    with pytest.raises(CorruptInputError, match=message):
        read_artifact(copy)


OVERRIDDEN = {"target_config_overrides": {"limits.cores_per_chip": "lab.toml"}}


@pytest.mark.parametrize(
    "edit",
    [{"cores": -5}, {"chips": "x"}, {"cores": True}, OVERRIDDEN, {}],
    ids=["-5", "x", "True", "overrides", "none"],
)
def test_the_manifests_cores_and_chips_are_those_of_resources_json(
    spike_ssm: Path, tmp_path: Path, edit: dict
) -> None:
    """inspect --json showed an edited manifest's -5 cores beside the text's 12, and an
    override list that resources.json (and the text) did not have."""
    copy = tmp_path / "copy.loihi2"
    shutil.copytree(spike_ssm, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    if edit:
        manifest["loihi2"].update(edit)
    else:
        del manifest["loihi2"]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    message = r"manifest\.json: loihi2 .* is not resources\.json's" if edit else "no loihi2"
    with pytest.raises(CorruptInputError, match=message):
        read_artifact(copy)


def test_a_network_net_that_differs_from_the_netlist_is_refused(
    spike_ssm: Path, tmp_path: Path
) -> None:
    """network.net is what a host deploys; simulate and verify run netlist.npz. A valid
    edit of one weight (on its grid), rehashed into the manifest, must not pass."""
    import h5py

    copy = tmp_path / "copy.loihi2"
    shutil.copytree(spike_ssm, copy)
    with h5py.File(copy / "network.net", "r+") as f:
        weight = f["layer"]["2"]["inputs"]["0"]["weight"]
        name = f["layer"]["2"]["inputs"]["0"].attrs["name"]
        values = weight[()]
        values.flat[0] += 2 if values.flat[0] < 0 else -2  # stays on the 8-bit grid
        weight[...] = values
    manifest = json.loads((copy / "manifest.json").read_text())
    digest = hashlib.sha256((copy / "network.net").read_bytes()).hexdigest()
    manifest["files"]["network.net"] = digest
    (copy / "manifest.json").write_text(json.dumps(manifest))
    message = rf"network\.net: differs from netlist\.npz \(synapse '{name}': weights differ\)"
    with pytest.raises(CorruptInputError, match=message):
        read_artifact(copy)


def _replace_dataset(f, path: str, value: object) -> None:  # type: ignore[no-untyped-def]
    del f[path]
    f[path] = value


# An edit of network.net, and the reason read_network gives (audit46: the first two were
# exit 1 "internal error", the src edits were read as layer 0 and as a layer counted
# from the end).
NETWORK_DAMAGE = {
    "a layer type of numbers": (
        lambda f: _replace_dataset(f, "layer/0/type", np.array([5])),
        "has no attribute 'decode'",
    ),
    "params a dataset": (
        lambda f: _replace_dataset(f, "layer/2/params", np.zeros(3)),
        "'Dataset' object has no attribute 'items'",
    ),
    "src 0.5": (
        lambda f: _replace_dataset(f, "layer/2/inputs/0/src", 0.5),
        r"a synapse's src 0\.5 is not a layer index below \d+",
    ),
    "src -1": (
        lambda f: _replace_dataset(f, "layer/2/inputs/0/src", -1),
        r"a synapse's src -1 is not a layer index below \d+",
    ),
    # helper-63: scipy's kernels wrote where the indptr pointed (free(): invalid pointer,
    # exit 134 without a word), and an index past the columns aborted at exit once.
    "indptr past the data": (
        lambda f: f["layer/10/inputs/0/weight/indptr"].__setitem__(3, 1_000_000),
        "indptr",
    ),
    "an index past the columns": (
        lambda f: f["layer/10/inputs/0/weight/indices"].__setitem__(0, 99_999),
        "indices must be < 64",
    ),
    "fractional indices": (
        lambda f: _replace_dataset(
            f, "layer/10/inputs/0/weight/indices", f["layer/10/inputs/0/weight/indices"][()] + 0.5
        ),
        "sparse weight indices are not integers",
    ),
    # Read as valid before: read_network rebuilt the netlist from the rest of the file.
    "the root's output_latency": (
        lambda f: f.attrs.__setitem__("output_latency", f.attrs["output_latency"] + 3),
        r"output_latency is (\d+), its layers give (?!\1)\d+",
    ),
    "an ext layer's shape beyond its size": (
        lambda f: _replace_dataset(f, "layer/2/shape", np.array([64, 3, 1])),
        r"layer 2's shape is \[64, 3, 1\], not \[64, 1, 1\]",
    ),
    "the input's shape beyond its size": (
        lambda f: _replace_dataset(f, "layer/0/shape", np.array([1, 1, 2])),
        r"layer 0's shape is \[1, 1, 2\], not \[1, 1, 1\]",
    ),
    "a shape of floats": (
        lambda f: _replace_dataset(f, "layer/2/shape", np.array([64.0, 1.0, 1.0])),
        r"layer 2's shape is \[64.0, 1.0, 1.0\]",
    ),
    "a netx bias in an ext layer": (
        lambda f: f["layer/2"].create_dataset("bias", data=np.zeros(64)),
        "layer 2 holds 'bias', which its layer type has not",
    ),
    "a layer attribute": (
        lambda f: f["layer/3"].attrs.__setitem__("delay", 4),
        "layer 3 holds 'delay', which its layer type has not",
    ),
    "an input's extra dataset": (
        lambda f: f["layer/3/inputs/0"].create_dataset("bias", data=np.zeros(4)),
        "layer 3's input 0 holds 'bias'",
    ),
    "a root attribute": (
        lambda f: f.attrs.__setitem__("dt", 0.001),
        "the file holds 'dt', which network.net has not",
    ),
}


@pytest.mark.parametrize("damage", NETWORK_DAMAGE, ids=list(NETWORK_DAMAGE))
def test_a_network_net_of_another_layout_is_refused(
    spike_ssm: Path, tmp_path: Path, damage: str
) -> None:
    import h5py

    path = tmp_path / "network.net"
    shutil.copy(spike_ssm / "network.net", path)
    edit, reason = NETWORK_DAMAGE[damage]
    with h5py.File(path, "r+") as f:
        edit(f)
    with pytest.raises(
        CorruptInputError, match=rf"network\.net: not a readable network\.net \(.*{reason}"
    ):
        read_network(path)


@pytest.mark.parametrize("how", ["link", "storage"])
def test_a_network_net_reading_another_file_is_refused_unopened(
    spike_ssm: Path, tmp_path: Path, how: str
) -> None:
    """helper-63, helper-64: an external link, or a dataset stored in another file, to a
    FIFO blocked read_network beyond SIGTERM; to any file on the disk, it was read. Both
    are refused before anything follows them."""
    import h5py

    path = tmp_path / "network.net"
    shutil.copy(spike_ssm / "network.net", path)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with h5py.File(path, "r+") as f:
        if how == "link":
            del f["layer/10/inputs/0/weight"]
            f["layer/10/inputs/0/weight"] = h5py.ExternalLink(str(fifo), "/w")
            message = r"HDF5 link /layer/10/inputs/0/weight points into another file"
        else:
            data = "layer/10/inputs/0/weight/data"
            values = f[data][()]
            del f[data]
            f.create_dataset(
                data, values.shape, values.dtype, external=[(str(fifo), 0, values.nbytes)]
            )
            message = rf"HDF5 dataset /{data} is stored in '.*fifo'"
    with pytest.raises(CorruptInputError, match=message):
        read_network(path)


def _with_value(path: Path, keys: tuple[str, ...], value: object) -> str:
    data = json.loads(path.read_text())
    inner = data
    for key in keys[:-1]:
        inner = inner[key]
    inner[keys[-1]] = value
    return json.dumps(data)


# name -> (file, its edited content): each lacks or mistypes what inspect prints.
EDITS = {
    "resources empty": ("resources.json", lambda p: "{}"),
    "estimate empty": ("estimate.json", lambda p: "{}"),
    "cores a string": ("resources.json", lambda p: _with_value(p, ("cores",), "twelve")),
    "peak a bool": (
        "resources.json",
        lambda p: _with_value(p, ("peak_per_core", "compartments"), True),
    ),
    "energy a list": (
        "estimate.json",
        lambda p: _with_value(p, ("energy_estimate_pj", "total_per_inference"), [1]),
    ),
    "a printed key missing": (
        "estimate.json",
        lambda p: _with_value(p, ("synaptic_ops_estimate",), {"per_inference": 1.0}),
    ),
    "steps null": ("estimate.json", lambda p: _with_value(p, ("steps_per_inference",), None)),
    "assumptions numbers": ("estimate.json", lambda p: _with_value(p, ("assumptions",), [1, 2])),
}


@pytest.mark.parametrize("case", EDITS, ids=list(EDITS))
def test_inspect_refuses_a_rehashed_hand_edit_of_the_loihi2_files(  # type: ignore[no-untyped-def]
    spike_ssm: Path, tmp_path: Path, capsys, case: str
) -> None:
    name, edit = EDITS[case]
    copy = tmp_path / "copy.loihi2"
    shutil.copytree(spike_ssm, copy)
    (copy / name).write_text(edit(copy / name))
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["files"][name] = hashlib.sha256((copy / name).read_bytes()).hexdigest()
    (copy / "manifest.json").write_text(json.dumps(manifest))
    code, out, err = run(["inspect", copy], capsys)
    assert code == 6 and out == "" and err.count("\n") == 1
    if name == "resources.json":  # refused on reading, before inspect summarizes it
        assert f"{copy / name}: " in err
    else:
        assert "resources.json or estimate.json lacks what export writes" in err


def _edit_core(path: Path, key: str, value: object, core: int = 3) -> str:
    data = json.loads(path.read_text())
    data["per_core"][core][key] = value
    return json.dumps(data)


def _move_slice(path: Path) -> str:
    data = json.loads(path.read_text())
    data["per_core"][3]["populations"][0]["start"] += 1  # a compartment placed nowhere
    data["per_core"][3]["compartments"] -= 1
    data["compartments"] -= 1
    data["chip_totals"][0]["compartments"] -= 1
    return json.dumps(data)


# Edits of resources.json's placement (what a host would load onto which core) that
# simulate and inspect read as valid: each breaks what export writes.
PLACEMENT_EDITS = {
    "a core's compartments": (
        lambda p: _edit_core(p, "compartments", 300),
        "core 3's compartments are not those of its populations",
    ),
    "a compartment placed nowhere": (
        _move_slice,
        "blocks.0.ssm's 2112 compartments are not placed once each",
    ),
    "a core's chip": (lambda p: _edit_core(p, "chip", 1), "core 3 is numbered 3 on chip 1"),
    "a core's synapse bytes": (
        lambda p: _edit_core(p, "synapse_bytes", 1),
        r"synapse_bytes \d+ is not its cores' \d+ \(edited after export\)",
    ),
    "the chip totals": (
        lambda p: _with_value(p, ("chip_totals",), [{"compartments": 1, "stored_weights": 1}]),
        r"chip_totals .* is not its cores'",
    ),
    "a population the netlist has not": (
        lambda p: _edit_core(p, "populations", [{"name": "x", "start": 0, "stop": 1}], 0),
        r"lacks what export writes \(KeyError 'x'\)",
    ),
}


@pytest.mark.parametrize("case", PLACEMENT_EDITS, ids=list(PLACEMENT_EDITS))
def test_simulate_refuses_a_rehashed_edit_of_the_placement(  # type: ignore[no-untyped-def]
    spike_ssm: Path, tmp_path: Path, capsys, case: str
) -> None:
    edit, reason = PLACEMENT_EDITS[case]
    copy = tmp_path / "copy.loihi2"
    shutil.copytree(spike_ssm, copy)
    file = copy / "resources.json"
    file.write_text(edit(file))
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["files"]["resources.json"] = hashlib.sha256(file.read_bytes()).hexdigest()
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CorruptInputError, match=rf"resources\.json: {reason}"):
        read_artifact(copy)
    np.save(tmp_path / "x.npy", np.zeros((1, 4, 1)))
    code, out, err = run(["simulate", copy, "--input", tmp_path / "x.npy"], capsys)
    assert code == 6 and out == "" and err.count("\n") == 1 and "resources.json: " in err


def test_inspect_shows_cores_chips_and_the_estimate(spike_ssm: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run(["inspect", spike_ssm], capsys)
    assert code == 0 and "target loihi2" in out
    assert "loihi2: 12 core(s) on 1 chip(s)" in out
    assert "not a Loihi measurement" in out and "dense model" in out
    code, out, _ = run(["inspect", spike_ssm, "--json"], capsys)
    info = json.loads(out)["loihi2"]
    assert (info["cores"], info["chips"]) == (12, 1)
    est = json.loads((spike_ssm / "estimate.json").read_text())
    assert info["estimate"]["energy_pj"] == est["energy_estimate_pj"]


def test_inspect_names_the_per_core_limits_the_mapping_used(
    spike_ssm: Path, capsys, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    # inspect showed compartments_per_core as the limit ("2112 of 8192") where
    # neurons_per_core = 1000 had capped the mapping; and never said that the weight
    # exponents were checked only against a placeholder range (helper-65).
    from snncompile.cli_text import print_loihi2
    from snncompile.targets.loihi2 import summarize_artifact

    code, out, _ = run(["inspect", spike_ssm], capsys)
    assert code == 0 and "the most any core uses:" in out
    assert "compartments   2112 of 8192" in out
    assert "weight exponents checked against [-31, 31] (Loihi 2's own range" in out
    assert "netx           no layer of network.net loads in lava-dl's netx" in out
    for name in ("resources.json", "estimate.json", "network.net"):
        shutil.copy(spike_ssm / name, tmp_path / name)
    resources = json.loads((tmp_path / "resources.json").read_text())
    resources["target"]["limits"]["neurons_per_core"]["value"] = 1000
    resources["target"]["limits"]["weight_exp_min"]["value"] = -8
    (tmp_path / "resources.json").write_text(json.dumps(resources))
    summary = summarize_artifact(tmp_path)
    assert summary["limits_per_core"]["compartments"] == 1000
    print_loihi2(summary)
    out = capsys.readouterr().out
    assert "compartments   2112 of 1000" in out and "checked against [-8, 31]" in out
    print_loihi2({**summary, "netx_layers": 3})
    assert "layers 0-2 of network.net load in lava-dl's netx (hdf5.Network(..., num_layers=3))" in (
        capsys.readouterr().out
    )


def test_bundled_compartment_ops_by_kind(spike_ssm: Path) -> None:
    """Compartment multiplies per step (estimate.py's docstring): an SSM mode 6 (complex
    a z is 4 real multiplies, b x 2), a reset-refractory neuron 1 (its decay), a GLU
    channel 2 (interpolation and gating); accumulators, input, bias and readout 0. The
    bundled spike-ssm has 4224 SSM compartments, 2 x 64 neurons and 2 x 64 GLU channels."""
    est = json.loads((spike_ssm / "estimate.json").read_text())["compartment_ops_estimate"]
    counts = read_artifact(spike_ssm).netlist.counts()
    assert (counts["ssm"], counts["reset_refractory"], counts["glu"]) == (4224, 128, 128)
    assert est["by_kind_per_step"] == {"ssm": 6 * 4224, "reset_refractory": 128, "glu": 256}
    assert est["macs_per_step"] == 6 * 4224 + 128 + 256
    assert est["macs_per_inference"] == 64 * est["macs_per_step"]  # L = 64


def test_bundled_mapping_counts_add_up(spike_ssm: Path) -> None:
    net = read_artifact(spike_ssm).netlist
    res = json.loads((spike_ssm / "resources.json").read_text())
    cores = res["per_core"]
    total = sum(v for k, v in net.counts().items() if k != "synapses")
    assert sum(c["compartments"] for c in cores) == res["compartments"] == total
    nonzero = sum(int(np.count_nonzero(s.values())) for s in net.synapses)
    assert sum(c["stored_weights"] for c in cores) == nonzero
    for pop in net.populations:  # every compartment placed once, in order
        pieces = [
            (p["start"], p["stop"])
            for c in cores
            for p in c["populations"]
            if p["name"] == pop.name
        ]
        assert pieces[0][0] == 0 and pieces[-1][1] == pop.size
        assert all(a[1] == b[0] for a, b in itertools.pairwise(pieces))


# -- design rules ---------------------------------------------------------------------


def test_drc_lists_every_violation_and_writes_nothing(
    spike_ssm: Path,
    tmp_path: Path,
    capsys,  # type: ignore[no-untyped-def]
) -> None:
    config = tmp_path / "tiny.toml"
    config.write_text(
        "[limits]\ncores_per_chip = 2\ndelay_max = 1\n"
        "[limits.weight_exp_min]\nvalue = -8\nsource = 'Loihi 1 wgtExp'\n"
    )
    net = read_artifact(spike_ssm).netlist  # the same netlist the export below compiles
    delayed = [s.name for s in net.synapses if s.delay > 1]
    low_exp = [s.name for s in net.synapses if s.weight_exp < -8]
    assert delayed and low_exp
    before = set(os.listdir(tmp_path))
    ckpt = CHECKPOINTS / "spike-ssm-sdigits.pt"
    argv = ["export", ckpt, "--target", "loihi2", "--target-config", config]
    code, out, err = run([*argv, "-o", tmp_path / "out"], capsys)
    assert code == 5 and out == "" and err.count("\n") == 1
    n = len(delayed) + len(low_exp) + 1  # + the core count
    assert err.startswith(f"error: {n} design-rule violations: ")
    for name in delayed:
        assert f"synapse {name}: delay" in err
    for name in low_exp:
        assert f"synapse {name}: weight_exp" in err
    assert "needs 12 cores on 6 chip(s), more than the 2 available" in err
    assert set(os.listdir(tmp_path)) == before  # no output, no temporary directory


def test_bad_target_configs(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    ckpt = CHECKPOINTS / "spike-ssm-sdigits.pt"
    cases = {
        "[limits]\ncores_per_chip = 'many'\n": (2, "value must be int"),
        "[limits]\ncore_per_chip = 2\n": (2, "unknown entry limits.core_per_chip"),
        "[limits]\ncores_per_chip = 0\n": (2, "cores_per_chip must be >= 1"),
        "[limits\n": (6, "not valid TOML"),
        # Python's int guard (a bare ValueError, exit 1 before), without its advice
        f"[limits]\ncores_per_chip = {'1' * 5000}\n": (6, "value has 5000 digits)"),
        "a = " + "[" * 100_000 + "]" * 100_000: (6, "is nested too deeply to read"),
        "[energy]\npj_per_mac = nan\n": (2, "must be a finite number"),
        "[energy]\npj_per_mac = inf\n": (2, "must be a finite number"),
        # [target] was skipped unread: any key and any value passed
        "[target]\nfoo = 1\n": (2, "unknown entry target.foo (known: description, name)"),
        "[target]\ndescription = 5\n": (2, "[target.description]: must be a non-empty string"),
        "target = 3\n": (2, "[target] must be a table"),
        "[limits.delay_max]\nvalue = 1\nsource = 5\n": (2, "'source' must be a string, got 5"),
        # the DRC's 1 << vth_bits ran out of memory (exit 1)
        f"[limits]\nvth_bits = {2**63 - 1}\n": (2, "limits.vth_bits must be <= 64"),
        "[limits]\ndecay_bits = 65\n": (2, "limits.decay_bits must be <= 64"),
    }
    for text, (code, message) in cases.items():
        (tmp_path / "c.toml").write_text(text)
        argv = ["export", ckpt, "--target", "loihi2", "--target-config", tmp_path / "c.toml"]
        got, _, err = run([*argv, "-o", tmp_path / "out"], capsys)
        assert (got, message in err) == (code, True), err
    got, _, err = run(
        ["export", ckpt, "--target-config", tmp_path / "c.toml", "-o", tmp_path / "o"], capsys
    )
    assert got == 2 and "applies to --target loihi2" in err
    assert sorted(os.listdir(tmp_path)) == ["c.toml"]


def test_an_override_may_rename_the_target_and_says_so(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text('[target]\nname = "loihi2-lab"\n')
    config = load_config(tmp_path / "c.toml")
    assert config.to_dict()["name"] == "loihi2-lab"
    assert config.overrides == {"target.name": str(tmp_path / "c.toml")}
    # a copy of the shipped file reads (its [target] table was the one it could not have)
    (tmp_path / "copy.toml").write_bytes(DEFAULT_PATH.read_bytes())
    copy, base = load_config(tmp_path / "copy.toml"), load_config()
    assert copy.name == "loihi2" and "target.name" not in copy.overrides
    for section, entries in base.sections.items():
        assert {k: e.value for k, e in copy.sections[section].items()} == {
            k: e.value for k, e in entries.items()
        }


def test_override_marks_the_source() -> None:
    base = load_config()
    assert base.limit("cores_per_chip") == 128 and base.limit("neurons_per_core") == 8192
    entry = base.sections["limits"]["neurons_per_core"]
    assert entry.verified is False and "8192" in entry.source
    assert base.sections["limits"]["synapse_memory_bytes_per_core"].value == 128 * 1024


# -- a tiny netlist, by hand ------------------------------------------------------------


def tiny_netlist(delay: int = 0, weight_exp: int = 0) -> Netlist:
    """in(2) -> acc(3) <- bias; acc -> spk (LIF, 3) -> out (readout, 2)."""
    pops = (
        Population("in", "input", 2),
        Population("bias", "bias", 1, {"value": np.array(5.0)}),
        Population("acc", "accumulator", 3),
        Population(
            "spk", "lif", 3, {"du": np.array(4095.0), "dv": np.array(512.0), "vth": np.array(100.0)}
        ),
        Population("out", "readout", 2, attrs={"mode": "mean"}),
    )
    syns = (
        Synapse("in->acc", "in", "acc", np.array([[2.0, 0], [0, 4], [6, 8]])),
        Synapse("bias->acc", "bias", "acc", np.array([[2.0], [2], [0]])),
        Synapse("acc->spk", "acc", "spk", 2 * np.eye(3), weight_exp=weight_exp, delay=delay),
        Synapse("spk->out", "spk", "out", np.array([[2.0, 2, 0], [0, 0, 2]])),
    )
    return Netlist(pops, syns, numeric="int", formats=Formats())


def tiny_graph() -> Graph:
    return Graph(
        (
            Node("input", Input(size=2)),
            Node("enc", Linear(np.ones((3, 2)), np.zeros(3)), ("input",)),
            Node("spk", LIF(tau=0.875, threshold=np.ones(3)), ("enc",)),
            Node("pool", Pool(mode="mean"), ("spk",)),
            Node("dec", Linear(np.ones((2, 3)), np.zeros(2)), ("pool",)),
            Node("output", Output(), ("dec",)),
        )
    )


def _config(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    (tmp_path / "cfg.toml").write_text(text)
    return load_config(tmp_path / "cfg.toml")


def test_estimate_by_hand() -> None:
    net = tiny_netlist()
    rates = activity_rates(net, {"spk": 0.25}, {"in": 0.5, "acc": 0.75})
    assert rates["bias"] == {"rate": 1.0, "basis": "bias: sends its value during the input window"}
    est = estimate(net, tiny_graph(), steps=10, rates=rates, config=load_config())
    # per step: graded 0.5 x 4 (in) + 1 x 2 (bias) + 0.75 x 3 (acc); spikes 0.25 x 3 (spk)
    ops = est["synaptic_ops_estimate"]
    assert ops["macs_per_step"] == 0.5 * 4 + 2 + 0.75 * 3 == 6.25
    assert ops["accumulates_per_step"] == 0.75
    assert (ops["macs_per_inference"], ops["accumulates_per_inference"]) == (62.5, 7.5)
    assert est["synapses"]["spk->out"]["op"] == "accumulate"
    energy = est["energy_estimate_pj"]
    assert energy["synaptic_per_inference"] == pytest.approx(7.5 * 0.9 + 62.5 * 4.6)  # 294.25
    # LIF: 2 multiplies (u and v decays) x 3 neurons x 10 steps at 4.6 pJ
    assert est["compartment_ops_estimate"]["macs_per_inference"] == 60
    assert energy["total_per_inference"] == pytest.approx(294.25 + 60 * 4.6)
    # dense: encoder 3x2 + LIF leak 3 per step; decoder 2x3 once after pooling
    dense = est["dense_model_estimate"]
    assert (dense["macs_per_step"], dense["macs_once_after_pooling"]) == (9, 6)
    assert dense["macs_per_inference"] == 96
    assert dense["energy_pj_per_inference"] == pytest.approx(96 * 4.6)
    assert est["ratio_estimate"]["dense_energy_over_synaptic"] == pytest.approx(441.6 / 294.25)
    assert "estimate" in est["label"] and any("45 nm" in a for a in est["assumptions"])


def test_the_dense_model_counts_the_batchnorms_the_passes_fold() -> None:
    """The dense model is the PyTorch model as traced: a prenorm block's BatchNorm (one
    multiply per channel and step) is folded into the SSM by the passes, but the PyTorch
    model computes it. By hand for d_model 8, d_state 4 (2 modes), 1 block, 3 classes:
    encoder 1x8, norm 8, S4D 8 x 2 x 8 + 8, neuron leak 8, GLU projection 8x16 and gating
    8 per step; the decoder 8x3 once after pooling."""
    import torch

    from snncompile.compiler import compile_model
    from snncompile.models.backbone import ModelConfig, build_model
    from snncompile.targets.loihi2 import prepare

    torch.manual_seed(0)
    cfg = ModelConfig(
        family="spike-ssm", d_input=1, d_output=3, d_model=8, d_state=4, n_layers=1,
        prenorm=True,
    )  # fmt: skip
    calib = np.random.default_rng(0).random((4, 16, 1))
    compiled = compile_model(build_model(cfg), calibration=calib)
    assert "batchnorm" not in {node.op.kind for node in compiled.graph}  # folded
    dense = prepare(compiled).estimate["dense_model_estimate"]
    assert dense["by_node"]["blocks.0.norm"] == 8
    assert dense["macs_per_step"] == 8 + 8 + (8 * 2 * 8 + 8) + 8 + 8 * 16 + 8 == 296
    assert dense["macs_once_after_pooling"] == 8 * 3
    assert dense["macs_per_inference"] == 16 * 296 + 24


def test_the_dense_model_counts_a_nir_neurons_recurrent_weights() -> None:
    """A NIR neuron's recurrent loop (R y, held in the EulerNeuron as rec_weight) is
    multiply-accumulates of the dense model like the SparseLinear feeding it; it was left
    out (snnTorch's braille_noDelay_noBias_subtract.nir: 854 per step, without 40 x 40)."""
    from snncompile.ir.nir_ops import EulerNeuron, SparseLinear
    from snncompile.targets.loihi2 import dense_model_macs

    rec = sparse.csr_matrix(np.array([[0.0, 1.0, 0.5], [0.0, 0.0, 0.0], [2.0, 0.0, 0.0]]))
    ones = np.ones(3)
    neuron = EulerNeuron(
        alpha_u=0.5 * ones,
        alpha_v=0.9 * ones,
        theta=ones,
        v_bias=0 * ones,
        lags=np.zeros(1, np.int64),
        rec_weight=rec,
    )
    feed = SparseLinear(sparse.csr_matrix(np.ones((3, 2))), np.zeros(3))
    graph = Graph(
        (
            Node("input", Input(size=2)),
            Node("w", feed, ("input",)),
            Node("lif", neuron, ("w",)),
            Node("output", Output(), ("lif",)),
        )
    )
    macs = dense_model_macs(graph)
    # the input weights 3 x 2, then per neuron 2 decays, and the loop's 3 nonzero weights
    assert macs["by_node"] == {"w": 6, "lif": 2 * 3 + 3}
    assert macs["per_step"] == 15


def test_unmeasured_graded_sources_count_as_always_active() -> None:
    net = tiny_netlist()
    rates = activity_rates(net, {"spk": 0.25})
    assert rates["in"]["rate"] == rates["acc"]["rate"] == 1.0
    est = estimate(net, None, steps=1, rates=rates, config=load_config())
    assert est["synaptic_ops_estimate"]["macs_per_step"] == 4 + 2 + 3
    assert any("acc, in: counted as always active" in a for a in est["assumptions"])
    assert "dense_model_estimate" not in est


def test_measured_graded_rates_count_nonzero_messages() -> None:
    net = tiny_netlist()
    x = np.zeros((2, 8, 2))
    x[0, :4, 0] = 1.0  # 4 of 32 input messages are nonzero
    rates = measure_graded_rates(net, x)
    assert rates["in"] == 4 / 32
    # acc = 2 in0 + 2 bias, 4 in1 + 2 bias, 6 in0 + 8 in1: the bias keeps rows 0 and 1
    # nonzero every step; row 2 only when the input is (4 of 16 steps)
    assert rates["acc"] == (16 + 16 + 4) / 48


def test_measured_graded_rates_in_parts_keep_no_traces(monkeypatch) -> None:
    """The activity run counts messages as it goes (a long calibration's traces took 7 GB)
    and splits a large batch into parts: the rates are those of one run."""
    import snncompile.reference.parts as parts
    import snncompile.reference.simulator as simulator

    net = tiny_netlist()
    x = np.random.default_rng(3).integers(-1, 2, (5, 8, 2)).astype(float)
    whole = measure_graded_rates(net, x)
    recorded = simulate(net, x, record=True)
    for name, rate in whole.items():
        assert rate == np.count_nonzero(recorded.traces[name]) / recorded.traces[name].size
    monkeypatch.setattr(parts, "RUN_BUDGET_BYTES", 2 * parts.bytes_per_input(net, 8))
    runs = []
    real = simulator._Run.__init__

    def spy(self, net, data, recorded, *args):
        runs.append((len(data), set(recorded)))
        real(self, net, data, recorded, *args)

    monkeypatch.setattr(simulator._Run, "__init__", spy)
    in_parts = measure_graded_rates(net, x)
    assert runs == [(2, set()), (2, set()), (1, set())]  # three parts, nothing recorded
    assert in_parts == pytest.approx(whole, rel=1e-12)


def test_mapping_by_hand() -> None:
    m = map_netlist(tiny_netlist(), load_config())
    # one population per core; synapse bits = min(dense, sparse) per synapse, a sparse
    # weight's index naming one of the destination's rows on the core:
    # acc: in->acc min(3*2*8, 4*(8+2)) = 40, bias->acc min(3*1*8, 2*(8+2)) = 20 -> 60 bits
    # spk: min(3*3*8, 3*(8+2)) = 30 bits; out: min(2*3*8, 3*(8+1)) = 27 bits
    rows = [
        (c.slices, c.compartments, c.synapse_bytes, c.input_axons, c.output_axons) for c in m.cores
    ]
    assert rows == [
        ([("in", 0, 2)], 2, 0, 0, 2),
        ([("bias", 0, 1)], 1, 0, 0, 1),
        ([("acc", 0, 3)], 3, 8, 3, 3),
        ([("spk", 0, 3)], 3, 4, 3, 3),
        ([("out", 0, 2)], 2, 4, 3, 0),
    ]
    assert (m.n_cores, m.n_chips) == (5, 1)


def test_mapping_shares_and_splits_cores(tmp_path: Path) -> None:
    shared = map_netlist(tiny_netlist(), _config(tmp_path, "[model]\nshare_cores = true\n"))
    (core,) = shared.cores
    assert core.compartments == 11 and core.synapse_bytes == 15  # ceil((60 + 30 + 27) / 8)
    assert (core.input_axons, core.output_axons) == (9, 9)
    # Sharing, the bound adds up over every population placed on the open core: with 7
    # output axons allowed the 9 of one core no longer fit, and spk is split.
    config = _config(tmp_path, "[model]\nshare_cores = true\n[limits]\noutput_axons_per_core = 7\n")
    seven = map_netlist(tiny_netlist(), config)
    assert [c.slices for c in seven.cores] == [
        [("in", 0, 2), ("bias", 0, 1), ("acc", 0, 3), ("spk", 0, 1)],
        [("spk", 1, 3), ("out", 0, 2)],
    ]
    assert [c.output_axons for c in seven.cores] == [7, 2]
    assert check(tiny_netlist(), config, seven) == []
    split = map_netlist(tiny_netlist(), _config(tmp_path, "[limits]\ncompartments_per_core = 2\n"))
    assert [c.slices for c in split.cores] == [
        [("in", 0, 2)],
        [("bias", 0, 1)],
        [("acc", 0, 2)],
        [("acc", 2, 3)],
        [("spk", 0, 2)],
        [("spk", 2, 3)],
        [("out", 0, 2)],
    ]
    assert sum(c.compartments for c in split.cores) == 11
    # every acc and spk compartment needs an output axon to its one destination population
    config = _config(tmp_path, "[limits]\noutput_axons_per_core = 2\n")
    narrow = map_netlist(tiny_netlist(), config)
    # the packing counts one axon per destination population, a lower bound: acc landed
    # on two cores, so each input compartment needs an axon to both (4 > 2 on one core,
    # which the design-rule check reported). Packed again charging each input compartment
    # its two axons, the input takes a core per compartment.
    assert [c.slices for c in narrow.cores] == [[("in", 0, 1)], [("in", 1, 2)]] + [
        c.slices for c in split.cores[1:]
    ]
    assert [c.output_axons for c in narrow.cores] == [2, 2, 1, 2, 1, 2, 1, 0]
    assert check(tiny_netlist(), config, narrow) == []
    # acc's second core holds row 2 = [6, 8] from in (bias weight 0): two axons; dense
    # 1*2*8 = 16 bits beats sparse 2*(8+1) = 18, and the empty bias row costs nothing
    assert (split.cores[3].input_axons, split.cores[3].synapse_bytes) == (2, 2)


def layered_netlist(names: list[str], weights: list[np.ndarray]) -> Netlist:
    """An input, accumulators and a mean readout, named in `names` order, each reading
    the one before through weights[i] (rows: destination compartments)."""
    sizes = [weights[0].shape[1]] + [w.shape[0] for w in weights]
    kinds = ["input"] + ["accumulator"] * (len(weights) - 1) + ["readout"]
    pops = tuple(
        Population(name, kind, size, attrs={"mode": "mean"} if kind == "readout" else {})
        for name, kind, size in zip(names, kinds, sizes, strict=True)
    )
    syns = tuple(
        Synapse(f"{src}->{dst}", src, dst, w)
        for src, dst, w in zip(names[:-1], names[1:], weights, strict=True)
    )
    return Netlist(pops, syns, numeric="int", formats=Formats())


def conv_netlist() -> Netlist:
    """in (8 positions) -> conv (2 channels x 8 positions, channel-major: compartment
    c * 8 + p reads positions p - 1 .. p + 1, as a 3-tap convolution) -> out (readout)."""
    weight = np.zeros((16, 8))
    for c, p in itertools.product(range(2), range(8)):
        for q in range(max(p - 1, 0), min(p + 2, 8)):
            weight[c * 8 + p, q] = 1 + c + q
    return layered_netlist(["in", "conv", "out"], [weight, np.kron(np.eye(2), np.ones((1, 8)))])


def output_axons_by_hand(net: Netlist, cores: list) -> list[int]:  # type: ignore[type-arg]
    """Each core's distinct (source compartment, destination core) pairs, from every
    nonzero weight (mapping.py counts them per run of destination rows instead)."""
    core_of = {pop.name: np.full(pop.size, -1) for pop in net.populations}
    for core in cores:
        for name, a, b in core.slices:
            core_of[name][a:b] = core.index
    pairs = []
    for syn in net.synapses:
        coo = sparse.coo_matrix(syn.weight)
        nonzero = coo.data != 0
        dst_core = core_of[syn.dst][coo.row[nonzero] % net.population(syn.dst).size]
        src = coo.col[nonzero]
        pairs += {(syn.src, int(s), int(d)) for s, d in zip(src, dst_core, strict=True)}
    assert all((where >= 0).all() for where in core_of.values())
    per_core = [0] * len(cores)
    for src, s, _ in set(pairs):
        per_core[core_of[src][s]] += 1
    return per_core


def test_mapping_groups_compartments_that_read_the_same_sources(tmp_path: Path) -> None:
    net = conv_netlist()
    config = _config(tmp_path, "[limits]\ncompartments_per_core = 8\noutput_axons_per_core = 12\n")
    m = map_netlist(net, config)
    # In index order conv's two cores would hold one channel each at every position, and
    # every input would feed both: 16 output axons on the input's core, over 12. Sorted by
    # the inputs they read, each core holds both channels at four positions, and only
    # inputs 3 and 4 (in the windows of positions 2..4 and 3..5) feed both: 8 + 2 = 10.
    assert [c.slices for c in m.cores] == [
        [("in", 0, 8)],
        [("conv", 0, 4), ("conv", 8, 12)],
        [("conv", 4, 8), ("conv", 12, 16)],
        [("out", 0, 2)],
    ]
    assert [c.output_axons for c in m.cores] == output_axons_by_hand(net, m.cores) == [10, 8, 8, 0]
    assert [c.input_axons for c in m.cores] == [0, 5, 5, 16]
    assert check(net, config, m) == []
    # resources.json records each run, and the reader's check takes them
    from snncompile.targets.loihi2 import _placement_problem

    resources = m.to_dict()
    assert resources["per_core"][1]["populations"] == [
        {"name": "conv", "start": 0, "stop": 4},
        {"name": "conv", "start": 8, "stop": 12},
    ]
    assert _placement_problem(resources, net) is None
    resources["per_core"][2]["populations"][1]["start"] = 11  # compartment 11 twice
    resources["per_core"][2]["compartments"] += 1
    assert _placement_problem(resources, net) == "conv's 16 compartments are not placed once each"
    # a violation names a core's population once, however many runs it has there
    tight = _config(tmp_path, "[limits]\noutput_axons_per_core = 7\n")
    assert check(net, tight, m) == [
        "output_axons per core > output_axons_per_core 7: core 0 (in) 10, core 1 (conv) 8, "
        "core 2 (conv) 8"
    ]


def test_cnn_sinabs_fits_one_chip(tmp_path: Path) -> None:
    # Sinabs' N-MNIST CNN (conv layers of 4096 compartments, channel-major) was refused,
    # 10908 output axons on one core: each input or conv compartment fed every core of the
    # next layer. Placed by position, it fits the default description.
    calib = default_calibration(2 * 34 * 34)[:2, :12]  # small: the CLI's is 8 x 32
    out = tmp_path / "cnn.loihi2"
    export_model(NIR_EXAMPLES / "cnn_sinabs.nir", out, target="loihi2", dt=1e-4, calibration=calib)
    net = read_artifact(out).netlist  # checks resources.json's placement
    resources = json.loads((out / "resources.json").read_text(encoding="utf-8"))
    cores = [Core.from_dict(core) for core in resources["per_core"]]
    assert [c.output_axons for c in cores] == output_axons_by_hand(net, cores)
    assert (resources["cores"], resources["chips"]) == (21, 1)
    assert resources["peak_per_core"]["output_axons"] == 3277
    assert resources["peak_per_core"]["input_axons"] == 2240
    # conv layer 1 (16 channels of 16 x 16) on four cores: every channel, a band of rows
    first = [c.slices for c in cores if c.slices[0][0] == "1"]
    assert len(first) == 4 and first[0][:2] == [("1", 0, 80), ("1", 256, 336)]


def test_a_dense_layer_keeps_index_order(tmp_path: Path) -> None:
    # Input 7 feeds only the odd conv compartments. Sorted by their inputs, the even ones
    # would share a core that reads 7 inputs instead of 8: one input axon saved, paid for
    # with eight runs per core in resources.json. The mapping keeps one range per core.
    net = conv_netlist()
    weight = np.ones((16, 8))
    weight[::2, 7] = 0
    syns = (replace(net.synapses[0], weight=weight), net.synapses[1])
    net = Netlist(net.populations, syns, numeric="int", formats=Formats())
    m = map_netlist(net, _config(tmp_path, "[limits]\ncompartments_per_core = 8\n"))
    assert [c.slices for c in m.cores] == [
        [("in", 0, 8)],
        [("conv", 0, 8)],
        [("conv", 8, 16)],
        [("out", 0, 2)],
    ]
    assert [c.input_axons for c in m.cores] == [0, 8, 8, 16]


def test_mapping_splits_a_core_whose_exact_output_axons_break_the_limit(tmp_path: Path) -> None:
    # p0's compartments 1 and 3 read input 4, 0 reads input 6, 2 reads nothing. In index
    # order p0 packs [0, 3) + [3, 4): 3 input axons (plus 2 runs); sorted by their inputs
    # (2, 1, 3, then 0) the first core reads input 4 alone: 2 (plus 2 runs), so that order
    # is p0's choice. But p1's three cores (index order) read compartments 1, 2 and 3 from
    # the first two and 2 and 3 again from the third: packed 1, 2, 3 together that core of
    # p0 needs 2 + 3 + 3 = 8 output axons, over 7; in index order it is 0 + 2 + 3 and the
    # other 3. Index order everywhere was kept. Now the locality order is packed again
    # charging each compartment the output axons it needed (2, 1, 3, 0: 3, 2, 3, 0):
    # 2 and 1 (5 axons) share a core, 3 and 0 (3) the other; as many cores as index order,
    # so the locality order stays (it did, on a tie, before).
    def weights(shape: tuple[int, int], nonzero: list[tuple[int, int]]) -> np.ndarray:
        w = np.zeros(shape)
        for r, c in nonzero:
            w[r, c] = 1
        return w

    p1_reads = [(0, 3), (1, 2), (2, 1), (3, 3), (4, 2), (5, 1), (6, 2), (6, 3)]
    net = layered_netlist(
        ["in", "p0", "p1", "out"],
        [weights((4, 7), [(0, 6), (1, 4), (3, 4)]), weights((7, 4), p1_reads), np.ones((2, 7))],
    )
    config = _config(tmp_path, "[limits]\ncompartments_per_core = 3\noutput_axons_per_core = 7\n")
    m = map_netlist(net, config)
    assert check(net, config, m) == []
    assert [c.slices for c in m.cores if c.slices[0][0] == "p0"] == [
        [("p0", 1, 3)],
        [("p0", 0, 1), ("p0", 3, 4)],
    ]
    assert [c.output_axons for c in m.cores] == output_axons_by_hand(net, m.cores)


def test_mapping_keeps_index_order_where_a_locality_order_opens_more_cores(
    tmp_path: Path,
) -> None:
    # p0's compartments 0 and 2 read inputs 0 and 1, 1 and 3 read inputs 2 and 3. Sorted
    # by their inputs (0, 2, 1, 3), two per core, p0's cores read 2 + 2 inputs instead of
    # 4 + 4: p0's choice. But every compartment of p1 (three cores of two) reads 0 and 2,
    # so each needs 3 output axons, 1 and 3 only 1: the core holding 0 and 2 needs 6 of 4,
    # and packed again by what each needs p0 takes three cores (0 | 2, 1 | 3). Index
    # order packs 0, 1 and 2, 3 in 3 + 1 axons each: two cores. It is kept.
    w0 = np.zeros((4, 4))
    w0[[0, 2], 0] = w0[[0, 2], 1] = w0[[1, 3], 2] = w0[[1, 3], 3] = 1
    w1 = np.zeros((6, 4))
    w1[:, [0, 2]] = 1
    w1[0, [1, 3]] = 1
    net = layered_netlist(["in", "p0", "p1", "out"], [w0, w1, np.ones((1, 6))])
    config = _config(tmp_path, "[limits]\ncompartments_per_core = 2\noutput_axons_per_core = 4\n")
    m = map_netlist(net, config)
    assert [c.slices for c in m.cores if c.slices[0][0] == "p0"] == [
        [("p0", 0, 2)],
        [("p0", 2, 4)],
    ]
    assert m.n_cores == 8 and check(net, config, m) == []
    assert [c.output_axons for c in m.cores] == output_axons_by_hand(net, m.cores)


def test_mapping_packs_again_while_a_split_splits_its_sources(tmp_path: Path) -> None:
    # p1 (three cores of two) reads all of p0: each p0 compartment needs 3 output axons,
    # 6 on a core of two, over 4, so p0 is packed again a compartment per core. Then each
    # input compartment feeds p0's four cores: 8 on the input's core, which held 4
    # before p0 was split. Packed once more, the input takes a core per compartment.
    net = layered_netlist(
        ["in", "p0", "p1", "out"], [np.ones((4, 2)), np.ones((6, 4)), np.ones((1, 6))]
    )
    config = _config(tmp_path, "[limits]\ncompartments_per_core = 2\noutput_axons_per_core = 4\n")
    m = map_netlist(net, config)
    assert [c.slices for c in m.cores][:6] == [
        [("in", 0, 1)],
        [("in", 1, 2)],
        [("p0", 0, 1)],
        [("p0", 1, 2)],
        [("p0", 2, 3)],
        [("p0", 3, 4)],
    ]
    assert [c.output_axons for c in m.cores] == output_axons_by_hand(net, m.cores)
    assert [c.output_axons for c in m.cores] == [4, 4, 3, 3, 3, 3, 2, 2, 2, 0]
    assert check(net, config, m) == []


def test_a_deep_chain_is_packed_again_until_its_input_fits(tmp_path: Path) -> None:
    # in -> p0 .. p7 -> out, two compartments each (out three), dense. out takes two cores
    # of two, so p7's compartments need 2 output axons each, 4 on its one core, over 2:
    # p7 is packed again a compartment per core, then p6 feeds two cores, and so on back
    # to the input, one population per round: nine rounds, one more than the eight that
    # stopped the fitting with the input's core still needing 4 (exit 5).
    names = ["in"] + [f"p{i}" for i in range(8)] + ["out"]
    net = layered_netlist(names, [np.ones((2, 2))] * 8 + [np.ones((3, 2))])
    config = _config(tmp_path, "[limits]\ncompartments_per_core = 2\noutput_axons_per_core = 2\n")
    m = map_netlist(net, config)
    assert check(net, config, m) == []
    assert [c.output_axons for c in m.cores] == [2] * 18 + [0, 0]
    assert [c.output_axons for c in m.cores] == output_axons_by_hand(net, m.cores)


def test_a_compartment_no_core_can_hold_keeps_its_first_packing(tmp_path: Path) -> None:
    # in -> q0 -> q1 -> p0 -> p1 -> out, dense, two compartments per core: p1 takes four
    # cores, so each p0 compartment needs 4 output axons, over the 2 a core has. No core
    # holds one. Packed again a compartment per core, p0 made each q1 compartment feed
    # two cores (4 on q1's core), so q1 was packed again, then q0, then the input: four
    # rounds, 13 cores instead of 9, none of them bringing p0 within the limit. Now p0
    # stays where the first packing put it, and the check names its core.
    names = ["in", "q0", "q1", "p0", "p1", "out"]
    net = layered_netlist(names, [np.ones((2, 2))] * 3 + [np.ones((8, 2)), np.ones((1, 8))])
    config = _config(tmp_path, "[limits]\ncompartments_per_core = 2\noutput_axons_per_core = 2\n")
    m = map_netlist(net, config)
    assert [c.slices for c in m.cores] == [
        [("in", 0, 2)],
        [("q0", 0, 2)],
        [("q1", 0, 2)],
        [("p0", 0, 2)],
        *([("p1", a, a + 2)] for a in range(0, 8, 2)),
        [("out", 0, 1)],
    ]
    assert [c.output_axons for c in m.cores] == output_axons_by_hand(net, m.cores)
    assert check(net, config, m) == [
        "output_axons per core > output_axons_per_core 2: core 3 (p0) 8"
    ]


def test_cores_that_can_fit_are_fitted_beside_a_compartment_none_can_hold(tmp_path: Path) -> None:
    # in -> p0 -> p1 -> out, dense, two compartments per core. p0's four compartments
    # feed all four cores of p1 (4 output axons each, over 2): no core holds one. The
    # input's two feed both of p0's cores: 4 on the input's core, but 2 each, so it takes
    # a core per compartment and meets the limit. p0 stays on its two cores: set apart a
    # compartment per core (before), it made each input compartment feed four cores, 4
    # output axons that no core holds either, and the check named the input's cores first.
    net = layered_netlist(
        ["in", "p0", "p1", "out"], [np.ones((4, 2)), np.ones((8, 4)), np.ones((1, 8))]
    )
    config = _config(tmp_path, "[limits]\ncompartments_per_core = 2\noutput_axons_per_core = 2\n")
    m = map_netlist(net, config)
    assert [c.slices for c in m.cores][:4] == [
        [("in", 0, 1)],
        [("in", 1, 2)],
        [("p0", 0, 2)],
        [("p0", 2, 4)],
    ]
    assert [c.output_axons for c in m.cores] == output_axons_by_hand(net, m.cores)
    assert [c.output_axons for c in m.cores] == [2, 2, 8, 8, 2, 2, 2, 2, 0]
    assert check(net, config, m) == [
        "output_axons per core > output_axons_per_core 2: core 2 (p0) 8, core 3 (p0) 8"
    ]


def test_a_wide_conv_input_takes_the_cores_its_output_axons_need() -> None:
    # A DVS-like 2 x 40 x 40 input into the first conv layer of Sinabs' N-MNIST CNN
    # (cnn_sinabs.nir: 16 channels, 5 x 5, stride 2, padding 1), default description.
    # The packing counted one output axon per input compartment (its one destination
    # population), so all 3200 shared a core; but the conv layer spans several cores
    # (bands of rows) and an input near a band's edge feeds two: 4378 output axons on
    # that core, over 4096 (exit 5). Packed again by what each needs, it takes two.
    from snncompile.frontend.nir_import import conv_matrix

    conv, _ = conv_matrix(np.ones((16, 2, 5, 5)), (2, 40, 40), (2, 2), (1, 1), (1, 1), 1)
    readout = np.zeros((1, conv.shape[0]))
    readout[0, :100] = 1
    net = layered_netlist(["in", "conv", "out"], [conv.tocsr(), readout])
    config = load_config()
    m = map_netlist(net, config)
    assert check(net, config, m) == []
    in_cores = [c for c in m.cores if c.slices[0][0] == "in"]
    assert len(in_cores) == 2 and sum(c.output_axons for c in in_cores) > 4096
    assert [c.output_axons for c in m.cores] == output_axons_by_hand(net, m.cores)


def test_mapping_with_shared_cores_opens_no_more_cores_than_index_order(tmp_path: Path) -> None:
    # p0 continues the input's core (share_cores). Sorted by their inputs, the compartments
    # that read inputs 2..7 land on the second core, 6 input axons instead of index order's
    # 5 there (but fewer in all): the readout, which continues that core and reads all of
    # p0, then no longer fits its 10 input axons and opened a third core.
    w = np.zeros((5, 8))
    for row, cols in enumerate([(5, 6, 7), (3, 4, 5), (2, 3, 4), (0, 1), (0, 1, 2)]):
        w[row, list(cols)] = 1
    readout = np.array([[0, 1, 1, 1, 0], [1, 1, 1, 1, 1.0]])
    net = layered_netlist(["in", "p0", "out"], [w, readout])
    text = "[limits]\ncompartments_per_core = 10\ninput_axons_per_core = 10\n"
    config = _config(tmp_path, text + "[model]\nshare_cores = true\n")
    m = map_netlist(net, config)
    assert [c.slices for c in m.cores] == [
        [("in", 0, 8), ("p0", 0, 2)],
        [("p0", 2, 5), ("out", 0, 2)],
    ]
    assert check(net, config, m) == []


def test_bundled_mapping_splits_under_small_cores(spike_ssm: Path, tmp_path: Path) -> None:
    net = read_artifact(spike_ssm).netlist
    cfg = _config(tmp_path, "[limits]\ncompartments_per_core = 500\ninput_axons_per_core = 1000\n")
    m = map_netlist(net, cfg)
    assert all(c.compartments <= 500 and c.input_axons <= 1000 for c in m.cores)
    total = sum(v for k, v in net.counts().items() if k != "synapses")
    assert sum(c.compartments for c in m.cores) == total
    # the ssm (2112) needs 5 cores of 500; each neuron reads its channel's 33 resonators,
    # so 30 neurons (990 axons) fit a core of 1000 axons: 64 neurons need 3 cores
    assert sum(1 for c in m.cores if c.slices[0][0] == "blocks.0.ssm") == 5
    assert sum(1 for c in m.cores if c.slices[0][0] == "blocks.0.act") == 3
    assert check(net, cfg, m) == []


def test_drc_names_each_rule(tmp_path: Path) -> None:
    net = tiny_netlist(delay=2, weight_exp=-9)
    cfg = _config(
        tmp_path,
        "[limits]\nweight_bits = 4\nweight_exp_min = -8\ndelay_max = 1\nvth_bits = 6\n"
        "graded_spike_bits = 16\ncores_per_chip = 2\ninput_axons_per_core = 1\n"
        "neurons_per_chip = 2\n",
    )
    # With one input axon per core every compartment that reads two sources sits alone on
    # an overfull core: in | bias | acc0 {in0, bias} | acc1 {in1, bias} | acc2 {in0, in1} |
    # spk0 | spk1 | spk2 | out0 {spk0, spk1} | out1 {spk2}: 10 cores, 2 per chip.
    violations = check(net, cfg, map_netlist(net, cfg))
    expected = [
        "netlist weight_bits 8 > weight_bits 4",
        "netlist message_bits 24 > graded_spike_bits 16",
        "synapse in->acc: 4 weight(s) off the 4-bit grid [0, 255] step 16 (e.g. 2)",
        "synapse bias->acc: 2 weight(s) off the 4-bit grid [0, 255] step 16 (e.g. 2)",
        "synapse acc->spk: 3 weight(s) off the 4-bit grid [0, 255] step 16 (e.g. 2)",
        "synapse acc->spk: weight_exp -9 outside [-8, 31] (weight_exp_min/max)",
        "synapse acc->spk: delay 2 > delay_max 1",
        "synapse spk->out: 3 weight(s) off the 4-bit grid [0, 255] step 16 (e.g. 2)",
        "population spk: vth 100 outside [0, 63] (vth_bits 6)",
        "input_axons per core > input_axons_per_core 1: core 2 (acc) 2, core 3 (acc) 2, "
        "core 4 (acc) 2, core 8 (out) 2",
        "needs 10 cores on 5 chip(s), more than the 2 available "
        "(cores_per_chip 2 x chips_available 1)",
        "chip 0: compartments 3 > neurons_per_chip 2",  # in (2) + bias (1)
    ]
    assert violations == expected
    with pytest.raises(
        HardwareRuleError, match=f"^{len(expected)} design-rule violations: "
    ) as info:
        enforce(net, cfg, map_netlist(net, cfg))
    # One line, the violations joined by "; ": a rule's own "; " split one into two.
    assert str(info.value).split(": ", 1)[1].split("; ") == expected


def test_drc_checks_what_a_cuba_lif_sub_subtracts_against_the_threshold_bits(
    tmp_path: Path,
) -> None:
    """vsub is a constant in vth's format: a threshold that fits with a subtrahend that
    does not is one violation naming vsub."""
    from netlists import pop, side_by_side

    net = side_by_side([pop("sub", "cuba_lif_sub", 2, du=10, dv=20, vth=60, vsub=70)])
    cfg = _config(tmp_path, "[limits]\nvth_bits = 6\n")
    violations = check(net, cfg, map_netlist(net, cfg))
    assert violations == ["population sub: vsub 70 outside [0, 63] (vth_bits 6)"]


def test_reset_refractory_decay_of_4096_breaks_the_12_bit_rule() -> None:
    pops = (
        Population("in", "input", 1),
        Population(
            "n",
            "reset_refractory",
            2,
            {
                "decay": np.array([4096.0, 10]),
                "theta": np.array([8.0, 8]),
                "rho": np.array([0.0, 0]),
            },
        ),
        Population("out", "readout", 2, attrs={"mode": "last"}),
    )
    syns = (
        Synapse("in->n", "in", "n", np.ones((2, 1))),
        Synapse("n->out", "n", "out", np.eye(2)),
    )
    net = Netlist(pops, syns, numeric="int")
    cfg = load_config()
    assert check(net, cfg, map_netlist(net, cfg)) == [
        "population n: decay 4096 outside [0, 4095] (decay_bits 12)"
    ]


def test_loihi2_artifact_needs_its_files(tmp_path: Path) -> None:
    from snncompile.compiler import compile_model

    compiled = compile_model(CHECKPOINTS / "spike-ssm-sdigits.pt", stop_after="quantize")
    with pytest.raises(UsageError, match="target 'loihi2' writes"):
        write_artifact(compiled, tmp_path / "a", target="loihi2")
    assert not (tmp_path / "a").exists()


def test_inspecting_a_loihi2_artifact_needs_no_torch(spike_ssm: Path) -> None:
    code = (
        "import runpy, sys; runpy.run_path(sys.argv[1]); "
        "from snncompile.api import inspect_path; "
        "info = inspect_path(sys.argv[2]); "
        "print(info['loihi2']['cores'], 'torch' in sys.modules)"
    )
    conftest = Path(__file__).with_name("conftest.py")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code, str(conftest), str(spike_ssm)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["12", "False"]
