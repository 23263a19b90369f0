"""A NIR graph imported from another framework, exported to NIR again (`export X.nir --dt
DT --target nir`): the file computes what the original computes in our NIR simulator
(the oracle of `verify` for .nir sources), and reads back as the imported graph exactly."""

from __future__ import annotations

import json
from pathlib import Path

import nir
import numpy as np
import pytest
from scipy import sparse
from test_nir_import import cuba_lif, graph, lif, neuron_loop

from snncompile.errors import UnsupportedError
from snncompile.frontend.nir_import import import_nir
from snncompile.frontend.nir_sim import simulate_nir
from snncompile.frontend.nir_snncompile import read_snncompile_nir
from snncompile.ir.graph import Graph, Node
from snncompile.ir.nir_ops import EulerNeuron, SparseLinear
from snncompile.ir.ops import Add, Input, Output
from snncompile.targets.nir import check_exportable, encode_graph, graph_difference, nir_name
from snncompile.targets.nir.plain import strip_metadata

EXAMPLES = Path(__file__).parent / "data" / "nir-examples"


# Every bundled example the importer takes (scnn_mnist_legacy: nir cannot read it), at
# the dt its framework assumes, with the resets its training used or may have used.
CASES = [
    ("cnn_sinabs", 1.0, "zero"),
    ("cnn_sinabs", 1.0, "subtract"),
    ("braille_noDelay_bias_zero", 1e-4, "zero"),
    ("braille_noDelay_noBias_subtract", 1e-4, "subtract"),
    ("braille_noDelay_noBias_subtract", 1e-4, "subtract-delayed"),
    ("lif_norse", 1e-3, "zero"),
    ("lif_rockpool", 1e-3, "zero"),
    ("two_lif_neurons", 1e-3, "zero"),
]


def _exported_trace(traces: dict, name: str) -> np.ndarray:
    """A node's output in the exported file: the node itself, or its subgraph's Output."""
    key = nir_name(name)
    return traces[key] if key in traces else traces[f"{key}.output"]


def assert_same_simulation(original, exported, imported: Graph, x, dt: float, reset: str):
    """Every neuron's output and the Output node's, step by step, identical: the exported
    file under NIR's own semantics (reset to 0, the only one NIR states) against the
    original under the reset it was imported with."""
    want = simulate_nir(original, x, dt=dt, reset=reset)
    got = simulate_nir(exported, x, dt=dt, reset="zero")
    neurons = list(imported.meta["nir_kinds"])
    for name in neurons:
        np.testing.assert_array_equal(_exported_trace(got, name), want[name], err_msg=name)
    out = imported.output.name
    np.testing.assert_array_equal(got[nir_name(out)], want[out])
    assert sum(want[name].sum() for name in neurons) > 0  # not a comparison of silences


@pytest.mark.parametrize(("example", "dt", "reset"), CASES)
def test_an_imported_example_exported_to_nir_simulates_as_the_original(
    example: str, dt: float, reset: str, tmp_path: Path
) -> None:
    source = EXAMPLES / f"{example}.nir"
    imported = import_nir(source, dt=dt, reset=reset).graph
    file = tmp_path / "model.nir"
    nir.write(file, encode_graph(imported))
    rng = np.random.default_rng(len(example))
    shape = (2, 20) if example.startswith("cnn") else (4, 64)
    x = (rng.random((*shape, imported.input.op.size)) < 0.3).astype(np.float64)
    assert_same_simulation(source, file, imported, x, dt, reset)
    # Read back (from its metadata) it is the imported graph, every array bit for bit,
    # so it compiles to the same netlist.
    assert graph_difference(imported, read_snncompile_nir(file)) is None


@pytest.mark.parametrize("reset", ["zero", "subtract", "subtract-delayed"])
@pytest.mark.parametrize(("n_loop", "self_loop"), [(2, False), (3, True)])
def test_a_loop_through_several_neurons_exports_its_one_step_feedback(n_loop, self_loop, reset):
    """The importer's feedback nodes become NIR's recurrent edges: the cycles of the
    exported graph close where the imported graph delays them."""
    source = neuron_loop(n_loop, self_loop=self_loop)
    imported = import_nir(source, dt=1e-3, reset=reset).graph
    assert [n.op.kind for n in imported].count("feedback") == 1
    x = (np.random.default_rng(2).random((3, 40, 3)) < 0.4).astype(np.float64)
    exported = encode_graph(imported)
    assert_same_simulation(source, strip_metadata(exported), imported, x, 1e-3, reset)
    assert graph_difference(imported, read_snncompile_nir(exported)) is None


