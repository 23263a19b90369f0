"""On-disk forms: exact Netlist/Graph round trips, validated loading, artifacts (atomic
write, manifest hashes, tamper detection, reading without torch)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import netlists
import numpy as np
import pytest
import torch
from scipy import sparse

import snncompile
from snncompile.artifact import read_artifact, write_artifact
from snncompile.compiler import Compiled, compile_model
from snncompile.errors import CorruptInputError, UsageError
from snncompile.ir.graph import Graph
from snncompile.ir.interpret import run_graph
from snncompile.ir.netlist import Netlist
from snncompile.ir.serialize import load_graph, load_netlist, save_graph, save_netlist
from snncompile.models.backbone import ModelConfig, build_model
from snncompile.reference.simulator import simulate

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINTS = ROOT / "examples" / "checkpoints"


@pytest.fixture(scope="module", params=["spike-ssm", "spiking-ssm"])
def bundled(request: pytest.FixtureRequest) -> Compiled:
    return compile_model(CHECKPOINTS / f"{request.param}-sdigits.pt")


def _small(family: str = "spike-ssm", **config: object) -> tuple[torch.nn.Module, np.ndarray]:
    torch.manual_seed(0)
    cfg = ModelConfig(
        family=family, d_input=1, d_output=3, d_model=8, d_state=4, n_layers=1, **config
    )
    return build_model(cfg), torch.rand(8, 16, 1).double().numpy()


@pytest.fixture(scope="module")
def small() -> Compiled:
    model, calib = _small(prenorm=True)
    return compile_model(model, calibration=calib)


def _same_array(a: object, b: object) -> bool:
    if sparse.issparse(a) or sparse.issparse(b):
        return (
            type(a) is type(b)
            and a.shape == b.shape  # type: ignore[union-attr]
            and all(
                _same_array(getattr(a, k), getattr(b, k)) for k in ("data", "indices", "indptr")
            )
        )
    a, b = np.asarray(a), np.asarray(b)
    # Bitwise: equal values *and* dtype, shape, and the sign of zeros.
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _assert_same_netlist(a: Netlist, b: Netlist) -> None:
    assert (a.numeric, a.formats, a.input_scale, a.output_scale, a.dt_s, a.meta) == (
        b.numeric,
        b.formats,
        b.input_scale,
        b.output_scale,
        b.dt_s,
        b.meta,
    )
    assert [(p.name, p.kind, p.size, p.attrs) for p in a.populations] == [
        (p.name, p.kind, p.size, p.attrs) for p in b.populations
    ]
    for pa, pb in zip(a.populations, b.populations, strict=True):
        assert pa.params.keys() == pb.params.keys()
        for key in pa.params:
            assert _same_array(pa.params[key], pb.params[key]), (pa.name, key)
    for sa, sb in zip(a.synapses, b.synapses, strict=True):
        assert (sa.name, sa.src, sa.dst, sa.weight_exp, sa.delay) == (
            sb.name,
            sb.src,
            sb.dst,
            sb.weight_exp,
            sb.delay,
        )
        assert _same_array(sa.weight, sb.weight), sa.name


def _assert_same_run(a: Netlist, b: Netlist, x: np.ndarray) -> None:
    ra, rb = simulate(a, x, record=True), simulate(b, x, record=True)
    assert _same_array(ra.logits, rb.logits) and _same_array(ra.readout, rb.readout)
    assert ra.events == rb.events and ra.traces.keys() == rb.traces.keys()
    for name in ra.traces:
        assert _same_array(ra.traces[name], rb.traces[name]), name


# -- Netlist and Graph round trips ------------------------------------------------------


def test_netlist_round_trip_is_exact(tmp_path: Path, bundled: Compiled) -> None:
    x = bundled.calibration[:4]
    for stage, net in (("int", bundled.netlist), ("float", bundled.float_netlist)):
        save_netlist(net, tmp_path / stage)
        loaded = load_netlist(tmp_path / stage)
        _assert_same_netlist(net, loaded)
        _assert_same_run(net, loaded, x)
    assert any(sparse.issparse(s.weight) for s in bundled.netlist.synapses)  # CSR covered


def test_an_ssm_written_before_out_shift_and_frac_cut_reads_as_before(tmp_path: Path) -> None:
    """netlist.json and network.net from before out_shift and frac_cut: what they
    computed, Re z sent as it is and F bits in every mode. A float SSM gains neither."""
    import h5py

    from snncompile.targets.loihi2.netx import read_network, write_network

    ssm = netlists.pop("ssm", "ssm", 2, a_re_q=[30000, 0], a_im_q=[0, 9], b_re_q=[7, -8],
                       b_im_q=[1, 2], out_shift=5, frac_cut=[0, 4])  # fmt: skip
    save_netlist(netlists.side_by_side([ssm]), tmp_path)
    doc = json.loads((tmp_path / "netlist.json").read_text())
    (written,) = [p for p in doc["populations"] if p["name"] == "ssm"]
    del written["params"]["out_shift"], written["params"]["frac_cut"]
    (tmp_path / "netlist.json").write_text(json.dumps(doc))
    back = load_netlist(tmp_path).population("ssm").params
    assert int(back["out_shift"]) == 0
    assert back["frac_cut"].shape == (2,) and not back["frac_cut"].any()
    write_network(netlists.side_by_side([ssm]), tmp_path / "network.net")
    with h5py.File(tmp_path / "network.net", "r+") as f:
        layers = [f[f"layer/{i}"] for i in range(len(f["layer"]))]
        (layer,) = [g for g in layers if g.attrs.get("name") == "ssm"]
        del layer["params/out_shift"], layer["params/frac_cut"]
    back = read_network(tmp_path / "network.net").population("ssm").params
    assert int(back["out_shift"]) == 0
    assert back["frac_cut"].shape == (2,) and not back["frac_cut"].any()
    floats = netlists.pop("ssm", "ssm", 1, a_re=[0.5], a_im=[0.1], b_re=[1.0], b_im=[0.0])
    save_netlist(netlists.side_by_side([floats], numeric="float64"), tmp_path / "float")
    assert not {"out_shift", "frac_cut"} & set(
        load_netlist(tmp_path / "float").population("ssm").params
    )


def _assert_same_graph(a: Graph, b: Graph) -> None:
    assert (a.dt_s, a.meta) == (b.dt_s, b.meta)
    for na, nb in zip(a.nodes, b.nodes, strict=True):
        assert (na.name, na.op.kind, na.inputs) == (nb.name, nb.op.kind, nb.inputs)
        assert na.op.attributes() == nb.op.attributes()
        arrays_a, arrays_b = na.op.arrays(), nb.op.arrays()
        assert arrays_a.keys() == arrays_b.keys()
        for key in arrays_a:
            assert _same_array(arrays_a[key], arrays_b[key]), (na.name, key)


def test_graph_round_trip_is_exact_before_and_after_passes(tmp_path: Path) -> None:
    model, calib = _small(prenorm=True)
    traced = compile_model(model, stop_after="trace").graph  # S4D, BatchNorm, Dropout ...
    passed = compile_model(model, stop_after="passes").graph  # SSM (complex), folded
    for stage, graph in (("traced", traced), ("passed", passed)):
        save_graph(graph, tmp_path / stage)
        loaded = load_graph(tmp_path / stage)
        _assert_same_graph(graph, loaded)
        assert _same_array(run_graph(graph, calib), run_graph(loaded, calib))
    kinds = {node.op.kind for node in traced} | {node.op.kind for node in passed}
    assert {"s4d", "ssm", "batchnorm", "linear", "glu", "pool"} <= kinds


def test_complex_zero_signs_survive(tmp_path: Path, small: Compiled) -> None:
    # re + 1j * im would turn -0.0 imaginary parts into +0.0; the loader must not.
    ssm = next(n for n in small.graph if n.op.kind == "ssm")
    c = ssm.op.c.copy()
    c.imag[0, 0] = -0.0
    nodes = [
        n if n is not ssm else type(n)(n.name, type(n.op)(**{**vars(n.op), "c": c}), n.inputs)
        for n in small.graph
    ]
    graph = small.graph.replace_nodes(nodes)
    save_graph(graph, tmp_path)
    loaded = next(n for n in load_graph(tmp_path) if n.op.kind == "ssm")
    assert np.signbit(loaded.op.c.imag[0, 0])


def _edit_json(path: Path, edit) -> None:  # type: ignore[no-untyped-def]
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def _drop_npz_member(path: Path, key: str) -> None:
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files if k != key}
    np.savez(path, **arrays)


def _edit_npz_member(path: Path, key: str, edit) -> None:  # type: ignore[no-untyped-def]
    with np.load(path) as npz:
        arrays = {k: edit(npz[k]) if k == key else npz[k] for k in npz.files}
    np.savez(path, **arrays)


def _declare_huge_member(path: Path, key: str) -> None:
    """Rewrite member `key` with a header declaring 10^13 values and its own data."""
    import io
    import zipfile

    with zipfile.ZipFile(path) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    with np.load(path) as npz:
        value = npz[key]
    header = io.BytesIO()
    fields = {"descr": np.lib.format.dtype_to_descr(value.dtype), "fortran_order": False}
    np.lib.format.write_array_header_1_0(header, {**fields, "shape": (10**13,)})
    members[f"{key}.npy"] = header.getvalue() + value.tobytes()
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)


def _add_deflate64_member(path: Path) -> None:
    """One more member whose headers name deflate64 (method 9), which zipfile cannot read."""
    import zipfile

    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("junk.npy", b"junk")
    data = bytearray(path.read_bytes())
    for signature, offset in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):
        at = data.rfind(signature)  # the last member's local and central headers
        data[at + offset : at + offset + 2] = (9).to_bytes(2, "little")
    path.write_bytes(bytes(data))


def _netlist_naming(path: Path, key: str) -> None:
    """netlist.json's first synapse weight read from member `key`."""
    _edit_json(path, lambda j: j["synapses"][0]["weight"].update(array=key))


