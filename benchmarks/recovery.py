"""Reproduce the SAE-NO paper's four claims on the synthetic sparse generative model (issue 7).

Claims (docs/method.md section 4): (1) lifting recovers faster; (2) an SAE-FNO with truncated modes recovers
smooth atoms better than non-smooth ones, and better than SAE / FlatSAE on smooth atoms; (3) an SAE-FNO
trained on one grid keeps its reconstruction and its atoms at 0.5x, 1x, 2x and 4x, where a FlatSAE cannot
run and a fixed-kernel convolutional SAE changes meaning; (4) lifting lowers the mean off-diagonal
``|D^T D|`` of the learned dictionary.

Settings (all 1D, periodic):

- ``euclid-noise``: ``x = D c`` with random non-smooth atoms on a 64-point grid (the "easy setting");
- ``euclid-smooth``: ``x = D c`` with band-limited Fourier atoms;
- ``conv-smooth`` / ``conv-noise``: ``x = sum_k kappa_k * z_k`` with each active concept at several
  random locations (circular convolution), Fourier or non-smooth atoms.

Models: the library's ``SAE`` (pointwise; for ``x = D c`` the grid values are its channels, one row per
sample, so that ``L-SAE`` lifts R^n -> R^L as in the paper), ``FlatSAE``, ``SAEFNO`` and their lifted
versions, a fixed-kernel convolutional SAE built here (:class:`ConvSAE`), and scikit-learn's
``MiniBatchDictionaryLearning``. All neural models train with the same small loop (Adam, normalised MSE
plus the sparsity penalty, decoder renormalised after every step, no AuxK) so that recovery can be
recorded against training steps. Recovery: Hungarian matching on ``|cos|`` of unit-normalised atoms,
maximised over circular shifts for every model in the convolutional settings (and for the SAE-FNO, which
is convolutional, everywhere).

Run ``python benchmarks/recovery.py`` (full) or ``--quick`` (CI); results go to ``benchmarks/results``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from saeno import synthetic as S
from saeno.sae import SAE, SAEFNO, FlatSAE
from saeno.sae.sparsity import make_sparsity

RESULTS = Path(__file__).resolve().parent / "results"
RES_FACTORS = (0.5, 1, 2, 4)

# -- configurations ---------------------------------------------------------------------------------------

FULL: dict[str, Any] = {
    "seeds": [0, 1, 2],
    "n": 64,
    "euclid": {
        "p": 16,
        "s": 2,
        "n_samples": 4096,
        "steps": 1500,
        "eval_every": 100,
        "batch": 256,
        "lr": 1e-3,
        "bandwidth": 8,
        "lift_sae": 256,
        "lift_flat": 4,
        "modes": 12,
        "lift_fno": 4,
        "fno_batch": 32,
        "fno_steps": 1000,
        "fno_lr": 3e-3,
    },
    "conv": {
        "p": 8,
        "s": 2,
        "n_locations": 2,
        "n_samples": 2048,
        "steps": 1000,
        "eval_every": 100,
        "batch": 32,
        "lr": 3e-3,
        "bandwidth": 12,
        "modes": 13,
        "lift_fno": 4,
        "lift_flat": 4,
        "kernel": 33,
    },
    "n_test": 256,
    "dl_iter": 10,
    "models": None,  # all
}
QUICK: dict[str, Any] = {
    "seeds": [0],
    "n": 64,
    # the easy setting of the CI check learns a 2x overcomplete dictionary (32 atoms for 16 planted ones):
    # with exactly p atoms and no dead-concept handling, 2 of 5 seeds left one planted atom unmatched
    "euclid": {**FULL["euclid"], "n_samples": 2048, "steps": 600, "eval_every": 100, "p_learned": 32},
    "conv": {**FULL["conv"], "n_samples": 512, "steps": 150, "eval_every": 50},
    "n_test": 64,
    "dl_iter": 3,
    # the two CI checks: recovery in the easy setting, SAE-FNO across resolutions
    "models": {"euclid-noise": ["SAE"], "conv-smooth": ["SAE-FNO"]},
}


# -- a fixed-kernel convolutional SAE (baseline for claim 3) --------------------------------------------


class _Out:
    """What the training loop needs from a forward pass (as ``saeno.sae.base.SAEOutput``)."""

    def __init__(self, recon: Tensor, target: Tensor, penalty: Tensor | None) -> None:
        self.recon, self.target, self.penalty = recon, target, penalty


class ConvSAE(nn.Module):
    """Convolutional SAE with fixed-size kernels (``kernel`` grid points, circular padding), 1D.

    ``z = s(conv_e(a) + b_e)``, ``a_hat = conv_d(z) + b_d``. Its kernels are counted in grid points, so
    on another grid they cover another physical width: the model runs but its atoms change meaning.
    """

    def __init__(self, p: int, kernel: int, sparsity: dict[str, Any]) -> None:
        super().__init__()
        if kernel % 2 == 0:
            raise ValueError("kernel must be odd")
        self.p, self.kernel = p, kernel
        self.enc = nn.Conv1d(1, p, kernel, padding=kernel // 2, padding_mode="circular")
        self.dec = nn.Conv1d(p, 1, kernel, padding=kernel // 2, padding_mode="circular", bias=True)
        self.sparsity = make_sparsity(sparsity, p, "concept")
        self.register_buffer("mean", torch.zeros(()))
        self.register_buffer("scale", torch.ones(()))
        self.normalize_decoder_()
        with torch.no_grad():  # encoder = adjoint of the decoder (flipped kernels)
            self.enc.weight.copy_(self.dec.weight.flip(-1).transpose(0, 1))

    def set_normalization(self, mean: Any, scale: Any) -> None:
        """Scalar mean and scale (one channel)."""
        self.mean.fill_(float(np.mean(np.asarray(mean))))
        self.scale.fill_(float(np.mean(np.asarray(scale))))

    def forward_train(self, a: Tensor) -> _Out:
        x = (a - self.mean) / self.scale
        z, pen = self.sparsity(self.enc(x))
        return _Out(self.dec(z), x, pen)

    def forward(self, a: Tensor) -> Tensor:
        return self.forward_train(a).recon * self.scale + self.mean

    @torch.no_grad()
    def normalize_decoder_(self) -> None:
        w = self.dec.weight  # (1, p, kernel)
        w.div_(w.norm(dim=(0, 2), keepdim=True).clamp_min(1e-12))

    @torch.no_grad()
    def concepts(self, resolution: int) -> Tensor:
        """Response to a unit code at the origin on a grid of ``resolution`` points: ``(p, 1, n)``."""
        w = self.dec.weight[0]  # (p, kernel); y[i] = sum_t w[t] z[i + t - c]
        c = self.kernel // 2
        out = torch.zeros(self.p, 1, resolution)
        for t in range(self.kernel):
            out[:, 0, (c - t) % resolution] += w[:, t]
        return out * self.scale


# -- data ---------------------------------------------------------------------------------------------


def make_setting(name: str, cfg: dict[str, Any], seed: int) -> tuple[S.SyntheticData, S.SyntheticData]:
    """Train and test data (same atoms, independent codes) for one setting and seed."""
    n = cfg["n"]
    euclid = name.startswith("euclid")
    sub = cfg["euclid"] if euclid else cfg["conv"]
    family = "noise" if name.endswith("noise") else "fourier"
    # non-smooth atoms live on the training grid; locations of smooth atoms on the coarsest test grid, so
    # that the spikes of the codes are grid points at every tested resolution
    base = n if family == "noise" else int(n * min(RES_FACTORS))
    atoms = S.make_atoms(family, sub["p"], bandwidth=sub["bandwidth"], base=base, seed=1000 * seed + 7)
    kw = dict(s=sub["s"], n_locations=1 if euclid else sub["n_locations"], euclidean=euclid, base=base)
    train = S.SyntheticData(atoms, S.sample_codes(sub["n_samples"], sub["p"], seed=1000 * seed + 1, **kw))
    test = S.SyntheticData(atoms, S.sample_codes(cfg["n_test"], sub["p"], seed=1000 * seed + 2, **kw))
    return train, test


# -- models ---------------------------------------------------------------------------------------------


def build(model: str, setting: str, cfg: dict[str, Any]) -> tuple[nn.Module, dict[str, Any]]:
    """A fresh model and its training options."""
    n = cfg["n"]
    euclid = setting.startswith("euclid")
    sub = cfg["euclid"] if euclid else cfg["conv"]
    p, s = sub.get("p_learned") or sub["p"], sub["s"]
    locs = 1 if euclid else sub["n_locations"]
    opts = {"steps": sub["steps"], "batch": sub["batch"], "lr": sub["lr"], "eval_every": sub["eval_every"]}
    rows = {"type": "topk", "k": s}
    # TopK over concepts per sample, then keep the `locs` largest grid points of each active concept
    fields = {"type": "topk", "k": s, "group": "concept", "domain_frac": locs / n}
    if model in ("SAE", "L-SAE"):
        lift = sub["lift_sae"] if model == "L-SAE" else None
        return SAE(n, p, sparsity=rows, lifting=lift), opts
    if model in ("FlatSAE", "L-FlatSAE"):
        lift = sub["lift_flat"] if model == "L-FlatSAE" else None
        return FlatSAE(1, p, grid=(n,), sparsity=rows, lifting=lift), opts
    if model in ("SAE-FNO", "L-SAE-FNO"):
        lift = sub["lift_fno"] if model == "L-SAE-FNO" else None
        if euclid:
            opts.update(steps=sub["fno_steps"], batch=sub["fno_batch"], lr=sub["fno_lr"])
        return SAEFNO(1, p, ndim=1, modes=sub["modes"], sparsity=fields, lifting=lift), opts
    if model == "ConvSAE":
        return ConvSAE(p, sub["kernel"], fields), opts
    raise ValueError(f"unknown model {model}")


def _as_input(model: nn.Module, x: Tensor) -> Tensor:
    """Fields (N, 1, n) as the model takes them (rows (N, n) for the pointwise SAE)."""
    return x.reshape(x.shape[0], -1) if isinstance(model, SAE) else x


def _atoms(model: nn.Module, n: int) -> Tensor:
    """Learned atoms as (p, 1, n).

    For the SAE-FNO this is the decoder's response to a unit code at one grid point (the origin), not
    ``SAEFNO.concepts(n)``: that method adds the pointwise column ``W_d`` as a one-point value to the
    spectral kernel rendered as the response to a unit-integral point mass, two scales that differ by the
    factor n, so its shape is not the atom the decoder uses (reported to the lead).
    """
    if isinstance(model, SAE):
        return model.concepts(None).reshape(model.n_concepts, 1, n)
    if isinstance(model, SAEFNO):
        p = model.n_concepts
        z = torch.zeros(p, p, n)
        z[torch.arange(p), torch.arange(p), 0] = 1.0
        with torch.no_grad():
            return model.decode(z) - model.decode(torch.zeros_like(z))
    return model.concepts(n)


def rel_error(model: nn.Module, x: Tensor) -> float:
    """``||x - x_hat|| / ||x||`` over a test set (raw units)."""
    with torch.no_grad():
        xin = _as_input(model, x)
        return float((model(xin) - xin).norm() / xin.norm())


def train_and_track(
    model: nn.Module, opts: dict[str, Any], x: Tensor, true: Tensor, shift: bool, seed: int
) -> dict[str, Any]:
    """Train with Adam and record recovery every ``eval_every`` steps."""
    torch.manual_seed(seed)
    xin = _as_input(model, x)
    mean = xin.mean(dim=[d for d in range(xin.dim()) if d != 1])
    scale = torch.full_like(mean, float(xin.std()))  # one global scale keeps the atoms' geometry
    model.set_normalization(mean, scale)
    model.normalize_decoder_()
    opt = torch.optim.Adam(model.parameters(), lr=opts["lr"])
    gen = torch.Generator().manual_seed(seed)
    n = x.shape[-1]
    curve: dict[str, list[float]] = {"step": [], "mean_cos": [], "min_cos": [], "mean_sine": []}
    t0 = time.perf_counter()
    model.train()
    for step in range(opts["steps"] + 1):
        if step % opts["eval_every"] == 0 or step == opts["steps"]:
            rec = S.match_atoms(_atoms(model, n), true, shift_invariant=shift)
            curve["step"].append(step)
            curve["mean_cos"].append(rec.mean_cos)
            curve["min_cos"].append(rec.min_cos)
            curve["mean_sine"].append(rec.mean_sine)
        if step == opts["steps"]:
            break
        batch = xin[torch.randint(0, xin.shape[0], (opts["batch"],), generator=gen)]
        out = model.forward_train(batch)
        loss = (out.recon - out.target).pow(2).sum(1).mean()
        if out.penalty is not None:
            loss = loss + out.penalty
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        model.normalize_decoder_()
    model.eval()
    return {"curve": curve, "train_s": time.perf_counter() - t0}


def dictionary_learning(
    x: Tensor, true: Tensor, p: int, shift: bool, n_iter: int, seed: int
) -> dict[str, Any]:
    """scikit-learn's MiniBatchDictionaryLearning on the flattened samples (atoms scaled to unit norm)."""
    from sklearn.decomposition import MiniBatchDictionaryLearning

    xf = x.reshape(x.shape[0], -1).double().numpy()
    xf = (xf - xf.mean(0)) / (xf.std() * math.sqrt(xf.shape[1]))
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dl = MiniBatchDictionaryLearning(
            n_components=p,
            alpha=0.2,
            batch_size=256,
            max_iter=n_iter,
            random_state=seed,
            max_no_improvement=None,
            tol=0.0,
            fit_algorithm="cd",
            positive_code=True,
            transform_algorithm="lasso_cd",
            transform_alpha=0.2,
        ).fit(xf)
    atoms = torch.as_tensor(dl.components_).reshape(p, 1, -1)
    rec = S.match_atoms(atoms, true, shift_invariant=shift)
    return {"final": rec.as_dict(), "coherence": S.coherence(atoms), "train_s": time.perf_counter() - t0}


