"""Compilation targets (reference, lava, loihi2, onnx, nir), installed as snncompile.targets.

Targets consume a Netlist only; they never import torch or the frontend.
"""