NETLIST_DAMAGE = {
    "wrong version": (lambda d: _edit_json(d / "netlist.json", lambda j: j.update(version=2)),
                      "version 2 is not supported"),
    "wrong format": (lambda d: _edit_json(d / "netlist.json", lambda j: j.update(format="x")),
                     "not a snncompile-netlist file"),
    "missing key": (lambda d: _edit_json(d / "netlist.json", lambda j: j.pop("synapses")),
                    "has no 'synapses'"),
    "wrong type": (lambda d: _edit_json(d / "netlist.json",
                                        lambda j: j["populations"][0].update(size="1")),
                   r"populations\[0\]\.size has the wrong type"),
    "bad json": (lambda d: (d / "netlist.json").write_text('{"format": '), "not valid JSON"),
    "missing json": (lambda d: (d / "netlist.json").unlink(), "no such file"),
    "missing npz": (lambda d: (d / "netlist.npz").unlink(), "netlist.npz: no such file"),
    "truncated npz": (lambda d: (d / "netlist.npz").write_bytes(b"PK\x03\x04trunc"),
                      "not a readable .npz"),
    # numpy allocated what the header declared: "out of memory" (exit 1), not damage (audit46)
    "npz member declaring more than it holds": (
        lambda d: _declare_huge_member(d / "netlist.npz", "syn0.weight"),
        r"netlist\.npz: member 'syn0\.weight' holds \d+ bytes; its header declares 8\d,000,"),
    # zipfile's NotImplementedError was exit 1, "a bug in snncompile" (audit48)
    "npz member stored with an unsupported compression": (
        lambda d: (_add_deflate64_member(d / "netlist.npz"),
                   _netlist_naming(d / "netlist.json", "junk")),
        r"array 'junk' is unreadable \(That compression method is not supported\)"),
    "missing array": (lambda d: _drop_npz_member(d / "netlist.npz", "syn0.weight"),
                      "array 'syn0.weight'.*is missing"),
    "npz weight not an integer": (
        lambda d: _edit_npz_member(d / "netlist.npz", "syn0.weight", lambda w: w + 0.5),
        r"netlist\.json or netlist\.npz: invalid content: "),
    "float exponent": (lambda d: _edit_json(d / "netlist.json",
                                             lambda j: j["synapses"][0].update(weight_exp=0.5)),
                        "weight_exp has the wrong type"),
    "invalid content": (lambda d: _edit_json(d / "netlist.json",
                                             lambda j: j["synapses"][0].update(dst="nowhere")),
                        "invalid content: synapse .* unknown population 'nowhere'"),
    "bad formats": (lambda d: _edit_json(d / "netlist.json",
                                         lambda j: j["formats"].update(weight_bits=9)),
                    r"weight_bits must be an integer in \[2, 8\]"),
    "float bit width": (lambda d: _edit_json(d / "netlist.json",
                                             lambda j: j["formats"].update(weight_bits=8.0)),
                        r"weight_bits must be an integer in \[2, 8\], got 8.0"),
    "dt NaN": (lambda d: _edit_json(d / "netlist.json", lambda j: j.update(dt_s=float("nan"))),
               "dt_s must be a positive finite number of seconds, got nan"),
}  # fmt: skip


