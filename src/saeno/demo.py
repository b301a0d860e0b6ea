"""``saeno demo``: the whole pipeline on generated Darcy flow, end to end.

Steps: generate the Darcy benchmark (train and test splits at the FNO's resolution and at twice it),
train or load the zoo's ``darcy-fno``, capture two block outputs into Zarr stores, train an SAE-FNO and a
pointwise SAE on one of them at both grids (``DemoConfig.two_grids``: batches alternating between the
grids at equal points per batch, :class:`saeno.train.MultiGrid`), evaluate both on held-out samples at
both resolutions
(operator loss recovered included), export the SAE-FNO's concepts as an HTML report, and write a summary
(``summary.json``, ``summary.md``).

The pointwise SAE's training and both SAEs' evaluations (:func:`pointwise_and_evaluations`, one
intra-op thread) run once the SAE-FNO has trained: on CPU with at least two cores in a second
process, beside the report's computation and figures in this one (``DemoConfig.side_process``),
else in this process before the report. The numbers are the same either way. The SAE-FNO trains
with torch's deterministic algorithms (reproducible run to run), on all cores, with nothing beside it.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from saeno.errors import SaenoError
from saeno.threads import deterministic, single_thread


@dataclass
class DemoConfig:
    """Sizes of the demo; :meth:`fast` is the smoke-test variant used by the tests."""

    n_train: int = 400
    n_test: int = 100
    epochs_fno: int | None = None  # None: the zoo recipe
    concepts: int = 64
    k_sae_fno: int = 64  # concepts per sample, sharing a sixteenth of the domain each: 4 codes per point
    k_sae: int = 4  # codes per point, matched to the SAE-FNO
    modes: int = 8
    steps_sae_fno: int = 500
    steps_sae: int = 600
    batch_sae_fno: int = 16
    batch_sae: int = 4096
    lifting: int | None = None
    n_export: int = 12
    fast_zoo: bool = False
    seed: int = 0
    # the pointwise SAE and the evaluations in a second process beside the report (None: on CPU
    # with at least two usable cores)
    side_process: bool | None = None
    two_grids: bool = True  # train both SAEs on the training inputs at the FNO's grid and at twice it
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def fast(cls) -> DemoConfig:
        """Tiny sizes: a minute-scale smoke test of every step."""
        return cls(
            n_train=32,
            n_test=8,
            concepts=16,
            k_sae_fno=4,
            k_sae=4,
            modes=4,
            steps_sae_fno=20,
            steps_sae=20,
            batch_sae_fno=8,
            batch_sae=512,
            n_export=4,
            fast_zoo=True,
        )


READY = "ready"  # written into the SAE-FNO's folder once its weights are saved


REFERENCE = "reference.pkl"  # the SAE-FNO evaluation's FNO passes, written for the pointwise SAE's


def _wait_for(path: Path, parent: int) -> None:
    """Wait until ``path`` exists (written by the demo's main process ``parent``)."""
    import os

    while not path.is_file():
        if os.getppid() != parent:  # pragma: no cover - the demo's process died
            raise SaenoError(f"the demo's main process ended before it wrote {path.name}")
        time.sleep(0.05)


def pointwise_and_evaluations(
    sae: Any,
    train_store: str | list[str],
    test_stores: dict[int, str],
    *,
    hook: str,
    steps: int,
    batch_size: int,
    seed: int,
    out: str,
    model: Any = None,
    fast_zoo: bool = False,
    device: str = "cpu",
    progress: bool = False,
    threads: int | None = None,
    sae_fno: bool = True,
    reference_from: str | None = None,
) -> dict[str, Any]:
    """The demo's pointwise work: train the pointwise SAE ``sae`` on ``train_store`` (one store, or
    one per training grid), evaluate it at each test store's resolution, then (``sae_fno``) evaluate
    the SAE-FNO saved in ``out/sae/sae-fno`` (waiting for its :data:`READY` file) on the same stores.

    The evaluations share the FNO's SAE-independent passes (:class:`saeno.evaluation.ReferencePasses`);
    with ``reference_from`` (a second process) the pointwise SAE's evaluation waits for that file,
    the passes of the main process's SAE-FNO evaluation (:func:`sae_fno_evaluation`), and reuses them.
    ``model`` is the hooked FNO (None: the zoo's ``darcy-fno``, loaded from its cache, as a second
    process does). With ``threads`` the work runs on that many intra-op threads (restored after).
    Returns the reports, the pointwise SAE's training throughput and each step's wall time.
    """
    import os
    import pickle

    import saeno
    from saeno.evaluation import ReferencePasses, evaluate

    old_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    parent = os.getppid()
    try:
        if model is None:
            model = saeno.HookedOperator(saeno.zoo.load("darcy-fno", fast=fast_zoo, progress=False).eval())
        stores = {r: saeno.ActivationStore.open(path) for r, path in test_stores.items()}
        res = min(stores)
        others = [stores[r] for r in sorted(stores) if r != res]
        t0 = time.perf_counter()
        train = (
            [saeno.ActivationStore.open(p) for p in train_store]
            if isinstance(train_store, list)
            else saeno.ActivationStore.open(train_store)
        )
        result = saeno.train_sae(
            sae.to(device),
            train,
            hook=hook,
            steps=steps,
            batch_size=batch_size,
            device=device,
            progress=progress,
            seed=seed,
            log_csv=Path(out) / "sae" / "sae" / "train_log.csv",
        )
        saeno.save_sae(result.sae, Path(out) / "sae" / "sae")
        t1 = time.perf_counter()
        if reference_from is None:
            reference = ReferencePasses()
        else:
            _wait_for(Path(reference_from), parent)
            with open(reference_from, "rb") as fh:
                reference = ReferencePasses.from_state(pickle.load(fh), model)
        t_ref = time.perf_counter()
        kw = dict(hooked=model, other_stores=others, progress=progress, reference=reference)
        reports = {"sae": evaluate(result.sae, stores[res], hook, **kw)}
        t2 = time.perf_counter()
        t3 = t4 = t2
        if sae_fno:
            sae_fno_dir = Path(out) / "sae" / "sae-fno"
            _wait_for(sae_fno_dir / READY, parent)
            t3 = time.perf_counter()
            reports["sae-fno"] = evaluate(saeno.load_sae(sae_fno_dir), stores[res], hook, **kw)
            t4 = time.perf_counter()
    finally:
        torch.set_num_threads(old_threads)
    return {
        "reports": reports,
        "samples_per_s": result.samples_per_s,
        "train_s": t1 - t0,
        "eval_s": t2 - t_ref,
        "eval_fno_s": t4 - t3,
    }


def sae_fno_evaluation(
    sae_fno_dir: Path,
    test_stores: dict[int, Any],
    *,
    hooked: Any,
    hook: str,
    reference_to: Path,
    progress: bool = False,
) -> dict[str, Any]:
    """Evaluate the SAE-FNO saved in ``sae_fno_dir`` at each test store's resolution, as
    :func:`pointwise_and_evaluations` does (one intra-op thread), and write the FNO passes it made
    to ``reference_to`` for the pointwise SAE's evaluation in the second process."""
    import pickle

    import saeno
    from saeno.evaluation import ReferencePasses, evaluate

    res = min(test_stores)
    others = [test_stores[r] for r in sorted(test_stores) if r != res]
    reference = ReferencePasses()
    with single_thread():
        report = evaluate(
            saeno.load_sae(sae_fno_dir),
            test_stores[res],
            hook,
            hooked=hooked,
            other_stores=others,
            progress=progress,
            reference=reference,
        )
    tmp = reference_to.with_suffix(".tmp")
    with open(tmp, "wb") as fh:
        pickle.dump(reference.state(), fh)
    tmp.replace(reference_to)
    return report


class SideJob:
    """:func:`pointwise_and_evaluations` in a fresh Python process (``python -c``, so no ``__main__`` guard is
    needed in the caller's script), its arguments and result passed as pickles in ``folder``."""

    def __init__(self, folder: Path, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        import os
        import pickle
        import subprocess
        import sys

        folder.mkdir(parents=True, exist_ok=True)
        self.job, self.result_path, self.log = folder / "job.pkl", folder / "result.pkl", folder / "side.log"
        self.result_path.unlink(missing_ok=True)
        with open(self.job, "wb") as fh:
            pickle.dump((args, kwargs, str(self.result_path)), fh)
        code = "import sys; from saeno.demo import side_job_main; side_job_main(sys.argv[1])"
        env = {**os.environ, "OMP_NUM_THREADS": str(kwargs.get("threads") or 1)}
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", code, str(self.job)], stdout=log, stderr=subprocess.STDOUT, env=env
            )

    def result(self) -> dict[str, Any]:
        """Wait for the process and return its result; SaenoError (with its log's end) if it failed."""
        import pickle

        rc = self.proc.wait()
        if rc != 0 or not self.result_path.is_file():
            tail = self.log.read_text(errors="replace")[-3000:]
            raise SaenoError(f"the demo's second process (the pointwise SAE) failed (exit {rc}):\n{tail}")
        with open(self.result_path, "rb") as fh:
            out = pickle.load(fh)
        for path in (self.job, self.result_path):
            path.unlink(missing_ok=True)
        return out

    def kill(self) -> None:
        """Stop the process (after an error in this one)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def side_job_main(job: str) -> None:
    """Entry point of :class:`SideJob`'s process."""
    import pickle

    with open(job, "rb") as fh:
        args, kwargs, result_path = pickle.load(fh)
    out = pointwise_and_evaluations(*args, **kwargs)
    with open(result_path + ".tmp", "wb") as fh:
        pickle.dump(out, fh)
    Path(result_path + ".tmp").replace(result_path)


def _use_side_process(cfg: DemoConfig, device: str) -> bool:
    if torch.device(device).type != "cpu":
        return False
    if cfg.side_process is None:
        from saeno.zoo.training import usable_cores

        return usable_cores() >= 2
    return bool(cfg.side_process)


def _step(msg: str) -> float:
    print(f"\n== {msg}", flush=True)
    return time.perf_counter()


def _done(t0: float) -> None:
    print(f"   done in {time.perf_counter() - t0:.1f} s", flush=True)


def run_demo(
    out: str | Path = "saeno-demo",
    *,
    fast: bool = False,
    device: str | None = None,
    progress: bool = True,
    config: DemoConfig | None = None,
) -> dict[str, Any]:
    """Run the demo pipeline and return its summary.

    Parameters
    ----------
    out
        Output folder (stores, SAEs, report, summary). Stores there from an earlier run are replaced.
    fast
        Tiny sizes and the zoo's fast FNO (for tests).
    device
        Torch device for the FNO and the SAEs (default CPU).
    progress
        Progress bars.
    config
        Explicit sizes (overrides ``fast``).

    Returns
    -------
    dict
        The summary also written to ``out/summary.json``.
    """
    import saeno
    from saeno.evaluation import format_table, summary_rows
    from saeno.export.compute import compute_concepts
    from saeno.export.evaluation_block import evaluation_block
    from saeno.export.writing import write_document, write_static

    cfg = config or (DemoConfig.fast() if fast else DemoConfig())
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    device = device or "cpu"
    t_start = time.perf_counter()

    t0 = _step("model: the zoo's darcy-fno (trained and cached on first use)")
    cached = (saeno.zoo.model_dir("darcy-fno", cfg.fast_zoo) / "config.json").is_file()
    model = saeno.zoo.load("darcy-fno", fast=cfg.fast_zoo, progress=progress).to(device).eval()
    res = int(model.saeno_config["resolution"])
    record = model.saeno_record
    print(
        f"   FNO {model.saeno_config['name']} at {res}x{res}; test relative L2 by resolution: "
        f"{record.get('test_rel_l2')}"
    )
    if not cached and "wall_time_s" in record:
        total, fit = float(record.get("total_wall_time_s", 0.0)), float(record["wall_time_s"])
        print(f"   trained here: fit {fit:.1f} s, data and test errors {max(total - fit, 0.0):.1f} s")
    _done(t0)

    train_grids = (res, 2 * res) if cfg.two_grids else (res,)
    grids_text = " and ".join(str(r) for r in train_grids)
    t0 = _step(f"data: Darcy flow, train split at {grids_text}, test split at {res} and {2 * res}")
    train_ds = {
        r: saeno.datasets.load("darcy", split="train", resolution=r, n=cfg.n_train, progress=progress)
        for r in train_grids
    }
    test_ds = {
        r: saeno.datasets.load("darcy", split="test", resolution=r, n=cfg.n_test, progress=progress)
        for r in (res, 2 * res)
    }
    _done(t0)

    hooked = saeno.HookedOperator(model)
    n_layers = sum(
        1
        for name in hooked.hook_names
        if name.startswith("blocks.") and name.count(".") == 2 and name.endswith(".hook_out")
    )
    mid = n_layers // 2
    hooks = (
        [f"blocks.{mid - 1}.hook_out", f"blocks.{mid}.hook_out"] if n_layers > 1 else ["blocks.0.hook_out"]
    )
    hook = hooks[-1]

    t0 = _step(f"capture: {', '.join(hooks)} -> Zarr stores")
    stores_dir = out / "stores"
    train_stores = [
        saeno.capture(
            hooked,
            ds,
            hooks if r == res else [hook],  # the finer grid only for training on the SAEs' hook
            stores_dir / f"train_{r}.zarr",
            device=device,
            progress=progress,
            overwrite=True,
        )
        for r, ds in train_ds.items()
    ]
    train_store = train_stores[0]
    train_data = train_stores if len(train_stores) > 1 else train_store
    test_stores = {
        r: saeno.capture(
            hooked, ds, hooks, stores_dir / f"test_{r}.zarr", device=device, progress=progress, overwrite=True
        )
        for r, ds in test_ds.items()
    }
    _done(t0)

    channels = train_store.hook_info(hook)["shape"][0]
    torch.manual_seed(cfg.seed)  # SAE initialisation independent of whether the FNO was just trained
    saes = {
        "sae-fno": saeno.SAEFNO(
            channels,
            cfg.concepts,
            ndim=2,
            modes=cfg.modes,
            lifting=cfg.lifting,
            sparsity={**saeno.sae.sae_fno.DEFAULT_SPARSITY, "k": cfg.k_sae_fno},
        ),
        "sae": saeno.SAE(
            channels, cfg.concepts, ndim=2, sparsity={"type": "topk", "k": cfg.k_sae, "group": "point"}
        ),
    }
    steps = {"sae-fno": cfg.steps_sae_fno, "sae": cfg.steps_sae}
    batch = {"sae-fno": cfg.batch_sae_fno, "sae": cfg.batch_sae}
    side = dict(
        hook=hook,
        steps=steps["sae"],
        batch_size=batch["sae"],
        seed=cfg.seed,
        out=str(out),
        fast_zoo=cfg.fast_zoo,
        device=device,
        threads=1,  # the same thread count in the second process and in this one
    )
    train_urls = [str(s.url) for s in train_stores]
    side_args = (
        saes["sae"],
        train_urls if len(train_urls) > 1 else train_urls[0],
        {r: str(s.url) for r, s in test_stores.items()},
    )
    sae_fno_dir = out / "sae" / "sae-fno"
    (sae_fno_dir / READY).unlink(missing_ok=True)
    side_job = None
    try:
        name = "sae-fno"
        t0 = _step(f"train {name}: {cfg.concepts} concepts on {hook} at {grids_text}")
        # deterministic algorithms: with two intra-op threads its training otherwise differed from run
        # to run in the last bits
        with deterministic():
            result = saeno.train_sae(
                saes[name].to(device),
                train_data,
                hook=hook,
                steps=steps[name],
                batch_size=batch[name],
                device=device,
                progress=progress,
                seed=cfg.seed,
                log_csv=sae_fno_dir / "train_log.csv",
            )
        saeno.save_sae(result.sae, sae_fno_dir)
        (sae_fno_dir / READY).write_text("")
        print(f"   {result.samples_per_s:,.0f} samples/s")
        _done(t0)
        work = f"train sae: {cfg.concepts} concepts on {hook} at {grids_text}; evaluate it at {res} and {2 * res}"
        if _use_side_process(cfg, device):
            # there on one intra-op thread, beside the SAE-FNO's evaluation and the report here on one
            reference_file = out / "sae" / "sae" / REFERENCE
            reference_file.unlink(missing_ok=True)
            print(f"\n== in a second process: {work}", flush=True)
            side_job = SideJob(
                out / "sae" / "sae",
                side_args,
                {**side, "sae_fno": False, "reference_from": str(reference_file)},
            )
            t0 = _step(f"evaluate sae-fno at {res} and {2 * res}")
            report_fno = sae_fno_evaluation(
                sae_fno_dir,
                test_stores,
                hooked=hooked,
                hook=hook,
                reference_to=reference_file,
                progress=progress,
            )
            eval_fno_s = time.perf_counter() - t0
            _done(t0)
        else:
            t0 = _step(f"{work}; evaluate sae-fno at {res} and {2 * res}")
            side_out = pointwise_and_evaluations(*side_args, **side, model=hooked, progress=progress)
            _done(t0)

        t0 = _step("export the SAE-FNO's concepts (maps, spectra, top examples, ablations)")
        # one intra-op thread beside the second process (the report's numbers are the same on any count)
        with single_thread() if side_job is not None else contextlib.nullcontext():
            data = compute_concepts(
                saes["sae-fno"],
                test_stores[res],
                hook=hook,
                model=hooked,
                max_concepts=cfg.n_export,
                progress=progress,
                device=device,
                evaluation=False,  # attached below, from the evaluation of the SAE-FNO
                model_name="darcy-fno" + (" (fast)" if cfg.fast_zoo else ""),
            )
            static = write_static(data, out / "report", progress=progress)  # all but the evaluation's part
        if side_job is not None:
            t1 = time.perf_counter()
            side_out = side_job.result()
            side_job = None
            side_out["reports"]["sae-fno"] = report_fno
            side_out["eval_fno_s"] = eval_fno_s
            print(f"   waited {time.perf_counter() - t1:.1f} s for the second process")
        (sae_fno_dir / READY).unlink(missing_ok=True)
        reports: dict[str, Any] = {
            name: side_out["reports"][name] for name in ("sae-fno", "sae")
        }  # table order
        data.evaluation = evaluation_block(reports["sae-fno"], saes["sae-fno"], None, hook, None, 0, 0, False)
        report_html = write_document(data, out / "report", static)
        _done(t0)
    finally:
        if side_job is not None:
            side_job.kill()
    print(
        f"   sae: trained in {side_out['train_s']:.1f} s ({side_out['samples_per_s']:,.0f} samples/s), "
        f"evaluated at {res} and {2 * res} in {side_out['eval_s']:.1f} s; sae-fno evaluated in "
        f"{side_out['eval_fno_s']:.1f} s"
    )

    rows = [row for rep in reports.values() for row in summary_rows(rep)]
    table = format_table(rows)
    report_html = Path(report_html)
    summary = {
        "hook": hook,
        "fno": {
            "name": model.saeno_config["name"],
            "resolution": res,
            "test_rel_l2": record.get("test_rel_l2"),
        },
        "sizes": {k: v for k, v in cfg.__dict__.items() if k != "extra"},
        "train_grids": list(train_grids),
        "results": rows,
        "report": str(report_html),
        "wall_time_s": round(time.perf_counter() - t_start, 1),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=float) + "\n")
    (out / "summary.md").write_text(f"hook `{hook}`, FNO `{summary['fno']['name']}`\n\n```\n{table}\n```\n")
    print(f"\n== summary ({summary['wall_time_s']} s)\n{table}")
    print(f"\nreport: {report_html}")
    if not report_html.is_file():  # pragma: no cover - export always writes it
        raise SaenoError(f"the report was not written to {report_html}")
    return summary
