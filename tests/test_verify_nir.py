"""`verify` of a NIR source: the float NIR simulation is the oracle of rungs 1 and 2."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from netlists import nir_mlp

from snncompile.cli import main

EXAMPLES = Path(__file__).parent / "data" / "nir-examples"
BRAILLE = EXAMPLES / "braille_noDelay_bias_zero.nir"


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def test_verify_nir_three_rungs(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(
        capsys, "verify", BRAILLE, "--dt", "1e-4", "--target", "lava", "--limit", "3", "--json"
    )
    assert code == 0, err
    report = json.loads(out)
    assert set(report["lowering_agreement"]) == {"lif1.lif", "lif2"}
    assert all(v == 1.0 for v in report["lowering_agreement"].values())
    assert all(0.5 < v <= 1.0 for v in report["spike_agreement"].values())
    assert report["n"] == 3 and "seed 1" in report["data"]
    assert report["target_check"]["exact"] and report["target_check"]["values_differing"] == 0


def test_verify_nir_json_names_the_diverging_node_and_neuron(capsys) -> None:
    """Rung 2 compares whole NIR nodes, so the JSON's first divergence names the node and
    its neuron as `node` and `neuron`, as the text does (it said only `population` and
    `compartment` before helper-88); those keys stay, with the same values."""
    path = EXAMPLES / "two_lif_neurons.nir"
    code, out, err = _run(capsys, "verify", path, "--dt", "1e-3", "--json")
    assert code == 0, err
    first = json.loads(out)["first_divergence"]
    assert first is not None  # lif1 at step 16 of input 9 (2026-12-07)
    assert first["node"] == first["population"] == "lif1", first
    assert first["neuron"] == first["compartment"] == 0, first


def test_verify_nir_json_names_a_split_nodes_neuron(tmp_path: Path) -> None:
    """A split node's divergence is the node's neuron, not a compartment of one of its
    populations: `node` is a NIR node where `population` names none of the netlist."""
    import nir

    from snncompile.compiler import compile_model
    from snncompile.verify.nir import default_inputs, verify_nir

    rng, n = np.random.default_rng(3), 4
    nodes = {
        "input": nir.Input(input_type=np.array([3])),
        "fc": nir.Linear(weight=rng.normal(1.0, 1.0, (n, 3))),
        "lif": nir.LIF(tau=np.array([0.004, 0.008, 0.004, 0.008]), r=np.full(n, 3.0),
                       v_leak=np.zeros(n), v_threshold=np.ones(n), v_reset=np.zeros(n)),
        "output": nir.Output(output_type=np.array([n])),
    }  # fmt: skip
    edges = [("input", "fc"), ("fc", "lif"), ("lif", "output")]
    nir.write(tmp_path / "tau.nir", nir.NIRGraph(nodes=nodes, edges=edges))
    compiled = compile_model(tmp_path / "tau.nir", dt=1e-3)
    assert "lif" not in [p.name for p in compiled.netlist.populations]  # lif.tau0, lif.tau1
    first = verify_nir(compiled, *default_inputs(3, 0.4)).to_dict()["first_divergence"]
    assert first is not None  # neuron 1 at step 4 of input 5 (2026-12-07)
    assert first["node"] == "lif" and first["neuron"] in range(n), first
    assert (first["population"], first["compartment"]) == (first["node"], first["neuron"])


def test_verify_nir_tolerance_and_data(tmp_path: Path, capsys) -> None:
    x = (np.random.default_rng(5).random((2, 30, 12)) < 0.3).astype(np.float64)
    np.save(tmp_path / "x.npy", x)
    argv = ["verify", BRAILLE, "--dt", "1e-4", "--data", tmp_path / "x.npy"]
    code, out, err = _run(capsys, *argv, "--min-spike-agreement", "1.0")
    assert code == 3 and "spike agreement of lif2" in err
    assert "lowering (float64 netlist spikes)      exact" in out
    code, out, err = _run(capsys, *argv)
    assert code == 0 and "2 inputs" in out and "PASSED" in out
    assert "labels" not in err
    # Labels beside the inputs were dropped without a word (helper-84): a .nir source
    # has no accuracy, and verify says so.
    np.savez(tmp_path / "xy.npz", x=x, y=np.array([0, 1]))
    code, out, err = _run(capsys, "verify", BRAILLE, "--dt", "1e-4", "--data", tmp_path / "xy.npz")
    assert code == 0 and "PASSED" in out
    assert err.count("\n") == 1 and "the labels in " in err and "are not used" in err


def test_verify_nir_usage_errors(tmp_path: Path, capsys) -> None:
    code, _, err = _run(capsys, "verify", BRAILLE)
    assert code == 2 and "dt" in err  # the file does not state dt
    ckpt = Path(__file__).parents[1] / "examples" / "checkpoints" / "spike-ssm-sdigits.pt"
    code, _, err = _run(capsys, "verify", ckpt, "--dt", "1e-3")
    assert code == 2 and "--dt and --reset apply to .nir sources only" in err
    code, _, err = _run(capsys, "verify", BRAILLE, "--dt", "1e-4", "--entry", "a:b")
    assert code == 2 and "--entry applies to PyTorch models" in err
    # Criteria a .nir source has no use for are refused, not ignored.
    # At their default values too (those were accepted without a word).
    given = (("--min-argmax-agreement", "0.5"), ("--max-accuracy-drop", "5"))
    at_default = (("--min-argmax-agreement", "0.98"), ("--max-accuracy-drop", "1.0"))
    for option, value in (*given, *at_default):
        code, _, err = _run(capsys, "verify", BRAILLE, "--dt", "1e-4", option, value)
        assert code == 2 and f"{option} applies to PyTorch sources" in err, err
    # A .nir file snncompile wrote: its model is the oracle, not our encoding of it.
    code, _, _ = _run(capsys, "export", ckpt, "--target", "nir", "-o", tmp_path / "art")
    assert code in (0, None)
    code, _, err = _run(capsys, "verify", tmp_path / "art" / "model.nir")
    assert code == 2 and "written by snncompile: verify the model it was exported from" in err


def test_verify_nir_on_onnx_is_exact_with_a_recurrent_layer(capsys) -> None:
    """The Braille RNN's lagged self-loop and cuba_lif compartments in the ONNX step graph."""
    argv = ["verify", BRAILLE, "--dt", "1e-4", "--target", "onnx", "--limit", "3", "--json"]
    code, out, err = _run(capsys, *argv)
    assert code == 0, err
    check = json.loads(out)["target_check"]
    assert check["backend"] == "onnx" and check["exact"] and check["values_compared"] > 10_000