@pytest.mark.parametrize("damage", NETLIST_DAMAGE, ids=list(NETLIST_DAMAGE))
def test_damaged_netlist_is_refused_with_one_line(
    tmp_path: Path, small: Compiled, damage: str
) -> None:
    save_netlist(small.netlist, tmp_path)
    corrupt, message = NETLIST_DAMAGE[damage]
    corrupt(tmp_path)
    with pytest.raises(CorruptInputError, match=message) as info:
        load_netlist(tmp_path)
    assert "\n" not in str(info.value)


def test_an_npz_unpacking_past_the_limit_is_refused_before_reading(
    tmp_path: Path, small: Compiled, monkeypatch
) -> None:
    from snncompile.ir import serialize

    save_netlist(small.netlist, tmp_path)
    monkeypatch.setattr(serialize, "MAX_NPZ_UNPACKED_BYTES", 100)
    monkeypatch.setattr(np, "load", lambda *a, **k: pytest.fail("read before the size check"))
    with pytest.raises(CorruptInputError, match=r"netlist\.npz: its arrays unpack to"):
        load_netlist(tmp_path)


def test_non_integer_weight_in_int_netlist_is_refused(tmp_path: Path, small: Compiled) -> None:
    save_netlist(small.netlist, tmp_path)
    with np.load(tmp_path / "netlist.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["syn0.weight"] = arrays["syn0.weight"] + 0.5
    np.savez(tmp_path / "netlist.npz", **arrays)
    with pytest.raises(CorruptInputError, match="must be integers"):
        load_netlist(tmp_path)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda j: j["nodes"][1].update(op="conv3d"), "unknown op 'conv3d'"),
        (lambda j: j["nodes"][0]["attrs"].update(size="1"), "size must be a int"),
        (lambda j: j["nodes"][1]["attrs"].update(extra=1), "takes .* got"),
        (lambda j: j["nodes"][1].update(inputs=["later"]), "not an earlier node"),
    ],
    ids=["unknown op", "attr type", "extra field", "dangling input"],
)
def test_damaged_graph_is_refused(tmp_path: Path, small: Compiled, edit, message) -> None:  # type: ignore[no-untyped-def]
    save_graph(small.graph, tmp_path)
    _edit_json(tmp_path / "graph.json", edit)
    with pytest.raises(CorruptInputError, match=message):
        load_graph(tmp_path)


