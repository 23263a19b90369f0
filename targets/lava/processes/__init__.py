"""Lava Processes for the compartment kinds Lava lacks (see compartments.py).

This folder holds one module on purpose: to find a Process's models, Lava re-executes
every module in the Process's folder for every Process it compiles.
"""
