"""A store-like object over a dict of numpy arrays, for tests that need no Zarr store."""

from __future__ import annotations

import numpy as np


class ArrayStore:
    """What the export and explain code read from an ActivationStore: ``name in store``,
    ``store[name]`` and ``store.read(name, rows)``, over ``self.arrays`` (set by subclasses)."""

    arrays: dict[str, np.ndarray]

    def __contains__(self, name):
        return name in self.arrays

    def __getitem__(self, name):
        return self.arrays[name]

    def read(self, name, rows):
        return self.arrays[name][np.asarray(rows)]