def resolution_sweep(model: nn.Module, test: S.SyntheticData, n: int) -> dict[str, Any]:
    """Relative error and recovery at 0.5x, 1x, 2x, 4x the training grid (``"n/a"`` + error if it cannot run)."""
    out: dict[str, Any] = {}
    for f in RES_FACTORS:
        m = int(n * f)
        try:
            x = test.fields(m)
            err = rel_error(model, x)
            rec = S.match_atoms(_atoms(model, m), test.dictionary(m), shift_invariant=True)
            out[str(m)] = {"rel_error": err, **rec.as_dict()}
        except Exception as exc:  # the FlatSAE raises ShapeError off its grid: that is the measurement
            out[str(m)] = {"rel_error": "n/a", "error": f"{type(exc).__name__}: {exc}"}
    return out


SETTINGS: dict[str, list[str]] = {
    "euclid-noise": ["SAE", "L-SAE", "FlatSAE", "L-FlatSAE", "SAE-FNO", "L-SAE-FNO", "DictLearning"],
    "euclid-smooth": ["SAE", "FlatSAE", "SAE-FNO", "DictLearning"],
    "conv-smooth": ["SAE-FNO", "L-SAE-FNO", "FlatSAE", "ConvSAE", "DictLearning"],
    "conv-noise": ["SAE-FNO", "L-SAE-FNO", "FlatSAE", "ConvSAE", "DictLearning"],
}


