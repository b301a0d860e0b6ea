# %% [markdown]
# # 3. Audit the concepts: export maps, spectra, top examples and ablation effects
#
# Needs tutorials 1 and 2. The export writes `concepts.json`, a Zarr group with the arrays, PNG figures
# and a self-contained `report.html` (open it in a browser; it works offline).

# %%
import json
import os
from pathlib import Path

import saeno

FAST = os.environ.get("SAENO_TUTORIAL_FAST") == "1"
OUT = Path(os.environ.get("SAENO_TUTORIAL_OUT", "tutorial-out"))

sae = saeno.load_sae(OUT / "sae_fno")
store = saeno.ActivationStore.open(OUT / "acts.zarr")
model = saeno.zoo.load("darcy-fno", fast=FAST)

# %%
report = saeno.export_concepts(sae, store, OUT / "report", model=model, max_concepts=4 if FAST else 16)
print("open", report)

# %% [markdown]
# ## Read the concepts programmatically
# Each concept has its activation density, its top samples and the change of the FNO's prediction
# error when it is ablated.

# %%
doc = json.loads((OUT / "report" / "concepts.json").read_text())
for concept in doc["concepts"][:5]:
    print({k: concept[k] for k in list(concept)[:6]})
