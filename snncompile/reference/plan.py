"""The order the reference simulator runs a netlist in: components, one after another.

A population at tick t reads only messages sent at earlier ticks, so a population that
is on no cycle can run its whole sequence at once, as soon as every population it reads
from has run theirs: its input is one matrix product per synapse over the whole run, and
only its own state recursion is a loop over ticks. Populations on a cycle (a recurrent
loop, which the netlist closes with lagged synapses) run together tick by tick. The
plan is the strongly connected components of the synapse graph in topological order.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

from snncompile.ir.netlist import Netlist, Population, Synapse


@dataclass(frozen=True, eq=False)
class Component:
    """Populations that run together, in netlist order.

    inside: synapses between them (empty unless the component is a cycle or a self-loop);
    incoming: synapses into them from populations of earlier components.
    """

    populations: tuple[Population, ...]
    inside: tuple[Synapse, ...]
    incoming: tuple[Synapse, ...]

    @property
    def cyclic(self) -> bool:
        return bool(self.inside)


@dataclass(frozen=True, eq=False)
class Plan:
    """The components in run order."""

    components: tuple[Component, ...]


_PLANS: weakref.WeakKeyDictionary[Netlist, Plan] = weakref.WeakKeyDictionary()


def plan_for(net: Netlist) -> Plan:
    if net not in _PLANS:
        _PLANS[net] = _make_plan(net)
    return _PLANS[net]


def _make_plan(net: Netlist) -> Plan:
    order = {p.name: i for i, p in enumerate(net.populations)}
    components = []
    for group in _strong_components(net):
        members = set(group)
        into = [s for s in net.synapses if s.dst in members]
        components.append(
            Component(
                populations=tuple(net.population(n) for n in sorted(group, key=order.get)),
                inside=tuple(s for s in into if s.src in members),
                incoming=tuple(s for s in into if s.src not in members),
            )
        )
    return Plan(tuple(components))


def _strong_components(net: Netlist) -> list[list[str]]:
    """Tarjan's algorithm without recursion; components come out sources first."""
    successors: dict[str, list[str]] = {p.name: [] for p in net.populations}
    for syn in net.synapses:
        successors[syn.src].append(syn.dst)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in successors:
        if root in index:
            continue
        work = [(root, iter(successors[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    group = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.append(member)
                        if member == node:
                            break
                    found.append(group)
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(successors[child])))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return found[::-1]  # Tarjan finishes sinks first