def run_one(job: tuple[str, str, int, dict[str, Any]]) -> dict[str, Any]:
    """One (setting, model, seed) run; returns its record."""
    setting, model_name, seed, cfg = job
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _run_one(setting, model_name, seed, cfg)
    finally:
        torch.set_num_threads(threads)


def _run_one(setting: str, model_name: str, seed: int, cfg: dict[str, Any]) -> dict[str, Any]:
    """Body of :func:`run_one` (data, training, metrics)."""
    n = cfg["n"]
    train, test = make_setting(setting, cfg, seed)
    x, true = train.fields(n), train.dictionary(n)
    shift = setting.startswith("conv") or model_name in ("SAE-FNO", "L-SAE-FNO")
    rec: dict[str, Any] = {
        "setting": setting,
        "model": model_name,
        "seed": seed,
        "true_coherence": S.coherence(true),
    }
    if model_name == "DictLearning":
        p = (cfg["euclid"] if setting.startswith("euclid") else cfg["conv"])["p"]
        rec.update(dictionary_learning(x, true, p, shift, cfg["dl_iter"], seed))
        return rec
    torch.manual_seed(seed)
    model, opts = build(model_name, setting, cfg)
    rec.update(train_and_track(model, opts, x, true, shift, seed))
    atoms = _atoms(model, n)
    final = S.match_atoms(atoms, true, shift_invariant=shift)
    rec["final"] = final.as_dict()
    rec["coherence"] = S.coherence(atoms)
    rec["rel_error"] = rel_error(model, test.fields(n))
    if setting == "conv-smooth":
        rec["resolution"] = resolution_sweep(model, test, n)
    return rec


