# %% [markdown]
# # 1. Attach to an FNO and capture its activation fields
#
# We take a trained Fourier Neural Operator (the zoo's `darcy-fno`, trained on first use), name its hook
# points with `HookedOperator` without touching its code, look inside one forward pass, then stream two
# block outputs of many samples into a Zarr store.
#
# Run as a script (`python tutorials/01_attach_and_capture.py`) or cell by cell in an editor that reads
# `# %%` cells. `SAENO_TUTORIAL_FAST=1` shrinks every size (what CI runs).

# %%
import os
from pathlib import Path

import torch

import saeno

FAST = os.environ.get("SAENO_TUTORIAL_FAST") == "1"
OUT = Path(os.environ.get("SAENO_TUTORIAL_OUT", "tutorial-out"))
N_CAPTURE = 16 if FAST else 300

# %% [markdown]
# ## The model and its hook points
# `saeno.zoo.load` returns a module that maps the raw coefficient field `a` to the raw pressure `u`
# (normalisation folded in). `HookedOperator` finds the FNO inside and names its hook points.

# %%
model = saeno.zoo.load("darcy-fno", fast=FAST)
hooked = saeno.HookedOperator(model)
print(hooked.hook_names)

# %% [markdown]
# ## One forward pass with a cache
# Every activation comes out as a field `(B, C, *grid)` on the input grid.

# %%
res = model.saeno_config["resolution"]
test = saeno.datasets.load("darcy", split="test", resolution=res, n=N_CAPTURE)
x = torch.stack([test[i]["x"] for i in range(4)])
out, cache = hooked.run_with_cache(x, names_filter="blocks.*.hook_out")
for name, act in cache.items():
    print(f"{name:22s} {tuple(act.shape)}")

# the cache holds exactly what the model computed: splicing a block's output back in changes nothing
same = hooked.run_with_hooks(x, fwd_hooks=[("blocks.1.hook_out", lambda act, hook: cache[hook.name])])
assert torch.equal(same, out)

# %% [markdown]
# ## Stream fields to a Zarr store
# The writer runs in a background thread; the store records the model's fingerprint, the dataset card,
# per-channel running statistics and how many rows are fully written (so `resume=True` can finish an
# interrupted capture).

# %%
store = saeno.capture(
    hooked,
    test,
    ["blocks.1.hook_out", "blocks.2.hook_out"] if not FAST else ["blocks.0.hook_out", "blocks.1.hook_out"],
    OUT / "acts.zarr",
    overwrite=True,
)
print(store.summary())

# %%
# the store equals the forward pass
stored = torch.from_numpy(store.read(store.hooks[-1], slice(0, 4)))
assert torch.allclose(stored, cache[store.hooks[-1]], atol=1e-5)  # batches of another size differ by ~1e-7
