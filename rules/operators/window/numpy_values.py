"""The window views of ``tidegate.rules.operators.window.aggregate``, computed with numpy.

For windows of ``NUMPY_FROM`` values or more, where numpy's per-call overhead
pays off (the measurements are in that module's docstring). Imported only when
a rule needs it: see ``large_window_values``.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property

import numpy as np
from numpy.typing import NDArray

from tidegate.rules.operators.window.aggregate import WindowValues

Floats = NDArray[np.float64]


class LargeWindowValues(WindowValues):
    """The same views as ``WindowValues``, computed with numpy."""

    # Converting a list costs ~16 ns a value: done once, and only for what is used.
    @cached_property
    def _array(self) -> Floats:
        return np.asarray(self._values, dtype=np.float64)

    @cached_property
    def _stamp_array(self) -> Floats:
        return np.asarray(self._stamps, dtype=np.float64)

    def total(self) -> float:
        return float(self._array.sum())

    @cached_property
    def sorted_values(self) -> Sequence[float] | Floats:
        return np.sort(self._array)

    def stdev(self) -> float:
        return float(self._array.std(ddof=1))

    @cached_property
    def in_time_order(self) -> tuple[Sequence[float] | Floats, Sequence[float] | Floats]:
        stamps = self._stamp_array
        if bool(np.all(stamps[1:] >= stamps[:-1])):
            return self._array, stamps
        order = np.argsort(stamps, kind="stable")
        return self._array[order], stamps[order]

    def integral(self) -> float:
        values, stamps = self.in_time_order
        values_a = np.asarray(values)
        widths = np.diff(np.asarray(stamps))
        return float(0.5 * np.sum((values_a[1:] + values_a[:-1]) * widths))