def chance_level(setting: str, cfg: dict[str, Any], seed: int) -> dict[str, float]:
    """Recovery score of an untrained dictionary: fresh atoms of the same family (another seed) and
    Gaussian noise, matched to the true atoms like a learned dictionary (both with and without shifts)."""
    n = cfg["n"]
    train, _ = make_setting(setting, {**cfg, "n_test": 1}, seed)
    true = train.dictionary(n)
    other = S.make_atoms(
        train.atoms.family,
        train.atoms.p,
        bandwidth=train.atoms.params.get("freqs", np.ones((1, 1))).max(),
        base=train.atoms.base,
        seed=1000 * seed + 999,
    ).render(n)
    noise = torch.randn(true.shape, generator=torch.Generator().manual_seed(seed))
    return {
        "same_family": S.match_atoms(other, true).mean_cos,
        "same_family_shift": S.match_atoms(other, true, shift_invariant=True).mean_cos,
        "noise": S.match_atoms(noise, true).mean_cos,
        "noise_shift": S.match_atoms(noise, true, shift_invariant=True).mean_cos,
    }


def add_chance(result: dict[str, Any]) -> dict[str, Any]:
    """Add ``result["chance"][setting]`` (mean ± std over the seeds) to a run's result."""
    cfg = result["config"]
    result["chance"] = {}
    for setting in {r["setting"] for r in result["records"]}:
        levels = [chance_level(setting, cfg, seed) for seed in cfg["seeds"]]
        result["chance"][setting] = {k: _ms([lv[k] for lv in levels]) for k in levels[0]}
    return result