def test_verify_nir_fails_outputs_saturation_wrecked(tmp_path: Path, capsys) -> None:
    """Inputs of 3e38 saturate the Braille RNN's quantized input; spike agreement has no
    default criterion, so verify passed (exit 0, helper-72). The outputs' error against
    the NIR simulation is held to --max-logit-error as a PyTorch source's logits are."""
    np.save(tmp_path / "huge.npy", np.full((2, 40, 12), 3e38))
    argv = ["verify", BRAILLE, "--dt", "1e-4", "--data", tmp_path / "huge.npy"]
    code, out, _ = _run(capsys, *argv, "--json")
    report = json.loads(out)
    assert report["output_relative_error"] > 1 and report["tolerances"]["max_logit_error"] == 0.5
    assert code == 3 and report["failures"][0].startswith("output error "), report["failures"]
    assert report["failures"][0].endswith(" of the largest float output > 0.5")
    code, _, _ = _run(capsys, *argv, "--max-logit-error", "10")
    assert code == 0
    # The default inputs pass (0.167 on 2026-12-07).
    code, out, _ = _run(capsys, "verify", BRAILLE, "--dt", "1e-4", "--json")
    assert code == 0 and json.loads(out)["output_relative_error"] < 0.5


def test_verify_nir_warns_of_saturation_past_the_calibrated_length(tmp_path: Path, capsys):
    """The default calibration has 32 steps; 2,000 steps of constant input saturate the
    readout, and a NIR source is told so as a PyTorch one is. Every spike agrees; the
    clipped outputs fail the output error (0.87, 2026-12-07; it passed before)."""
    np.save(tmp_path / "long.npy", np.ones((2, 2000, 12)))
    argv = ["verify", BRAILLE, "--dt", "1e-4", "--data", tmp_path / "long.npy"]
    code, out, err = _run(capsys, *argv)
    assert code == 3 and "saturation events: 0" not in out
    assert "the network was calibrated on 32-step inputs and these have 2000" in err, err
    assert err.splitlines()[-1].startswith("error: output error 0.8"), err


