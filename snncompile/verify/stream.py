"""Compare two runs' traces while they run, holding only what one side is ahead.

Rung 3 (verify.targets.check_backend): both runs hand their traces over in chunks of
model steps, in order, through a TraceSink each, instead of keeping (B, L, width)
arrays, so neither the sequence length nor the batch is bounded by recording. A chunk
is compared as soon as the other side has the same steps of the same trace, then
dropped; the reference runs tile by tile on demand (`need`), so what is held is about
one reference tile of traces.

Every value is compared, as in the whole-trace comparison: a step a side never sends
(a population later than the readout is cut off at the run's last tick) is zero on that
side, as in its recorded traces.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from snncompile.errors import SnnCompileError
from snncompile.verify.traces import Divergence, earliest_divergence, first_divergence


class TraceSink:
    """Where a run puts its traces instead of recording them: declare(key, width) once
    per trace before the run, then put(key, first model step, values (B, n, width)) with
    each trace's model steps in order from 0."""

    def declare(self, key: str, width: int) -> None:
        raise NotImplementedError

    def put(self, key: str, first_step: int, values: np.ndarray) -> None:
        raise NotImplementedError


class StreamComparison:
    """The reference's and a target's traces of `batch` samples of `length` model steps,
    compared chunk by chunk. `need()` advances the reference (one tile) and returns
    False once it has finished; the target's chunks wait for it."""

    def __init__(
        self, batch: int, length: int, order: Sequence[str], need: Callable[[], bool]
    ) -> None:
        self.batch, self.length, self.order, self.need = batch, length, list(order), need
        self.widths: tuple[dict[str, int], dict[str, int]] = ({}, {})
        self.pending: tuple[dict[str, deque], dict[str, deque]] = ({}, {})
        self.sent: tuple[dict[str, int], dict[str, int]] = ({}, {})  # steps put, per key
        self.done: dict[str, int] = {}  # steps compared, per key
        self.compared = self.differing = 0
        # Only the earliest divergence so far and counts per trace: a target wrong from
        # its first steps on must not cost memory per step.
        self.first: Divergence | None = None
        self.counts: dict[str, int] = {}
        self.mismatch: str | None = None  # trace names or widths differ: not comparable
        self.reference, self.target = _Side(self, 0), _Side(self, 1)

    def _declare(self, side: int, key: str, width: int) -> None:
        self.widths[side][key] = width
        self.pending[side].setdefault(key, deque())
        self.sent[side].setdefault(key, 0)
        self.done.setdefault(key, 0)

    def _put(self, side: int, key: str, first_step: int, values: np.ndarray) -> None:
        if key not in self.widths[side]:
            raise SnnCompileError(f"trace {key!r} was not declared")
        if first_step != self.sent[side][key]:  # a bug in a runner, not a divergence
            raise SnnCompileError(
                f"trace {key!r}: model step {first_step} sent after {self.sent[side][key]}"
            )
        if side == 1 and self.mismatch is None and not any(self.sent[1].values()):
            self.mismatch = self._names_or_widths()  # both declared all by the first put
        self.sent[side][key] += values.shape[1]
        if self.mismatch is not None:
            return  # nothing is comparable: hold nothing, let the runs end
        self.pending[side][key].append(values)
        if side == 1:  # the target waits for the reference, which runs on demand
            while self.sent[0][key] < self.sent[1][key] and self.need():
                pass
        self._match(key)

    def _names_or_widths(self) -> str | None:
        if self.widths[0] == self.widths[1]:
            return None
        only = sorted(set(self.widths[0]) ^ set(self.widths[1]))
        if only:
            return f"traces present in only one run: {only}"
        return f"trace widths differ: {self.widths[0]} and {self.widths[1]}"

    def _match(self, key: str) -> None:
        ref, got = self.pending[0].get(key), self.pending[1].get(key)
        while ref and got:
            n = min(ref[0].shape[1], got[0].shape[1])
            self._compare(key, self.done[key], ref[0][:, :n], got[0][:, :n])
            self.done[key] += n
            for queue in (ref, got):
                if queue[0].shape[1] == n:
                    queue.popleft()
                else:
                    queue[0] = queue[0][:, n:]

    def _compare(self, key: str, first_step: int, want: np.ndarray, got: np.ndarray) -> None:
        if want.shape != got.shape:  # widths were checked: a runner's bug
            raise SnnCompileError(f"trace {key!r}: chunks of shapes {want.shape} and {got.shape}")
        self.compared += want.size
        differing = int(np.count_nonzero(want != got))
        if not differing:
            return
        self.differing += differing
        self.counts[key] = self.counts.get(key, 0) + differing
        if self.first is not None and first_step > self.first.step:
            return  # (it cannot be earlier)
        found = first_divergence({key: want}, {key: got}, self.order)
        if found is not None:
            found = replace(found, step=found.step + first_step)
            candidates = [(found, 0)] if self.first is None else [(self.first, 0), (found, 0)]
            self.first = earliest_divergence(candidates, self.order)

    def finish(self) -> str | None:
        """Run the reference to its end, compare what remains (steps a side never sent
        are zero) and return a description of a mismatch in the traces' names or widths,
        else None."""
        while self.need():
            pass
        self.mismatch = self.mismatch or self._names_or_widths()
        if self.mismatch is not None:
            return self.mismatch
        for key, width in self.widths[0].items():
            for side in (0, 1):
                missing = self.length - self.sent[side][key]
                if missing > 0:
                    zeros = np.zeros((self.batch, missing, width), np.int64)
                    self.sent[side][key] += missing
                    self.pending[side][key].append(zeros)
            self._match(key)
        return None

    def divergence(self) -> Divergence | None:
        """The first differing value, with the differing values counted per trace (in
        the order the reference declared them)."""
        if self.first is None:
            return None
        counts = {key: self.counts[key] for key in self.widths[0] if key in self.counts}
        return replace(self.first, differing=counts)


class _Side(TraceSink):
    def __init__(self, comparison: StreamComparison, side: int) -> None:
        self.comparison, self.side = comparison, side

    def declare(self, key: str, width: int) -> None:
        self.comparison._declare(self.side, key, width)

    def put(self, key: str, first_step: int, values: np.ndarray) -> None:
        self.comparison._put(self.side, key, first_step, values)
