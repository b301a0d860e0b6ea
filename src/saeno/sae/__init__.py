"""Sparse autoencoder models: pointwise ``SAE``, ``FlatSAE``, ``SAEFNO``, ``ConvSAE``, lifting and sparsity.

All subclass :class:`saeno.sae.base.SparseAutoencoder` and take raw tensors; they know nothing of stores,
hooks or files.
"""

from saeno.sae.base import SAEOutput, SparseAutoencoder
from saeno.sae.conv import ConvSAE
from saeno.sae.flat import FlatSAE
from saeno.sae.pointwise import SAE
from saeno.sae.sae_fno import SAEFNO
from saeno.sae.sparsity import BatchTopK, JumpReLU, ReLUL1, Sparsity, TopK, make_sparsity
from saeno.sae.stability import (
    AtomMatch,
    StabilityScore,
    compare_dictionaries,
    match_atoms,
)

__all__ = [
    "SparseAutoencoder",
    "SAEOutput",
    "SAE",
    "FlatSAE",
    "SAEFNO",
    "ConvSAE",
    "Sparsity",
    "TopK",
    "BatchTopK",
    "ReLUL1",
    "JumpReLU",
    "make_sparsity",
    "AtomMatch",
    "StabilityScore",
    "match_atoms",
    "compare_dictionaries",
]