def test_verify_nir_prints_what_reading_the_file_found_as_export_does(capsys) -> None:
    """Rockpool's file fails nir's type check and declares a wrong output shape: export
    and inspect warned of it, verify said nothing (helper-62)."""
    argv = ["verify", EXAMPLES / "lif_rockpool.nir", "--dt", "1e-3", "--limit", "2"]
    code, out, err = _run(capsys, *argv)
    assert code == 0, err
    lines = err.splitlines()
    assert len(lines) == 2, err
    assert lines[0].startswith(f"warning: {EXAMPLES / 'lif_rockpool.nir'}: nir's type"), err
    assert lines[1].startswith("warning: node 'output' (Output) declares input shape (1, 1, 1)")
    code, out, err = _run(capsys, *argv, "--json")
    assert code == 0 and err == ""
    assert [w[:30] for w in json.loads(out)["warnings"]] == [w[9:39] for w in lines]


def test_verify_nir_compares_inputs_too_long_to_record_while_running(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    """The Braille RNN (a recurrent cycle, run tick by tick in the reference) on inputs
    whose traces pass the budget: rung 3 compares them as both runs go, exactly."""
    import snncompile.verify.targets as targets

    monkeypatch.setattr(targets, "TRACE_BUDGET_BYTES", 1 << 16)
    np.save(tmp_path / "x.npy", (np.random.default_rng(2).random((2, 200, 12)) < 0.3) * 1.0)
    argv = ["verify", BRAILLE, "--dt", "1e-4", "--data", tmp_path / "x.npy", "--target", "onnx"]
    code, out, err = _run(capsys, *argv, "--json")
    assert code == 0, err
    check = json.loads(out)["target_check"]
    assert check["streamed"] and check["exact"] and check["values_compared"] > 10_000


def test_verify_nir_in_parts_reports_the_whole_batch(tmp_path: Path, monkeypatch) -> None:
    """A large --data file runs in equal parts of the batch; agreements, rates, events
    and the first divergence (with its whole-batch sample) are those of one run."""
    import snncompile.reference.parts as parts
    from snncompile.compiler import compile_model
    from snncompile.verify.nir import bytes_per_input, verify_nir

    compiled = compile_model(BRAILLE, dt=1e-4)
    x = (np.random.default_rng(7).random((5, 40, 12)) < 0.4).astype(np.float64)
    whole = verify_nir(compiled, x, "random").to_dict()
    assert whole["first_divergence"] is not None  # so its merge is exercised
    monkeypatch.setattr(parts, "RUN_BUDGET_BYTES", 2 * bytes_per_input(compiled.netlist, 40))
    in_parts = verify_nir(compiled, x, "random").to_dict()
    assert (whole.pop("parts"), in_parts.pop("parts")) == (1, 3)  # parts of 2, 2, 1
    for stat in ("lowering_agreement", "spike_agreement", "spike_rates"):
        expected, got = whole.pop(stat), in_parts.pop(stat)
        assert expected and set(got) == set(expected)
        for name, value in expected.items():
            assert got[name] == pytest.approx(value, rel=1e-12), (stat, name)
    assert in_parts == whole  # events, first divergence, failures, the rest


def _graded_graph(path: Path) -> None:
    """Input (3) -> Affine -> LI (2) -> Output: no spiking population at all."""
    import nir

    nodes = {
        "input": nir.Input(input_type=np.array([3])),
        "fc": nir.Affine(weight=np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]]),
                         bias=np.array([0.1, -0.2])),
        "li": nir.LI(tau=np.full(2, 0.01), r=np.ones(2), v_leak=np.zeros(2)),
        "output": nir.Output(output_type=np.array([2])),
    }  # fmt: skip
    edges = [("input", "fc"), ("fc", "li"), ("li", "output")]
    nir.write(path, nir.NIRGraph(nodes=nodes, edges=edges))


def test_verify_of_a_graded_graph_compares_the_outputs(tmp_path: Path, capsys) -> None:
    """Without a spiking population rung 1 still compares something: the pooled outputs
    of the float64 netlist against the NIR simulation, and says there are no spikes."""
    _graded_graph(tmp_path / "li.nir")
    code, out, err = _run(capsys, "verify", tmp_path / "li.nir", "--dt", "1e-3")
    assert code == 0, err
    assert "no spiking population to compare" in out
    code, out, _ = _run(capsys, "verify", tmp_path / "li.nir", "--dt", "1e-3", "--json")
    report = json.loads(out)
    assert report["lowering_agreement"] == {} and report["output_lowering_error"] < 1e-12
    assert 0 < report["output_relative_error"] < 0.05  # 8-bit weights: close, not equal