def test_a_loop_entered_at_its_feeding_neuron_first_still_closes_at_the_feedback():
    """input -> P -> S and input -> X -> S, S -> X closing the loop (the original's
    search marks S -> X). The input reaches S through P before X in the graph's order,
    which put the exported cycle's recurrent edge on X -> S (the export refused it);
    ordering each node's edges toward the loop's neuron first closes it at S -> X."""
    rng = np.random.default_rng(0)
    nodes = {
        "input": nir.Input(input_type=np.array([2])),
        "output": nir.Output(output_type=np.array([3])),
        **{k: nir.Linear(weight=rng.normal(1, 1, (3, 2))) for k in ("fcX", "fcP")},
        **{k: nir.Linear(weight=rng.normal(0.5, 1, (3, 3))) for k in ("wXS", "wPS", "wSX")},
        **{k: lif(3, tau=0.004) for k in ("X", "P", "S")},
    }
    edges = [("input", "fcX"), ("fcX", "X"), ("X", "wXS"), ("wXS", "S"), ("S", "wSX"),
             ("wSX", "X"), ("input", "fcP"), ("fcP", "P"), ("P", "wPS"), ("wPS", "S"),
             ("S", "output")]  # fmt: skip
    source = graph(nodes, edges)
    imported = import_nir(source, dt=1e-3).graph
    order = [n.name for n in imported]
    assert order.index("P") < order.index("X") < order.index("S")
    x = (np.random.default_rng(4).random((3, 40, 2)) < 0.5).astype(np.float64)
    assert_same_simulation(source, encode_graph(imported), imported, x, 1e-3, "zero")


def test_delayed_inputs_become_nir_delays():
    """A Delay in the original (an input lag of the imported neuron) is a NIR Delay again."""
    rng = np.random.default_rng(5)
    nodes = {
        "input": nir.Input(input_type=np.array([2])),
        "fc": nir.Affine(weight=rng.normal(1, 1, (3, 2)), bias=np.full(3, 0.1)),
        "late": nir.Delay(delay=np.full(3, 3e-3)),
        "fc2": nir.Linear(weight=rng.normal(1, 1, (3, 2))),
        "a": cuba_lif(3, w_in=2.0),
        "w": nir.Linear(weight=rng.normal(0.5, 1, (3, 3))),
        "wd": nir.Delay(delay=np.full(3, 2e-3)),
        "output": nir.Output(output_type=np.array([3])),
    }
    edges = [("input", "fc"), ("fc", "late"), ("late", "a"), ("input", "fc2"), ("fc2", "a"),
             ("a", "w"), ("w", "wd"), ("wd", "a"), ("a", "output")]  # fmt: skip
    source = graph(nodes, edges)
    imported = import_nir(source, dt=1e-3).graph
    (neuron,) = [n.op for n in imported if isinstance(n.op, EulerNeuron)]
    assert sorted(neuron.lags) == [0, 3] and neuron.rec_lag == 3
    x = (np.random.default_rng(6).random((3, 40, 2)) < 0.5).astype(np.float64)
    exported = encode_graph(imported)
    assert_same_simulation(source, strip_metadata(exported), imported, x, 1e-3, "zero")
    assert graph_difference(imported, read_snncompile_nir(exported)) is None


def test_the_cli_writes_a_nir_file_that_reads_back_to_the_same_netlist(tmp_path, cli):
    """`export X.nir --dt --reset --target nir`, then `export` of its model.nir: the same
    integer netlist as compiling X.nir directly; the manifest calls nothing lossy."""
    source = EXAMPLES / "braille_noDelay_noBias_subtract.nir"
    common = ["--dt", "1e-4", "--reset", "subtract-delayed"]
    out = cli("export", str(source), *common, "--target", "nir", "-o", str(tmp_path / "a.nir"))
    assert out.returncode == 0, out.stderr
    manifest = json.loads((tmp_path / "a.nir" / "manifest.json").read_text())
    assert manifest["nir"]["lossy_without_metadata"] == {}
    again = cli("export", str(tmp_path / "a.nir" / "model.nir"), "-o", str(tmp_path / "b"))
    assert again.returncode == 0, again.stderr
    direct = cli("export", str(source), *common, "-o", str(tmp_path / "c"))
    assert direct.returncode == 0, direct.stderr
    for name in ("netlist.npz", "netlist.json"):
        assert (tmp_path / "b" / name).read_bytes() == (tmp_path / "c" / name).read_bytes()