@pytest.mark.parametrize("array", ["node2.u_shift", "node2.d", "node1.bias", "node3.theta"])
def test_a_graph_array_holding_nan_is_refused(tmp_path: Path, small: Compiled, array) -> None:  # type: ignore[no-untyped-def]
    # The SSM's d and u_shift (a folded BatchNorm shift) loaded as NaN: only their shape
    # was checked (helper-63).
    save_graph(small.graph, tmp_path)
    arrays = dict(np.load(tmp_path / "graph.npz"))
    arrays[array] = np.where(np.arange(arrays[array].size) == 0, np.nan, arrays[array])
    np.savez(tmp_path / "graph.npz", **arrays)
    with pytest.raises(CorruptInputError, match=r"holds NaN or inf"):
        load_graph(tmp_path)


def test_unsaveable_meta_is_a_usage_error(tmp_path: Path, small: Compiled) -> None:
    graph = Graph(small.graph.nodes, meta={"when": object()})
    with pytest.raises(UsageError, match=r"graph meta\.when"):
        save_graph(graph, tmp_path)


# -- artifacts --------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_artifact_files_hashes_and_bit_exact_reload(tmp_path: Path, bundled: Compiled) -> None:
    out = write_artifact(bundled, tmp_path / "model.ref")
    assert sorted(os.listdir(tmp_path)) == ["model.ref"]  # no temporary left beside it
    manifest = json.loads((out / "manifest.json").read_text())
    assert (manifest["format"], manifest["version"], manifest["target"]) == (
        "snncompile-artifact",
        1,
        "reference",
    )
    assert set(manifest["tools"]) == {"snncompile", "numpy", "python", "torch"}
    assert manifest["source"]["family"] == bundled.meta["family"]
    assert manifest["output_latency"] == bundled.netlist.output_latency
    assert sorted(manifest["files"]) == sorted(set(os.listdir(out)) - {"manifest.json"})
    for name, digest in manifest["files"].items():
        assert _sha256(out / name) == digest
    art = read_artifact(out)
    _assert_same_netlist(bundled.netlist, art.netlist)
    x = np.concatenate([bundled.calibration[:3], np.random.default_rng(0).normal(size=(2, 64, 1))])
    _assert_same_run(bundled.netlist, art.netlist, x)
    _assert_same_graph(bundled.graph, art.graph())