def test_verify_of_a_graded_graph_fails_when_the_lowered_outputs_differ(tmp_path: Path) -> None:
    """A float64 netlist off by 0.1% in one weight is a failed rung 1, named as such."""
    import dataclasses

    from snncompile.compiler import compile_model
    from snncompile.verify.nir import default_inputs, verify_nir

    _graded_graph(tmp_path / "li.nir")
    compiled = compile_model(tmp_path / "li.nir", dt=1e-3)
    x, data = default_inputs(3, 0.2)
    assert verify_nir(compiled, x, data).passed
    net = compiled.float_netlist
    first = net.synapses[0]
    off = dataclasses.replace(first, weight=first.weight * 1.001)
    compiled.float_netlist = dataclasses.replace(net, synapses=[off, *net.synapses[1:]])
    report = verify_nir(compiled, x, data)
    assert not report.passed
    assert any("outputs' relative error" in f for f in report.failures), report.failures


def test_verify_nir_warns_of_a_quantized_layer_that_never_spikes(tmp_path: Path, capsys):
    """--netx-weights with 24-bit input messages rounds the first layer's weights away:
    both layers go silent, yet spike agreement (silences agree) reads 87% and 91% with
    no default tolerance. The outputs, all 0, fail the output error (they passed before
    it), and the warnings say why."""
    source = nir_mlp(tmp_path / "mlp.nir")
    with pytest.raises(SystemExit) as info:
        main(["verify", str(source), "--dt", "1e-3", "--netx-weights"])
    out, err = capsys.readouterr()
    assert info.value.code == 3 and "FAILED: output error 1 of the largest float output" in out
    assert "warning: the quantized lif1 never spikes (the NIR simulation: rate 0.1" in err
    assert "warning: the quantized lif2 never spikes" in err
    with pytest.raises(SystemExit):
        main(["verify", str(source), "--dt", "1e-3"])
    assert "never spikes" not in capsys.readouterr().err


def test_verify_nir_compares_every_group_of_a_split_node(tmp_path: Path) -> None:
    """A node with per-neuron time constants becomes one population per decay pair; rung
    1 compares the node whole, so a float64 netlist whose one group decays otherwise
    fails, named by the node (the groups were not NIR names: they went uncompared)."""
    import dataclasses

    import nir

    from snncompile.compiler import compile_model
    from snncompile.verify.nir import default_inputs, verify_nir

    rng = np.random.default_rng(3)
    n = 4
    tau = np.array([0.004, 0.008, 0.004, 0.008])
    nodes = {
        "input": nir.Input(input_type=np.array([3])),
        "fc": nir.Linear(weight=rng.normal(1.0, 1.0, (n, 3))),
        "lif": nir.LIF(tau=tau, r=np.full(n, 3.0), v_leak=np.zeros(n),
                       v_threshold=np.ones(n), v_reset=np.zeros(n)),
        "output": nir.Output(output_type=np.array([n])),
    }  # fmt: skip
    edges = [("input", "fc"), ("fc", "lif"), ("lif", "output")]
    nir.write(tmp_path / "tau.nir", nir.NIRGraph(nodes=nodes, edges=edges))
    compiled = compile_model(tmp_path / "tau.nir", dt=1e-3)
    x, data = default_inputs(3, 0.4)
    report = verify_nir(compiled, x, data)
    assert report.passed, report.failures
    assert report.lowering_agreement == {"lif": 1.0}
    assert 0.02 < report.spike_rates["lif"]["float"] < 0.9, report.spike_rates
    net = compiled.float_netlist
    assert [p.name for p in net.populations if p.kind == "cuba_lif"] == ["lif.tau0", "lif.tau1"]
    slower = [
        dataclasses.replace(p, params={**p.params, "alpha_v": np.array(0.95)})
        if p.name == "lif.tau1"
        else p
        for p in net.populations
    ]
    compiled.float_netlist = dataclasses.replace(net, populations=tuple(slower))
    report = verify_nir(compiled, x, data)
    assert not report.passed and report.lowering_agreement["lif"] < 1.0
    # The divergence names the node and the node's neuron (1 and 3 are lif.tau1's).
    first = report.failures[0]
    assert re.search(r"node 'lif' at model step \d+ \(sample \d+, neuron [13]\)", first)


