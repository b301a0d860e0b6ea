"""Explain concepts of four dictionaries on three zoo FNOs: share of live concepts explained by a probe
field and mean held-out score, over seeds.

For each zoo model (darcy-fno, burgers-fno, navier-stokes-fno) and the output of its middle block:
capture ``--n-train`` training samples and ``--n-test`` held-out test samples, then for each seed

- SAE-FNO (TopK ``k`` concepts per sample, ``--concepts`` concepts, 8 modes), ``--steps-fno`` steps;
- pointwise SAE (TopK ``k`` per point), ``--steps-sae`` steps;
- PCA as a dictionary: the ``concepts / 2`` leading principal directions of the (normalised) channels,
  each split into its positive and negative part, so it has the same number of concepts;
- a random-init SAE-FNO of the same shape (no training);

and explain every concept on the held-out samples with ``saeno.explain_concepts``. Each dictionary is
judged against the shuffled-sample null and, as the random-init null, a fresh SAE of its own
architecture (``--null-seeds`` other seeds, pooled; random pointwise SAEs for PCA). Reported: live concepts, share explained
(both nulls, and the shuffled-sample null alone), mean held-out Spearman, the most frequent probes.
The time of one explanation of 64 concepts on 100 samples is printed (``explain_s``).

Run: ``OMP_NUM_THREADS=1 python benchmarks/explain.py --models darcy-fno --seeds 0 1 2 --json out.json``
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import saeno
from saeno.explain import explain_concepts, random_init_like

ZOO_DATA = {"darcy-fno": "darcy", "burgers-fno": "burgers", "navier-stokes-fno": "navier_stokes"}


class PCADictionary(torch.nn.Module):
    """Pointwise PCA of the normalised channels used as a dictionary: codes are ``relu(+-P a)``."""

    view = "points"

    def __init__(self, mean: np.ndarray, scale: np.ndarray, components: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("scale", torch.as_tensor(scale, dtype=torch.float32))
        self.register_buffer("P", torch.as_tensor(components, dtype=torch.float32))  # (q, C)
        self.in_channels = int(components.shape[1])
        self.n_concepts = 2 * int(components.shape[0])

    def encode(self, a: torch.Tensor) -> torch.Tensor:
        shape = (1, -1) + (1,) * (a.ndim - 2)
        u = (a - self.mean.view(shape)) / self.scale.view(shape)
        proj = torch.einsum("qc,bc...->bq...", self.P, u)
        return torch.cat([torch.relu(proj), torch.relu(-proj)], dim=1)


def fit_pca(store, hook: str, n_components: int, rows: int = 200) -> PCADictionary:
    a = store.read(hook, np.arange(min(rows, store.n_rows))).astype(np.float64)
    mean, var = store.stats(hook)
    scale = np.sqrt(np.maximum(var, 1e-12))
    u = (a - mean.reshape(1, -1, *[1] * (a.ndim - 2))) / scale.reshape(1, -1, *[1] * (a.ndim - 2))
    pts = np.moveaxis(u, 1, -1).reshape(-1, a.shape[1])
    pts = pts[:: max(1, pts.shape[0] // 200_000)]
    _, _, vt = np.linalg.svd(pts - pts.mean(0), full_matrices=False)
    return PCADictionary(mean, scale, vt[:n_components])


def middle_hook(hooked) -> str:
    blocks = [
        n
        for n in hooked.hook_names
        if n.startswith("blocks.") and n.count(".") == 2 and n.endswith(".hook_out")
    ]
    return blocks[len(blocks) // 2]


def summarize(ex) -> dict:
    live = [c for c in ex.concepts if c.live]
    shuffle_only = [
        c
        for c in live
        if c.rho is not None
        and c.rho >= ex.protocol["floor"]
        and c.rho > (c.null_shuffle if c.null_shuffle is not None else -1)
    ]
    return {
        "n_live": ex.summary.n_live,
        "share_explained": ex.summary.share_explained,
        "share_explained_shuffle_null_only": len(shuffle_only) / len(live) if live else None,
        "mean_score": ex.summary.mean_score,
        "probe_counts": ex.summary.probe_counts,
        "seconds": ex.seconds,
    }


def run_model(name: str, args, work: Path) -> dict:
    model = saeno.zoo.load(name)
    hooked = saeno.HookedOperator(model)
    hook = middle_hook(hooked)
    dataset = ZOO_DATA[name]
    res = model.saeno_config["resolution"]
    train = saeno.datasets.load(dataset, split="train", resolution=res, n=args.n_train, progress=False)
    test = saeno.datasets.load(dataset, split="test", resolution=res, n=args.n_test, progress=False)
    t = time.perf_counter()
    s_train = saeno.capture(hooked, train, hook, work / f"{name}_train.zarr", progress=False, overwrite=True)
    s_test = saeno.capture(hooked, test, hook, work / f"{name}_test.zarr", progress=False, overwrite=True)
    print(f"{name}: hook {hook}, capture {time.perf_counter() - t:.1f} s", flush=True)
    channels = s_train.hook_info(hook)["shape"][0]
    ndim = len(s_train.hook_info(hook)["grid"])
    p = args.concepts
    out = {"hook": hook, "channels": channels, "grid": list(s_test.grid), "runs": []}

    def sae_fno():
        return saeno.SAEFNO(
            channels, p, ndim=ndim, modes=8, sparsity={"type": "topk", "k": args.k, "group": "concept"}
        )

    def sae_pt():
        return saeno.SAE(channels, p, ndim=ndim, sparsity={"type": "topk", "k": args.k, "group": "point"})

    for seed in args.seeds:
        torch.manual_seed(seed)
        t = time.perf_counter()
        fno = saeno.train_sae(
            sae_fno(), s_train, hook=hook, steps=args.steps_fno, batch_size=16, seed=seed, progress=False
        ).sae.eval()
        t_fno = time.perf_counter() - t
        torch.manual_seed(seed)
        t = time.perf_counter()
        pt = saeno.train_sae(
            sae_pt(), s_train, hook=hook, steps=args.steps_sae, batch_size=4096, seed=seed, progress=False
        ).sae.eval()
        t_pt = time.perf_counter() - t
        pca = fit_pca(s_train, hook, min(channels, p // 2))
        rand = random_init_like(fno, seed + 500)
        null_fno = [random_init_like(fno, seed + 1000 + i) for i in range(args.null_seeds)]
        null_pt = [random_init_like(pt, seed + 1000 + i) for i in range(args.null_seeds)]
        dicts = {
            "SAE-FNO": (fno, null_fno),
            "pointwise SAE": (pt, null_pt),
            "PCA dictionary": (pca, null_pt),
            "random-init SAE-FNO": (rand, null_fno),
        }
        for label, (d, null) in dicts.items():
            ex = explain_concepts(
                d, s_test, hook=hook, n_rows=args.n_test, seed=seed, null_sae=null, progress=False
            )
            row = {"model": name, "dictionary": label, "seed": seed, **summarize(ex)}
            out["runs"].append(row)
            print(
                f"  seed {seed} {label:20s} live {row['n_live']:3d} explained "
                f"{row['share_explained']:.2f} (shuffle null only {row['share_explained_shuffle_null_only']:.2f}) "
                f"mean rho {row['mean_score']:.2f}  explain_s {ex.seconds:.1f}",
                flush=True,
            )
        print(f"  seed {seed}: train SAE-FNO {t_fno:.1f} s, SAE {t_pt:.1f} s", flush=True)
    return out


def table(results: dict) -> str:
    lines = [
        (
            "| model | dictionary | live concepts | explained (both nulls) | explained (shuffle null only) "
            "| mean held-out rho | top probes | explain s |"
        ),
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, res in results.items():
        labels = list(dict.fromkeys(r["dictionary"] for r in res["runs"]))
        for label in labels:
            runs = [r for r in res["runs"] if r["dictionary"] == label]

            def ms(key, runs=runs):
                v = np.array([r[key] for r in runs if r[key] is not None], dtype=float)
                if v.size == 0:
                    return "n/a"
                return f"{v.mean():.2f} +- {v.std():.2f}" if v.size > 1 else f"{v.mean():.2f}"

            counts: dict[str, int] = {}
            for r in runs:
                for k, v in r["probe_counts"].items():
                    counts[k] = counts.get(k, 0) + v
            top = ", ".join(f"{k} ({v})" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])[:3])
            lines.append(
                f"| {name} | {label} | {ms('n_live')} | {ms('share_explained')} | "
                f"{ms('share_explained_shuffle_null_only')} | {ms('mean_score')} | {top} | "
                f"{ms('seconds')} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", default=list(ZOO_DATA))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--n-train", type=int, default=200)
    parser.add_argument("--n-test", type=int, default=100)
    parser.add_argument("--concepts", type=int, default=64)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--steps-fno", type=int, default=300)
    parser.add_argument("--steps-sae", type=int, default=300)
    parser.add_argument("--null-seeds", type=int, default=3, help="random-init SAEs in the null")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            results[name] = run_model(name, args, Path(tmp))
    print(table(results))
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "results": results}, indent=1))


if __name__ == "__main__":
    main()