def test_report_contents(tmp_path: Path, bundled: Compiled) -> None:
    report = read_artifact(write_artifact(bundled, tmp_path / "a")).report
    net = bundled.netlist
    assert report["counts"] == net.counts()
    assert report["output_latency"] == net.output_latency
    assert report["calibration"]["shape"] == list(bundled.calibration.shape)
    run = simulate(net, bundled.calibration, record=True)
    for pop in net.populations:
        entry = report["populations"][pop.name]
        assert entry["latency"] == net.latency()[pop.name]
        assert {"kind", "size", "in_scale_log2", "out_scale_log2", "headroom_bits"} <= set(entry)
        if pop.compartment.spiking:
            assert entry["spike_rate"] == pytest.approx(run.traces[pop.name].mean())
            assert 0.0 < entry["spike_rate"] < 1.0
            assert "threshold_int" in entry or "vth" in entry
    for syn in net.synapses:
        entry = report["synapses"][syn.name]
        assert (entry["weight_exp"], entry["delay"]) == (syn.weight_exp, syn.delay)
        assert 0.0 <= entry["relative_rms_error"] < 0.1


def test_read_artifact_does_not_import_torch(tmp_path: Path, small: Compiled) -> None:
    out = write_artifact(small, tmp_path / "a")
    code = (
        "import sys; from snncompile.artifact import read_artifact; "
        f"read_artifact({str(out)!r}); assert 'torch' not in sys.modules"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: (d / "report.json").write_text("{}"), r"report\.json: sha256 does not match"),
        (lambda d: (d / "netlist.npz").unlink(), r"netlist\.npz: missing"),
        (
            lambda d: _edit_json(d / "manifest.json", lambda j: j.update(version=7)),
            "version 7 is not supported",
        ),
        (
            lambda d: _edit_json(d / "manifest.json", lambda j: j["files"].pop("graph.json")),
            "does not list graph.json",
        ),
        (
            lambda d: _edit_json(
                d / "manifest.json", lambda j: j["files"].update({"../x": "0" * 64})
            ),
            "bad file name",
        ),
        (lambda d: (d / "manifest.json").unlink(), r"a: not an artifact directory \(no manifest"),
        (
            lambda d: _edit_json(d / "manifest.json", lambda j: j.update(version=True)),
            "version True is not supported",
        ),
        (
            lambda d: _edit_json(d / "manifest.json", lambda j: j.update(target="tpu")),
            "target 'tpu' is not one this snncompile knows",
        ),
        # inspect printed these as they were (audit46)
        (
            lambda d: _edit_json(d / "manifest.json", lambda j: j["source"].update(task=["x"])),
            r"manifest\.json: source\.task is a list",
        ),
        (
            lambda d: _edit_json(d / "manifest.json", lambda j: j["tools"].update(numpy={})),
            r"manifest\.json: tools\.numpy is a dict",
        ),
    ],
    ids=[
        "tampered",
        "missing file",
        "version",
        "unlisted",
        "escaping name",
        "no manifest",
        "version true",
        "unknown target",
        "source entry a list",
        "tools entry an object",
    ],
)
def test_damaged_artifact_is_refused(tmp_path: Path, small: Compiled, damage, message) -> None:  # type: ignore[no-untyped-def]
    out = write_artifact(small, tmp_path / "a")
    damage(out)
    with pytest.raises(CorruptInputError, match=message):
        read_artifact(out)