def _loop_past_the_readout(path: Path) -> None:
    """input -> a -> output and a loop a -> b -> c -> a: three ticks per model step, c at
    latency 3 past the readout's 2, so the run ends before c's last model step."""
    import nir

    n, rng = 4, np.random.default_rng(0)

    def lif() -> nir.LIF:
        full = lambda v: np.full(n, float(v))  # noqa: E731
        return nir.LIF(tau=full(0.004), r=full(2.0), v_leak=full(0), v_threshold=full(1),
                       v_reset=full(0))  # fmt: skip

    nodes = {
        "input": nir.Input(input_type=np.array([2])),
        "fc": nir.Affine(weight=rng.normal(1.5, 1, (n, 2)), bias=np.zeros(n)),
        "a": lif(),
        "b": lif(),
        "c": lif(),
        "out": nir.Output(output_type=np.array([n])),
    }
    edges = [("input", "fc"), ("fc", "a"), ("a", "out")]
    for k, (src, dst) in enumerate([("a", "b"), ("b", "c"), ("c", "a")]):
        nodes[f"w{k}"] = nir.Linear(weight=rng.normal(0.8, 1, (n, n)))
        edges += [(src, f"w{k}"), (f"w{k}", dst)]
    nir.write(path, nir.NIRGraph(nodes=nodes, edges=edges, type_check=False))


def test_a_node_later_than_the_readout_is_compared_on_the_steps_it_runs(
    tmp_path: Path, capsys
) -> None:
    """c's last model step comes after the run's last tick, so its trace is 0 there: verify
    compared that step with the NIR simulation's spikes and failed a correct network
    ("lowering not exact: population 'c' at model step 63", helper-82). It compares the
    steps run, and says which it left out."""
    from snncompile.compiler import compile_model
    from snncompile.frontend.nir_compile import spike_agreement

    path = tmp_path / "loop.nir"
    _loop_past_the_readout(path)
    compiled = compile_model(path, dt=1e-3)
    net = compiled.netlist
    assert net.ticks_per_step == 3 and net.latency()["c"] == 3 and net.output_latency == 2
    assert net.steps_run(64) == {"input": 64, "a": 64, "b": 64, "c": 63, "out": 64}
    code, out, err = _run(capsys, "verify", path, "--dt", "1e-3", "--target", "onnx", "--json")
    assert code == 0, out + err
    report = json.loads(out)
    assert report["lowering_agreement"] == {"a": 1.0, "b": 1.0, "c": 1.0}
    assert report["target_check"]["exact"]
    assert report["warnings"] == [
        "c runs later than the readout: the last 1 of its 64 model steps come after the "
        "run's last tick (not run, not compared)"
    ]
    x = (np.random.default_rng(1).random((4, 30, 2)) < 0.5).astype(float)
    agreement = spike_agreement(path, compiled.float_netlist, x, dt=1e-3)
    assert {name: a["agreement"] for name, a in agreement.items()} == {"a": 1.0, "b": 1.0, "c": 1.0}
    # simulate says so too: c's spike rate counts a step that was not run
    np.save(tmp_path / "x.npy", x)
    code, _, err = _run(capsys, "export", path, "--dt", "1e-3", "-o", tmp_path / "art")
    assert code == 0, err
    code, out, err = _run(capsys, "simulate", tmp_path / "art", "--input", tmp_path / "x.npy")
    assert code == 0, err
    assert err.count("runs later than the readout") == 1
    assert "warning: c runs later than the readout: the last 1 of its 30 model steps" in err


def _tie_graph(path: Path) -> None:
    """Input 3 -> Linear 0.1 each -> IF at threshold 0.3: three inputs at once reach the
    threshold. The NIR simulation sums 0.30000000000000004 > 0.3 and spikes; the netlist,
    with 1 / 0.3 folded into the weights, sums 3 x 0.33333333333333337 = 1.0, not > 1."""
    import nir

    nodes = {
        "input": nir.Input(input_type=np.array([3])),
        "fc": nir.Linear(weight=np.full((1, 3), 0.1)),
        "lif": nir.IF(r=np.array([1.0]), v_threshold=np.array([0.3])),
        "output": nir.Output(output_type=np.array([1])),
    }
    edges = [("input", "fc"), ("fc", "lif"), ("lif", "output")]
    nir.write(path, nir.NIRGraph(nodes=nodes, edges=edges))