def test_a_neuron_no_nir_node_computes_is_refused_in_one_line(tmp_path, cli):
    """A LIF node whose neurons leak except one (tau so long that 1 - dt/tau rounds to 1)
    would need LIF and IF in one node: exit 4, one line, nothing written."""
    g = graph(
        {
            "input": nir.Input(input_type=np.array([2])),
            "fc": nir.Linear(weight=np.ones((2, 2))),
            "lif": nir.LIF(
                tau=np.array([1e-2, 1e20]),
                r=np.ones(2),
                v_leak=np.zeros(2),
                v_threshold=np.ones(2),
                v_reset=np.zeros(2),
            ),
            "output": nir.Output(output_type=np.array([2])),
        },
        [("input", "fc"), ("fc", "lif"), ("lif", "output")],
    )
    source = tmp_path / "mixed.nir"
    nir.write(source, g)
    art = tmp_path / "a"
    out = cli("export", str(source), "--dt", "1e-3", "--target", "nir", "-o", str(art))
    assert out.returncode == 4 and out.stderr.count("\n") == 1, out.stderr
    assert "no NIR neuron computes the euler_neuron node(s) lif (leaky and non-leaky" in out.stderr
    assert not art.exists()


def test_a_lag_on_an_input_that_is_no_sparse_linear_of_its_own_is_refused():
    w = sparse.csr_matrix(np.ones((2, 2)))
    zero, one = np.zeros(2), np.ones(2)
    neuron = EulerNeuron(zero, 0.5 * one, one, zero, np.array([1]), sparse.csr_matrix((2, 2)))
    g = Graph(
        (
            Node("in", Input(2)),
            Node("lin", SparseLinear(w, zero), ("in",)),
            Node("n", neuron, ("lin",)),
            Node(
                "m",
                EulerNeuron(zero, 0.5 * one, one, zero, np.array([0]), sparse.csr_matrix((2, 2))),
                ("lin",),
            ),
            Node("sum", Add(), ("n", "m")),
            Node("out", Output(), ("sum",)),
        )
    )
    with pytest.raises(UnsupportedError, match="'lin' read 1 step"):
        check_exportable(g)


def test_a_neuron_that_feeds_only_itself_is_refused_in_one_line(tmp_path, cli):
    """b reads a and feeds only itself (a recurrent edge): the import keeps it, with no
    node reading it. nir gave it an Output of its own, the export's read-back found nodes
    its metadata does not list and called the export corrupt (exit 6)."""
    rng = np.random.default_rng(8)
    nodes = {
        "input": nir.Input(input_type=np.array([2])),
        "fc": nir.Linear(weight=rng.normal(1, 1, (3, 2))),
        "a": lif(3, tau=0.004),
        "w": nir.Linear(weight=rng.normal(1, 1, (3, 3))),
        "b": lif(3, tau=0.004),
        "rec": nir.Linear(weight=rng.normal(0.5, 1, (3, 3))),
        "output": nir.Output(output_type=np.array([3])),
    }
    edges = [("input", "fc"), ("fc", "a"), ("a", "w"), ("w", "b"), ("b", "rec"), ("rec", "b"),
             ("a", "output")]  # fmt: skip
    source = tmp_path / "loose.nir"
    nir.write(source, graph(nodes, edges))
    art = tmp_path / "a"
    out = cli("export", str(source), "--dt", "1e-3", "--target", "nir", "-o", str(art))
    assert out.returncode == 4 and out.stderr.count("\n") == 1, out.stderr
    assert "no NIR encoding for b: no node reads its output" in out.stderr
    assert not art.exists()
    # the other targets still take it
    ref = cli("export", str(source), "--dt", "1e-3", "-o", str(tmp_path / "r"))
    assert ref.returncode == 0, ref.stderr


def test_a_loop_the_input_does_not_reach_is_refused_naming_its_neurons(tmp_path, cli):
    """b and c feed each other and a; the Input feeds only a. The reference takes it; the
    NIR export is refused (readers' search from the Input never enters the loop), and
    the message named flattened NIR nodes ('edge c -> b<c@1_feedback'), not the loop."""
    nodes = {"input": nir.Input(input_type=np.array([2])), "f": nir.Linear(weight=np.eye(2)),
             "a": lif(2, tau=0.004), "b": lif(2, tau=0.004), "c": lif(2, tau=0.004),
             "output": nir.Output(output_type=np.array([2]))}  # fmt: skip
    for name in ("wbc", "wcb", "wba", "wca"):
        nodes[name] = nir.Linear(weight=np.eye(2))
    edges = [("input", "f"), ("f", "a"), ("b", "wbc"), ("wbc", "c"), ("c", "wcb"), ("wcb", "b"),
             ("b", "wba"), ("wba", "a"), ("c", "wca"), ("wca", "a"), ("a", "output")]  # fmt: skip
    source = tmp_path / "unreached.nir"
    nir.write(source, graph(nodes, edges))
    out = cli("export", str(source), "--dt", "1e-3", "--target", "nir", "-o", str(tmp_path / "n"))
    assert out.returncode == 4 and out.stderr.count("\n") == 1, out.stderr
    assert "no NIR encoding for a loop the Input does not reach (through b, c)" in out.stderr
    assert not (tmp_path / "n").exists()
    ref = cli("export", str(source), "--dt", "1e-3", "-o", str(tmp_path / "r"))
    assert ref.returncode == 0, ref.stderr
