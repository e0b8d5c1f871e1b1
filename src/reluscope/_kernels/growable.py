"""An append-only float/int array with amortised O(1) growth (private helper)."""

from __future__ import annotations

import numpy as np


class Growable:
    """Rows appended in blocks; ``view()`` returns the filled part (no copy).

    Parameters
    ----------
    width : int or None
        Row width (None for a 1D array).
    dtype : numpy dtype
    """

    def __init__(self, width: int | None, dtype: type | np.dtype, capacity: int = 1024) -> None:
        shape = (capacity,) if width is None else (capacity, width)
        self._data = np.zeros(shape, dtype=dtype)
        self.size = 0

    def extend(self, rows: np.ndarray) -> np.ndarray:
        """Append `rows`; return their indices."""
        n = len(rows)
        if self.size + n > len(self._data):
            capacity = max(2 * len(self._data), self.size + n)
            grown = np.zeros((capacity, *self._data.shape[1:]), dtype=self._data.dtype)
            grown[: self.size] = self._data[: self.size]
            self._data = grown
        self._data[self.size : self.size + n] = rows
        self.size += n
        return np.arange(self.size - n, self.size, dtype=np.int64)

    def view(self) -> np.ndarray:
        """The filled rows (a view; valid until the next extend)."""
        return self._data[: self.size]