def _first_with(data: object, key: str) -> dict:
    """The first JSON object (depth first) holding `key`."""
    if isinstance(data, dict) and key in data:
        return data
    children = data.values() if isinstance(data, dict) else data if isinstance(data, list) else []
    for child in children:
        found = _first_with(child, key)
        if found:
            return found
    return {}


def _rehashed(directory: Path, name: str, edit) -> None:  # type: ignore[no-untyped-def]
    """Edit a file and write its new sha256 into the manifest, as a hand edit would."""
    _edit_json(directory / name, edit)
    digest = hashlib.sha256((directory / name).read_bytes()).hexdigest()
    _edit_json(directory / "manifest.json", lambda j: j["files"].update({name: digest}))


@pytest.mark.parametrize(
    ("name", "edit", "message"),
    [
        ("report.json", lambda j: j.update(populations=[1, 2]), "'populations' holds a non"),
        (
            "report.json",
            lambda j: next(iter(j["populations"].values())).update(spike_rate="high"),
            "spike_rate is not a number",
        ),
        ("manifest.json", lambda j: j.update(source="a.pt"), "'source' is not an object"),
        # simulate read its shape: AttributeError, exit 1
        ("report.json", lambda j: j.update(calibration="x"), "'calibration' is not an object"),
        ("manifest.json", lambda j: j.update(target=3), "'target' is not a name"),
        ("graph.json", lambda j: j.clear(), "graph.json"),
        # inspect echoed these (a latency of "ten"); nothing compared them to the netlist
        (
            "manifest.json",
            lambda j: j.update(output_latency="ten"),
            r"output_latency is 'ten', the netlist's \d+ \(edited after export\)",
        ),
        ("manifest.json", lambda j: j.update(message_bits=16), "message_bits is 16, the net"),
        # printed whole: a line of 450 characters (4,300 digits are read; helper-104)
        (
            "manifest.json",
            lambda j: j.update(output_latency=10**400),
            r"output_latency is 10{57}\.\.\.0{58}, the netlist's",
        ),
        (
            "manifest.json",
            lambda j: j["compartments"].update(ssm=1),
            "compartments is .*'ssm': 1.*, the netlist's",
        ),
        # len() of the number raised TypeError: exit 1, "internal error" (helper-104)
        ("netlist.json", lambda j: _first_with(j, "csr").update(csr=5), "unknown array desc"),
        ("graph.json", lambda j: _first_with(j, "complex").update(complex=5), "unknown array"),
    ],
    ids=[
        "populations a list",
        "rate a string",
        "source a string",
        "calibration a string",
        "target a number",
        "graph {}",
        "latency a string",
        "message bits changed",
        "latency of 401 digits",
        "compartments changed",
        "sparse parts a number",
        "complex parts a number",
    ],
)
def test_rehashed_hand_edits_are_refused_on_read(  # type: ignore[no-untyped-def]
    tmp_path: Path, small: Compiled, name, edit, message
) -> None:
    out = write_artifact(small, tmp_path / "a")
    if name == "manifest.json":
        _edit_json(out / name, edit)
    else:
        _rehashed(out, name, edit)
    with pytest.raises(CorruptInputError, match=message):
        read_artifact(out)


