# %% [markdown]
# # 4. Supervised concepts: tie concepts to physical labels, audit them, intervene
#
# Independent of tutorials 1-3. On the `burgers_labelled` benchmark every sample carries three labels
# (viscosity, drift, initial-condition family) and a random nuisance inside its family. A supervised SAE
# has one learned block per label value, switched on by the sample's labels, plus a per-sample nuisance;
# its concepts are therefore named (`viscosity=high`) by construction. We fit one on an FNO's
# activations, draw its concepts in the audit report and edit a label inside the FNO.

# %%
import json
import os
from pathlib import Path

import numpy as np
import torch

import saeno
from saeno.supervised import benchmark_data, model_fno, training
from saeno.supervised import intervene as iv

FAST = os.environ.get("SAENO_TUTORIAL_FAST") == "1"
OUT = Path(os.environ.get("SAENO_TUTORIAL_OUT", "tutorial-out"))
HOOK = "blocks.1.hook_out"
N = 90 if FAST else 810

# %% [markdown]
# ## Data, model and a labelled activation store
# The benchmark's FNO is trained on every label combination and cached (`burgers-labelled-fno`; a few
# minutes the first time at full size). Capturing a labelled dataset stores the label codes with the
# activations, so everything downstream reads them from the store.

# %%
train = benchmark_data.load("train", n=N, resolution=64, progress=True)
fno = model_fno.load_or_train(n_train=N, epochs=2 if FAST else 40, progress=True)
hooked = saeno.HookedOperator(fno)
store = saeno.capture(hooked, train.dataset(), HOOK, OUT / "labelled.zarr", overwrite=True)
codes, factors = training.store_labels(store)
print(factors)

# %% [markdown]
# ## Fit the supervised SAE, holding one label combination out
# Same as `saeno train --arch supervised --store labelled.zarr --hook blocks.1.hook_out
# --holdout viscosity=low,drift=right`.

# %%
sae_dir = training.train_from_store(
    store,
    HOOK,
    OUT / "supervised_sae",
    holdout=["viscosity=low,drift=right"],
    steps=40 if FAST else 1500,
    modes=12,
    progress=True,
)
sae = saeno.load_sae(sae_dir)
print(sae.concept_names)

# %% [markdown]
# ## Draw its concepts in the audit report
# Each concept's "code map" is the size of its block's contribution to the reconstruction, so it is
# non-zero exactly on the samples that carry its label; its ablation switches the label off inside
# the FNO. Same as `saeno export --sae supervised_sae --store labelled.zarr --model burgers-labelled-fno
# --out supervised_report`.

# %%
report = saeno.export_concepts(
    sae_dir, store, OUT / "supervised_report", model=hooked, max_concepts=3 if FAST else 9, progress=True
)
doc = json.loads((OUT / "supervised_report" / "concepts.json").read_text())
for c in doc["concepts"]:
    effect = c["effect"]["rel_change"] if c["effect"] else None
    print(
        f"{c['label']:>22}  on {c['stats']['sample_density']:.0%} of samples,  "
        f"output change when switched off {effect}"
    )
print("open", report)

# %% [markdown]
# ## Intervene: set viscosity to high and splice the edit into the FNO
# The solver gives the counterfactual (the same nuisance under the new label), so the edit can be
# scored against physics, not only against the FNO.

# %%
rows = np.flatnonzero(codes["viscosity"] == 0)[:16]  # samples with low viscosity
old = {f: c[rows] for f, c in codes.items()}
new = iv.set_label(old, factors, {"viscosity": "high"})
x = torch.as_tensor(train.x[rows])
edited = iv.run_edited(hooked, x, HOOK, iv.sae_edit(sae, old, new))
x_cf, y_cf = benchmark_data.counterfactual(rows, new, split="train", resolution=64)
y_cf = torch.as_tensor(y_cf)
with torch.no_grad():
    clean = hooked(x)


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((a - b).flatten(1).norm(dim=1) / b.flatten(1).norm(dim=1)).mean())


print(
    f"relative L2 to the solver's counterfactual: edited {rel(edited, y_cf):.3f}, "
    f"unedited {rel(clean, y_cf):.3f}"
)