# -- summary ------------------------------------------------------------------------------------------


def _ms(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=float)
    return {"mean": float(a.mean()), "std": float(a.std()), "n": int(a.size)}


def steps_to(curve: dict[str, list[float]], level: float) -> float:
    """First recorded step with mean matched |cos| >= level (inf if never)."""
    for s, c in zip(curve["step"], curve["mean_cos"]):
        if c >= level:
            return float(s)
    return math.inf


def summarize(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and spread over seeds per (setting, model)."""
    out: dict[str, Any] = {}
    for r in records:
        out.setdefault(r["setting"], {}).setdefault(r["model"], []).append(r)
    summary: dict[str, Any] = {}
    for setting, models in out.items():
        summary[setting] = {}
        for model, rs in models.items():
            s: dict[str, Any] = {
                "mean_cos": _ms([r["final"]["mean_cos"] for r in rs]),
                "min_cos": _ms([r["final"]["min_cos"] for r in rs]),
                "mean_sine": _ms([r["final"]["mean_sine"] for r in rs]),
                "coherence": _ms([r["coherence"] for r in rs]),
                "true_coherence": _ms([r["true_coherence"] for r in rs]),
                "train_s": _ms([r["train_s"] for r in rs]),
            }
            if "rel_error" in rs[0]:
                s["rel_error"] = _ms([r["rel_error"] for r in rs])
            if "curve" in rs[0]:
                curves = np.array([r["curve"]["mean_cos"] for r in rs])
                s["curve"] = {
                    "step": rs[0]["curve"]["step"],
                    "mean": curves.mean(0).tolist(),
                    "std": curves.std(0).tolist(),
                }
                s["auc_mean_cos"] = _ms([float(np.mean(r["curve"]["mean_cos"])) for r in rs])
                for level in (0.8, 0.9):
                    st = [steps_to(r["curve"], level) for r in rs]
                    s[f"steps_to_{level}"] = {"values": [None if math.isinf(v) else v for v in st]}
            if "resolution" in rs[0]:
                res: dict[str, Any] = {}
                for m in rs[0]["resolution"]:
                    vals = [r["resolution"][m] for r in rs]
                    if vals[0]["rel_error"] == "n/a":
                        res[m] = {"rel_error": "n/a", "error": vals[0]["error"]}
                    else:
                        res[m] = {
                            "rel_error": _ms([v["rel_error"] for v in vals]),
                            "mean_cos": _ms([v["mean_cos"] for v in vals]),
                        }
                s["resolution"] = res
            summary[setting][model] = s
    return summary


# -- plots --------------------------------------------------------------------------------------------


def plot(summary: dict[str, Any], out_dir: Path) -> list[str]:
    """Write the PNG plots; returns their file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    # 1. recovery against steps
    fig, axes = plt.subplots(1, len(summary), figsize=(4.2 * len(summary), 3.4), squeeze=False)
    for ax, (setting, models) in zip(axes[0], summary.items()):
        for model, s in models.items():
            if "curve" not in s:
                ax.axhline(s["mean_cos"]["mean"], ls=":", c="k", label=f"{model} (final)")
                continue
            st, m, sd = (np.asarray(s["curve"][k]) for k in ("step", "mean", "std"))
            ax.plot(st, m, label=model, ls="--" if model.startswith("L-") else "-")
            ax.fill_between(st, m - sd, m + sd, alpha=0.2)
        ax.set_title(setting)
        ax.set_xlabel("training step")
        ax.set_ylabel("mean matched |cos|")
        ax.set_ylim(0, 1.02)
        ax.legend(fontsize=7)
    fig.tight_layout()
    files.append("recovery_steps.png")
    fig.savefig(out_dir / files[-1], dpi=110)
    plt.close(fig)

    # 2. smooth against non-smooth
    pairs = [("euclid-smooth", "euclid-noise"), ("conv-smooth", "conv-noise")]
    fig, ax = plt.subplots(figsize=(7, 3.4))
    labels, sm, ns, sm_e, ns_e = [], [], [], [], []
    for a, b in pairs:
        if a not in summary or b not in summary:
            continue
        for model in summary[a]:
            if model in summary[b]:
                labels.append(f"{a.split('-')[0]}\n{model}")
                sm.append(summary[a][model]["mean_cos"]["mean"])
                sm_e.append(summary[a][model]["mean_cos"]["std"])
                ns.append(summary[b][model]["mean_cos"]["mean"])
                ns_e.append(summary[b][model]["mean_cos"]["std"])
    if labels:
        xs = np.arange(len(labels))
        ax.bar(xs - 0.2, sm, 0.4, yerr=sm_e, label="smooth (Fourier) atoms")
        ax.bar(xs + 0.2, ns, 0.4, yerr=ns_e, label="non-smooth (noise) atoms")
        ax.set_xticks(xs, labels, fontsize=7)
        ax.set_ylabel("final mean matched |cos|")
        ax.set_ylim(0, 1.05)
        ax.legend(fontsize=8)
    fig.tight_layout()
    files.append("recovery_smooth.png")
    fig.savefig(out_dir / files[-1], dpi=110)
    plt.close(fig)

    # 3. resolution
    if "conv-smooth" in summary:
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
        for model, s in summary["conv-smooth"].items():
            if "resolution" not in s:
                continue
            ms = [int(m) for m in s["resolution"]]
            for ax, key in zip(axes, ("rel_error", "mean_cos")):
                ys = [
                    np.nan
                    if s["resolution"][str(m)]["rel_error"] == "n/a"
                    else s["resolution"][str(m)][key]["mean"]
                    for m in ms
                ]
                ax.plot(ms, ys, marker="o", label=model)
        for ax, lab in zip(axes, ("relative L2 error (test)", "mean matched |cos| (shift-inv.)")):
            ax.set_xscale("log", base=2)
            ax.set_xlabel("grid points (trained at 64)")
            ax.set_ylabel(lab)
            ax.legend(fontsize=7)
        fig.tight_layout()
        files.append("recovery_resolution.png")
        fig.savefig(out_dir / files[-1], dpi=110)
        plt.close(fig)

    # 4. coherence with and without lifting
    fig, ax = plt.subplots(figsize=(7, 4.2))
    labels, vals, errs, true = [], [], [], []
    for setting, models in summary.items():
        for base in ("SAE", "FlatSAE", "SAE-FNO"):
            if base in models and f"L-{base}" in models:
                for name in (base, f"L-{base}"):
                    labels.append(f"{setting} {name}")
                    vals.append(models[name]["coherence"]["mean"])
                    errs.append(models[name]["coherence"]["std"])
                    true.append(models[name]["true_coherence"]["mean"])
    if labels:
        xs = np.arange(len(labels))
        colors = ["C1" if lab.split(" ")[1].startswith("L-") else "C0" for lab in labels]
        ax.bar(xs, vals, yerr=errs, color=colors)
        ax.scatter(xs, true, marker="_", s=200, c="k", label="true dictionary", zorder=3)
        ax.set_xticks(xs, labels, fontsize=7, rotation=40, ha="right")
        ax.set_ylabel("mean off-diagonal |D^T D|")
        ax.set_title("blue: plain, orange: lifted", fontsize=9)
        ax.legend(fontsize=8)
    fig.tight_layout()
    files.append("recovery_coherence.png")
    fig.savefig(out_dir / files[-1], dpi=110)
    plt.close(fig)
    return files


# -- markdown -----------------------------------------------------------------------------------------


def _pm(d: Any, digits: int = 3) -> str:
    if not isinstance(d, dict):
        return str(d)
    return f"{d['mean']:.{digits}f} ± {d['std']:.{digits}f}"


def markdown_tables(summary: dict[str, Any]) -> str:
    """The result tables (mean ± std over seeds) as Markdown."""
    lines = [
        "| setting | model | mean matched abs(cos) | worst abs(cos) | mean sine dist. | test rel. error | "
        "coherence (true) | AUC of recovery curve | steps to 0.9 (per seed) | train s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for setting, models in summary.items():
        for model, s in models.items():
            st = s.get("steps_to_0.9", {}).get("values")
            st_txt = "-" if st is None else ", ".join("never" if v is None else str(int(v)) for v in st)
            lines.append(
                f"| {setting} | {model} | {_pm(s['mean_cos'])} | {_pm(s['min_cos'])} | {_pm(s['mean_sine'])} | "
                f"{_pm(s['rel_error']) if 'rel_error' in s else '-'} | {_pm(s['coherence'])} "
                f"({s['true_coherence']['mean']:.3f}) | {_pm(s['auc_mean_cos']) if 'auc_mean_cos' in s else '-'} | "
                f"{st_txt} | {s['train_s']['mean']:.0f} |"
            )
    out = "\n".join(lines)
    if "conv-smooth" in summary:
        models = {m: s for m, s in summary["conv-smooth"].items() if "resolution" in s}
        if models:
            grids = list(next(iter(models.values()))["resolution"])
            res = [
                "",
                "| model | "
                + " | ".join(f"rel. error @ {g}" for g in grids)
                + " | "
                + " | ".join(f"abs(cos) @ {g}" for g in grids)
                + " |",
                "|---|" + "---|" * (2 * len(grids)),
            ]
            for model, s in models.items():
                r = s["resolution"]
                errs = [_pm(r[g]["rel_error"]) if r[g]["rel_error"] != "n/a" else "n/a" for g in grids]
                coss = [_pm(r[g]["mean_cos"]) if r[g]["rel_error"] != "n/a" else "n/a" for g in grids]
                res.append(f"| {model} | " + " | ".join(errs) + " | " + " | ".join(coss) + " |")
            na = [
                (m, g, s["resolution"][g]["error"])
                for m, s in models.items()
                for g in grids
                if s["resolution"][g]["rel_error"] == "n/a"
            ]
            if na:
                res += ["", f"n/a: {na[0][0]} at {na[0][1]} points raised `{na[0][2]}`"]
            out += "\n" + "\n".join(res)
    return out + "\n"


# -- entry point ----------------------------------------------------------------------------------------


def jobs_for(cfg: dict[str, Any]) -> list[tuple[str, str, int, dict[str, Any]]]:
    """All (setting, model, seed) jobs of a configuration."""
    selection = cfg["models"] or SETTINGS
    return [
        (setting, model, seed, cfg)
        for setting, models in selection.items()
        for model in models
        for seed in cfg["seeds"]
    ]


def run(
    quick: bool = False,
    workers: int = 1,
    seeds: list[int] | None = None,
    settings: list[str] | None = None,
    models: list[str] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the benchmark; returns ``{"config", "records", "summary", "chance", "elapsed_s"}``.

    ``settings`` and ``models`` restrict the run to some of :data:`SETTINGS` and of their models.
    """
    cfg = dict(QUICK if quick else FULL)
    if seeds is not None:
        cfg["seeds"] = list(seeds)
    if models is not None:
        cfg["models"] = {k: [m for m in v if m in models] for k, v in (cfg["models"] or SETTINGS).items()}
    if settings is not None:
        unknown = sorted(set(settings) - set(SETTINGS))
        if unknown:
            raise SystemExit(f"unknown settings {unknown}: choose from {sorted(SETTINGS)}")
        cfg["models"] = {k: v for k, v in (cfg["models"] or SETTINGS).items() if k in settings}
    jobs = jobs_for(cfg)
    t0 = time.perf_counter()
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            records = []
            for r in pool.map(run_one, jobs):
                records.append(r)
                if progress:
                    print(
                        f"[{time.perf_counter() - t0:6.1f}s] {r['setting']:14s} {r['model']:12s} seed {r['seed']}"
                        f" mean|cos| {r['final']['mean_cos']:.3f}",
                        flush=True,
                    )
    else:
        records = []
        for job in jobs:
            r = run_one(job)
            records.append(r)
            if progress:
                print(
                    f"[{time.perf_counter() - t0:6.1f}s] {r['setting']:14s} {r['model']:12s} seed {r['seed']}"
                    f" mean|cos| {r['final']['mean_cos']:.3f}",
                    flush=True,
                )
    result = {
        "config": {k: v for k, v in cfg.items()},
        "quick": quick,
        "records": records,
        "summary": summarize(records),
        "elapsed_s": time.perf_counter() - t0,
    }
    return add_chance(result)


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python benchmarks/recovery.py [--quick] [--workers N] [--out DIR] [--tables JSON]``."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small CI run (one seed, two checks)")
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--seeds", type=int, nargs="*", default=None)
    ap.add_argument("--settings", nargs="*", default=None, help=f"subset of {list(SETTINGS)}")
    ap.add_argument("--models", nargs="*", default=None, help="subset of the models")
    ap.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (default benchmarks/results; --quick writes nothing unless given)",
    )
    ap.add_argument("--no-plots", action="store_true")
    ap.add_argument(
        "--tables",
        type=Path,
        default=None,
        metavar="JSON",
        help="print the Markdown tables of an earlier run's JSON and exit",
    )
    args = ap.parse_args(argv)
    if args.tables is not None:
        print(markdown_tables(json.loads(args.tables.read_text())["summary"]), end="")
        return 0
    result = run(
        quick=args.quick, workers=args.workers, seeds=args.seeds, settings=args.settings, models=args.models
    )
    if args.out is None and args.quick:
        print(markdown_tables(result["summary"]), end="")
        return 0
    args.out = args.out or RESULTS
    args.out.mkdir(parents=True, exist_ok=True)
    name = "recovery_quick.json" if args.quick else "recovery.json"
    (args.out / name).write_text(json.dumps(result, indent=1, default=float))
    if not args.no_plots and not args.quick:
        plot(result["summary"], args.out)
    print(f"wrote {args.out / name} in {result['elapsed_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