def test_failed_write_leaves_nothing(tmp_path: Path, small: Compiled, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import snncompile.artifact as artifact

    def broken(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(artifact, "save_graph", broken)
    with pytest.raises(UsageError, match=r"deeper/a: cannot write: disk full"):
        write_artifact(small, tmp_path / "new" / "deeper" / "a")
    assert os.listdir(tmp_path) == []  # neither the temporary nor the parents it made


def test_existing_destination(tmp_path: Path, small: Compiled) -> None:
    out = write_artifact(small, tmp_path / "a")
    with pytest.raises(UsageError, match="already exists"):
        write_artifact(small, out)
    write_artifact(small, out, overwrite=True)
    assert read_artifact(out).netlist.counts() == small.netlist.counts()
    assert sorted(os.listdir(tmp_path)) == ["a"]
    keep = tmp_path / "precious"
    keep.mkdir()
    (keep / "thesis.tex").write_text("years of work")
    with pytest.raises(UsageError, match="not an snncompile artifact"):
        write_artifact(small, keep, overwrite=True)
    assert (keep / "thesis.tex").read_text() == "years of work"
    # An artifact the user keeps files in is not ours to delete either.
    (out / "notes").mkdir()
    (out / "notes" / "run-3.txt").write_text("observations")
    with pytest.raises(UsageError, match=r"files its manifest does not list \(notes/run-3\.txt\)"):
        write_artifact(small, out, overwrite=True)
    assert (out / "notes" / "run-3.txt").read_text() == "observations"
    # ... and reading it neither reads nor refuses them (docs/formats.md)
    assert read_artifact(out).netlist.counts() == small.netlist.counts()
    # A directory that only copies the artifact's tag is not an artifact.
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "manifest.json").write_text('{"format": "snncompile-artifact"}')
    (fake / "data.csv").write_text("1,2")
    with pytest.raises(UsageError, match="not an snncompile artifact"):
        write_artifact(small, fake, overwrite=True)


def test_unfinished_pipeline_and_unknown_target_are_refused(tmp_path: Path) -> None:
    model, _ = _small()
    lowered = compile_model(model, stop_after="lower")
    with pytest.raises(UsageError, match="stopped after 'lower'"):
        write_artifact(lowered, tmp_path / "a")
    with pytest.raises(UsageError, match="unknown target 'loihi3'"):
        write_artifact(lowered, tmp_path / "a", target="loihi3")
    assert os.listdir(tmp_path) == []


def test_package_api_compile() -> None:
    assert snncompile.compile is compile_model


def test_a_fifo_where_a_json_or_toml_file_belongs_is_refused_not_waited_on(
    tmp_path: Path, small: Compiled
) -> None:
    # Opening a FIFO for reading blocks until a writer comes: simulate, inspect and
    # export --overwrite waited forever on one as manifest.json, export on --target-config.
    from snncompile.artifact import check_output_dir
    from snncompile.targets.loihi2.config import load_config
    from snncompile.targets.onnx.float_model import is_float_artifact

    out = write_artifact(small, tmp_path / "a")
    (out / "manifest.json").unlink()
    os.mkfifo(out / "manifest.json")
    os.mkfifo(tmp_path / "limits.toml")
    for fifo in (out / "manifest.json", tmp_path / "limits.toml"):
        # A writer that ends every read at once: a regression fails here instead of hanging.
        threading.Thread(target=_keep_closing, args=(fifo,), daemon=True).start()
    with pytest.raises(CorruptInputError, match=r"manifest\.json: not a regular file"):
        read_artifact(out)
    assert not is_float_artifact(out)
    with pytest.raises(UsageError, match=r"no readable manifest\.json"):
        check_output_dir(out, True)
    with pytest.raises(CorruptInputError, match=r"limits\.toml is not a regular file"):
        load_config(tmp_path / "limits.toml")


def _keep_closing(fifo: Path) -> None:
    while True:
        open(fifo, "w").close()  # blocks until a reader opens it, which then reads nothing


@pytest.mark.parametrize("name", ["manifest.json", "report.json", "netlist.json", "graph.json"])
def test_a_json_integer_too_long_for_python_is_corrupt_input_naming_the_file(
    tmp_path: Path, small: Compiled, name: str
) -> None:
    """Python refuses to parse an integer of more than 4300 digits with a bare ValueError
    (and nesting past its recursion limit with RecursionError): an edited file of the
    artifact was an internal error, exit 1."""
    out = write_artifact(small, tmp_path / "a")
    text = (out / name).read_text()

    def write_rehashed(new_text: str) -> None:
        (out / name).write_text(new_text)
        if name != "manifest.json":
            digest = hashlib.sha256((out / name).read_bytes()).hexdigest()
            _edit_json(out / "manifest.json", lambda j: j["files"].update({name: digest}))

    write_rehashed(text.replace("{", '{"huge": ' + "1" * 5000 + ", ", 1))
    with pytest.raises(CorruptInputError, match=rf"{name}.*a number too long to read"):
        read_artifact(out)
    write_rehashed("[" * 100_000 + "]" * 100_000)
    with pytest.raises(CorruptInputError, match=rf"{name}.*nested too deeply to read"):
        read_artifact(out)


def test_sparse_weights_of_a_narrow_float_load_exactly_and_fractional_indices_are_refused(
    tmp_path: Path, small: Compiled
) -> None:
    """A netlist.npz rewritten with float16 sparse data (values exact) loads as float64:
    scipy's kernels lack float16, and the ONNX step graph failed on it with exit 1.
    Fractional indices were truncated by scipy without a word; NaN ones warned on stderr."""
    save_netlist(small.netlist, tmp_path)
    sparse_keys = [
        k[: -len(".data")] for k in np.load(tmp_path / "netlist.npz").files if k.endswith(".data")
    ]
    assert sparse_keys, "the small netlist has no sparse synapse to test"
    key = sparse_keys[0]
    _edit_npz_member(tmp_path / "netlist.npz", f"{key}.data", lambda d: d.astype(np.float16))
    loaded = load_netlist(tmp_path)
    for want, got in zip(small.netlist.synapses, loaded.synapses, strict=True):
        if sparse.issparse(got.weight):
            assert got.weight.dtype == np.float64
            assert (got.weight != want.weight).nnz == 0
    _edit_npz_member(tmp_path / "netlist.npz", f"{key}.indices", lambda i: i + 0.25)
    with pytest.raises(CorruptInputError, match="sparse matrix indices are not integers"):
        load_netlist(tmp_path)


def test_a_netlist_file_whose_sparse_weight_stores_an_entry_twice_is_refused(
    tmp_path: Path, small: Compiled
) -> None:
    """Two stored entries of one position act as their sum, which no grid check sees (Lava
    clipped it where the reference did not): a netlist.npz edited so is corrupt input."""
    save_netlist(small.netlist, tmp_path)
    with np.load(tmp_path / "netlist.npz") as npz:
        keys = [k[: -len(".indptr")] for k in npz.files if k.endswith(".indptr")]
        # a row storing two entries, whose second index can copy its first
        key, row = next(
            (k, int(np.argmax(np.diff(npz[f"{k}.indptr"]) >= 2)))
            for k in keys
            if (np.diff(npz[f"{k}.indptr"]) >= 2).any()
        )
        start = int(npz[f"{key}.indptr"][row])

    def duplicate(indices: np.ndarray) -> np.ndarray:
        indices = indices.copy()
        indices[start + 1] = indices[start]
        return indices

    _edit_npz_member(tmp_path / "netlist.npz", f"{key}.indices", duplicate)
    with pytest.raises(CorruptInputError, match="sparse weight stores an entry more than once"):
        load_netlist(tmp_path)


def test_write_artifact_takes_the_int_netlist_only(tmp_path: Path, bundled: Compiled) -> None:
    # A float64 netlist was written, and read back, as "the integer netlist".
    import dataclasses

    floated = dataclasses.replace(bundled, netlist=bundled.float_netlist)
    with pytest.raises(
        UsageError, match="holds the int netlist that quantize makes, got a float64 one"
    ):
        write_artifact(floated, tmp_path / "a")
    assert not (tmp_path / "a").exists()


def test_a_directory_that_is_no_artifact_is_named_so(tmp_path: Path) -> None:
    """It was "<dir>/manifest.json: no such file" (helper-63), and as such for a file."""
    with pytest.raises(CorruptInputError, match=r"^\S+: not an artifact directory \(no manifest"):
        read_artifact(tmp_path)
    (tmp_path / "f").write_text("x")
    with pytest.raises(CorruptInputError, match="is a file, not an artifact directory"):
        read_artifact(tmp_path / "f")
    with pytest.raises(CorruptInputError, match="no such artifact directory"):
        read_artifact(tmp_path / "missing")