def test_simulate_nir_ties_flags_the_steps_at_the_threshold(tmp_path: Path) -> None:
    from snncompile.frontend.nir_sim import simulate_nir, simulate_nir_ties

    _tie_graph(tmp_path / "tie.nir")
    # Step 0: no input (v 0, far below); step 1: three (0.30000000000000004, a tie,
    # spikes); step 2: two (v reset to 0, then 0.2, below).
    x = np.array([[[0, 0, 0], [1, 1, 1], [1, 1, 0]]], dtype=np.float64)
    traces, ties = simulate_nir_ties(tmp_path / "tie.nir", x, dt=1.0, tolerance=1e-12)
    np.testing.assert_array_equal(traces["lif"][0, :, 0], [0, 1, 0])
    np.testing.assert_array_equal(ties["lif"][0, :, 0], [False, True, False])
    np.testing.assert_array_equal(
        simulate_nir(tmp_path / "tie.nir", x, dt=1.0)["lif"], traces["lif"]
    )


@pytest.mark.parametrize("reset", ["zero", "subtract"])
def test_verify_nir_reports_a_threshold_tie_not_a_lowering_error(
    tmp_path: Path, capsys, reset: str
) -> None:
    """A reviewer's hand-made graph whose inputs sum exactly to the threshold failed rung 1
    ("lowering not exact"): the two float64 computations round the tie apart."""
    _tie_graph(tmp_path / "tie.nir")
    code, out, err = _run(capsys, "verify", tmp_path / "tie.nir", "--dt", "1", "--reset", reset)
    assert code == 0, out + err
    assert "lowering (float64 netlist spikes)      exact but for threshold ties (" in out
    assert "at a threshold tie" in err and "node 'lif' at model step 1" in err
    code, out, _ = _run(
        capsys, "verify", tmp_path / "tie.nir", "--dt", "1", "--reset", reset, "--json"
    )
    report = json.loads(out)
    assert code == 0 and 0 < report["lowering_ties"]["lif"] <= report["n"]
    # Rung 1's agreement is over the values it compared: the ones a tie parted are
    # counted apart, not as disagreements beside "exact but for threshold ties".
    assert report["lowering_agreement"]["lif"] == 1.0
    assert 0 < report["lowering_left_out"]["lif"] < report["n"] * report["steps"]


def test_verify_nir_fails_a_lowering_error_at_a_tie(tmp_path: Path) -> None:
    """A tie is one in both computations: a netlist threshold 1e-9 too high decides the
    NIR graph's ties the other way but is no tie of the netlist, so rung 1 fails."""
    import dataclasses

    from snncompile.compiler import compile_model
    from snncompile.verify.nir import default_inputs, verify_nir

    _tie_graph(tmp_path / "tie.nir")
    compiled = compile_model(tmp_path / "tie.nir", dt=1.0)
    x, data = default_inputs(3, 0.4)
    assert verify_nir(compiled, x, data).passed
    net = compiled.float_netlist
    high = [
        dataclasses.replace(p, params={**p.params, "vth": np.array(1.0 + 1e-9)})
        if p.name == "lif"
        else p
        for p in net.populations
    ]
    compiled.float_netlist = dataclasses.replace(net, populations=tuple(high))
    report = verify_nir(compiled, x, data)
    assert report.lowering_ties == {}
    assert report.failures and report.failures[0].startswith("lowering not exact: first")


