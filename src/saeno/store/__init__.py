"""Activation stores: capture hooked FNO fields to Zarr v3, read them back, stream batches.

``capture(hooked, data, hooks, store)`` writes a store; ``ActivationStore.open(url)`` reads it;
``ActivationStore.loader(hook, ...)`` streams torch batches. See :mod:`saeno.store.layout` for the
format.
"""

from saeno.store.activation_store import ActivationStore
from saeno.store.capturing import capture
from saeno.store.loader import StoreLoader
from saeno.store.running_stats import RunningStats
from saeno.store.writer import NonFiniteActivationError

__all__ = ["ActivationStore", "NonFiniteActivationError", "RunningStats", "StoreLoader", "capture"]
