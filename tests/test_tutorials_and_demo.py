"""The tutorials and `saeno demo --fast` run end to end (tiny sizes, the zoo's fast FNO)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = sorted((ROOT / "tutorials").glob("[0-9][0-9]_*.py"))


def _env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ, SAENO_TUTORIAL_FAST="1", SAENO_TUTORIAL_OUT=str(tmp), MPLBACKEND="Agg")
    env.setdefault("SAENO_HOME", str(tmp / "saeno-home"))
    return env


def test_tutorials_run_in_order(tmp_path):
    assert len(TUTORIALS) >= 3
    for script in TUTORIALS:
        proc = subprocess.run(
            [sys.executable, str(script)],
            cwd=tmp_path,
            env=_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert proc.returncode == 0, f"{script.name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert (tmp_path / "report" / "report.html").is_file()
    assert (tmp_path / "sae_fno" / "cfg.json").is_file()


def test_demo_fast_end_to_end(tmp_path, monkeypatch):
    out = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "saeno", "demo", "--fast", "--no-progress", "--out", str(out)],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    # both SAEs evaluated at the training resolution and at twice it
    grids = {(r["architecture"], r["grid"]) for r in summary["results"]}
    res = summary["fno"]["resolution"]
    assert grids == {(a, f"{g}x{g}") for a in ("sae-fno", "sae") for g in (res, 2 * res)}
    for row in summary["results"]:
        assert 0.0 < row["explained_variance"] <= 1.0
        assert row["L0_per_point"] > 0
    assert Path(summary["report"]).is_file()
    assert "report:" in proc.stdout and "summary" in proc.stdout
    for name in ("sae-fno", "sae"):
        assert (out / "sae" / name / "sae_weights.safetensors").is_file()

    # both SAEs trained on the training inputs at both grids: their normalisation is the two stores'
    # per-channel means pooled with equal weight
    import numpy as np

    import saeno

    assert summary["train_grids"] == [res, 2 * res]
    stores = [saeno.ActivationStore.open(out / "stores" / f"train_{r}.zarr") for r in (res, 2 * res)]
    hook = summary["hook"]
    means = [np.asarray(s.stats(hook)[0], dtype=np.float64) for s in stores]
    pooled = (means[0] + means[1]) / 2
    # the grids' activations differ by more than the tolerance below: one grid alone would fail it
    assert not np.allclose(means[0], pooled, rtol=1e-4, atol=1e-6)
    for name in ("sae-fno", "sae"):
        sae = saeno.load_sae(out / "sae" / name)
        np.testing.assert_allclose(sae.norm_mean.double().numpy().ravel(), pooled, rtol=1e-4, atol=1e-6)

    # the pointwise SAE and both evaluations in a second process beside the report (the default on
    # two or more cores) and in this process before it give the same table and the same report
    from saeno.demo import DemoConfig, _use_side_process, run_demo
    from saeno.zoo.training import usable_cores

    side_default = usable_cores() >= 2
    assert ("in a second process" in proc.stdout) == side_default
    assert (out / "sae" / "sae" / "side.log").is_file() == side_default
    monkeypatch.setenv("SAENO_HOME", _env(tmp_path)["SAENO_HOME"])  # the FNO the CLI run trained
    cfg = DemoConfig.fast()
    cfg.side_process = not side_default
    assert _use_side_process(cfg, "cpu") == (not side_default)
    other = run_demo(tmp_path / "other", config=cfg, progress=False)
    assert json.dumps(other["results"], default=float) == json.dumps(summary["results"])
    assert (tmp_path / "other" / "sae" / "sae" / "side.log").is_file() == (not side_default)

    def report(folder):
        doc = json.loads((folder / "report" / "concepts.json").read_text())
        doc.pop("created")
        doc["sae"].pop("path")
        doc["store"].pop("path")
        return doc

    assert report(tmp_path / "other") == report(out)
