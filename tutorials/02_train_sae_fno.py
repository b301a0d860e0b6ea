# %% [markdown]
# # 2. Train an SAE-FNO and a pointwise SAE on captured fields
#
# Needs the store written by tutorial 1. An SAE-FNO's concepts are functions: codes `z_k(x)` on the grid,
# decoder atoms `kappa_k` stored as Fourier modes, so the same model runs at any resolution.

# %%
import os
from pathlib import Path

import saeno

FAST = os.environ.get("SAENO_TUTORIAL_FAST") == "1"
OUT = Path(os.environ.get("SAENO_TUTORIAL_OUT", "tutorial-out"))
store = saeno.ActivationStore.open(OUT / "acts.zarr")
hook = store.hooks[-1]
channels = store.hook_info(hook)["shape"][0]

# %% [markdown]
# ## The SAE-FNO
# TopK over concepts per sample (concept sparsity, scored by each code function's L2 norm). The trainer
# streams fields from the store, normalises per channel (the statistics go into the checkpoint), keeps
# decoder concepts at unit norm and revives dead concepts with AuxK.

# %%
sae_fno = saeno.SAEFNO(
    channels,
    16 if FAST else 64,
    ndim=2,
    modes=4 if FAST else 8,
    sparsity={"type": "topk", "k": 4 if FAST else 8, "group": "concept"},
)
result = saeno.train_sae(sae_fno, store, hook=hook, steps=20 if FAST else 1000, batch_size=8)
saeno.save_sae(result.sae, OUT / "sae_fno")
print(result.final)

# %% [markdown]
# ## The pointwise SAE, for comparison
# One dictionary over channel space applied at every grid point (like a per-token SAE).

# %%
sae = saeno.SAE(channels, 16 if FAST else 64, ndim=2, sparsity={"type": "topk", "k": 4 if FAST else 8})
result_pw = saeno.train_sae(sae, store, hook=hook, steps=20 if FAST else 1000, batch_size=4096)
saeno.save_sae(result_pw.sae, OUT / "sae")

# %% [markdown]
# ## Evaluate: reconstruction, both sparsity levels, and operator loss recovered
# Splicing puts the reconstruction back into the FNO at the hook; compare `L0_per_point` across models.

# %%
from saeno.evaluation import evaluate, format_table, summary_rows

model = saeno.zoo.load("darcy-fno", fast=FAST)
hooked = saeno.HookedOperator(model)
rows = []
for trained in (result.sae, result_pw.sae):
    rows += summary_rows(evaluate(trained, store, hook, hooked=hooked))
print(format_table(rows))

# %%
# concepts are functions: render the SAE-FNO's atoms on two grids
atoms_32, atoms_64 = result.sae.concepts(32), result.sae.concepts(64)
print(tuple(atoms_32.shape), tuple(atoms_64.shape))