def test_verify_nir_fails_a_wrong_gain_into_a_threshold_node_at_its_ties(tmp_path: Path) -> None:
    """A Threshold node's netlist (heaviside of the input minus the threshold) is at a tie
    only where that input is within TIE_RELATIVE of the NIR threshold. Linear 0.5 from
    two spikes is exactly the threshold 1; a gain 1e-9 too high (or 10%) into the node
    changes only those decisions, which were all excused as ties (16 of 16 samples)."""
    import dataclasses

    import nir

    from snncompile.compiler import compile_model
    from snncompile.verify.nir import default_inputs, verify_nir

    nodes = {
        "input": nir.Input(input_type=np.array([4])),
        "fc": nir.Linear(weight=np.full((3, 4), 0.5)),
        "thr": nir.Threshold(threshold=np.ones(3)),
        "output": nir.Output(output_type=np.array([3])),
    }
    edges = [("input", "fc"), ("fc", "thr"), ("thr", "output")]
    nir.write(tmp_path / "thr.nir", nir.NIRGraph(nodes=nodes, edges=edges))
    x, data = default_inputs(4, 0.4)
    for gain in (1 + 1e-9, 1.1):
        compiled = compile_model(tmp_path / "thr.nir", dt=1.0)
        assert verify_nir(compiled, x, data).passed  # exact ties: both decide 'no spike'
        net = compiled.float_netlist
        wrong = [
            dataclasses.replace(s, weight=s.weight * gain) if s.name == "input->thr" else s
            for s in net.synapses
        ]
        compiled.float_netlist = dataclasses.replace(net, synapses=tuple(wrong))
        report = verify_nir(compiled, x, data)
        assert report.lowering_ties == {}, gain
        assert report.failures[0].startswith("lowering not exact: first divergence: node 'thr'")


def test_verify_nir_a_tie_in_one_branch_does_not_hide_an_error_in_another(tmp_path: Path) -> None:
    """The tie graph's IF (Linear 0.1 x 3 into threshold 0.3) beside a LIF on the same
    inputs, both into the output. A tie parts the IF from the NIR simulation in every
    sample; the LIF, which it does not reach, is still compared: its netlist decay at
    0.9 of the NIR one fails rung 1 (it passed when a tie left out the whole sample)."""
    import dataclasses

    import nir

    from snncompile.compiler import compile_model
    from snncompile.verify.nir import default_inputs, verify_nir

    one = np.ones(4)
    rng = np.random.default_rng(0)
    nodes = {
        "input": nir.Input(input_type=np.array([3])),
        "fa": nir.Linear(weight=np.full((4, 3), 0.1)),
        "a": nir.IF(r=one, v_threshold=0.3 * one),
        "fb": nir.Linear(weight=rng.uniform(0.05, 0.4, (4, 3))),
        "b": nir.LIF(tau=4 * one, r=one, v_leak=0 * one, v_threshold=0.5 * one),
        "oa": nir.Linear(weight=np.eye(4)),
        "ob": nir.Linear(weight=np.eye(4)),
        "output": nir.Output(output_type=np.array([4])),
    }
    edges = [("input", "fa"), ("fa", "a"), ("input", "fb"), ("fb", "b"), ("a", "oa"),
             ("b", "ob"), ("oa", "output"), ("ob", "output")]  # fmt: skip
    nir.write(tmp_path / "branches.nir", nir.NIRGraph(nodes=nodes, edges=edges))
    x, data = default_inputs(3, 0.4)
    compiled = compile_model(tmp_path / "branches.nir", dt=1.0)
    report = verify_nir(compiled, x, data)
    assert report.passed and report.lowering_ties == {"a": 16}, report.failures
    net = compiled.float_netlist
    (b,) = [p for p in net.populations if p.name == "b"]
    key = "alpha_v" if b.kind == "cuba_lif" else "beta"
    slow = dataclasses.replace(b, params={**b.params, key: 0.9 * np.asarray(b.params[key])})
    pops = tuple(slow if p.name == "b" else p for p in net.populations)
    compiled.float_netlist = dataclasses.replace(net, populations=pops)
    report = verify_nir(compiled, x, data)
    assert report.failures[0].startswith("lowering not exact: first divergence: node 'b'")


def test_verify_nir_json_says_the_outputs_were_not_compared_when_every_sample_tied(
    tmp_path: Path, capsys
) -> None:
    """The text says 'not compared (every sample tied)'; the JSON said an output lowering
    error of 0.0 (exact) for the same run. It is null, as the text says."""
    _tie_graph(tmp_path / "tie.nir")
    code, out, _ = _run(capsys, "verify", tmp_path / "tie.nir", "--dt", "1", "--json")
    report = json.loads(out)
    assert code == 0 and report["lowering_ties"] == {"lif": report["n"]}
    assert report["output_lowering_error"] is None
    code, out, _ = _run(capsys, "verify", tmp_path / "tie.nir", "--dt", "1")
    assert "lowering (float64 netlist outputs)     not compared (every sample tied)" in out
