"""saeno.distributed with 2 gloo processes: sharded capture and DDP training against one process.

The processes are forked with ``torch.multiprocessing`` and join a gloo group through torchrun's
environment variables (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``) on a free port.
Every forward pass runs with one intra-op thread, in the workers and in the references, because the
last bit of a float reduction depends on the thread count.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import distributed_worker as w
import numpy as np
import pytest
import torch
import zarr
from distributed_worker import free_port, launch, tree

from saeno.distributed import ShardedBatches
from saeno.distributed.capture import PROGRESS_GROUP, capture_distributed, region
from saeno.distributed.env import DistributedError, split_evenly
from saeno.errors import StoreError
from saeno.hooking import HookedOperator
from saeno.store import ActivationStore, capture
from saeno.train.checkpoint import load_sae
from saeno.train.trainer import _normalization_from, train_sae


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The single-process capture (one intra-op thread, like the workers)."""
    path = tmp_path_factory.mktemp("ref") / "store"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        capture(
            HookedOperator(w.tiny_fno()),
            w.inputs(),
            w.HOOKS,
            path,
            batch_size=w.BATCH,
            chunk_size=w.CHUNK,
            progress=False,
        )
    finally:
        torch.set_num_threads(threads)
    return path


# ------------------------------------------------------------------------------------ unit level
def test_regions_are_disjoint_chunk_aligned_and_cover_the_rows():
    for n, cs, world in [(37, 4, 2), (37, 4, 3), (8, 4, 2), (5, 4, 2), (100, 7, 4)]:
        parts = [region(n, cs, world, r) for r in range(world)]
        assert parts[0][0] == 0 and parts[-1][1] == n
        for (lo, hi), (lo2, _) in zip(parts, parts[1:]):
            assert hi == lo2 and lo % cs == 0 and lo <= hi
    assert [split_evenly(5, 2, r) for r in range(2)] == [(0, 3), (3, 5)]


def test_sharded_batches_union_is_the_global_batch(reference):
    store = ActivationStore.open(reference)
    kw = dict(view="points", batch_size=64, num_shards=2, seed=3)
    whole = ShardedBatches(store, w.HOOKS[1], **kw)
    shards = [ShardedBatches(store, w.HOOKS[1], shard=r, **kw) for r in range(2)]
    for epoch in (0, 1):
        rows = [set(s.shard_rows(epoch, s.shard).tolist()) for s in shards]
        assert not rows[0] & rows[1] and rows[0] | rows[1] == set(range(store.n_rows))
        glob = list(whole.epoch(epoch))
        local = [list(s.epoch(epoch)) for s in shards]
        assert len(glob) == len(local[0]) == len(local[1]) == whole.steps_per_epoch > 0
        for g, a, b in list(zip(glob, *local))[:5]:
            assert a.shape == (32, 8) and torch.equal(g, torch.cat([a, b]))
    # the shard is the one of this epoch: chunks are dealt anew every epoch
    assert shards[0].shard_rows(0, 0).tolist() != shards[0].shard_rows(1, 0).tolist()
    with pytest.raises(DistributedError, match="multiple of the number of processes"):
        ShardedBatches(store, w.HOOKS[1], view="points", batch_size=63, num_shards=2)
    with pytest.raises(DistributedError, match="fewer than the 20 processes"):
        ShardedBatches(store, w.HOOKS[1], view="points", batch_size=64 * 20, num_shards=20)


# ------------------------------------------------------------------------------------ capture
def test_two_process_capture_equals_single_process_bit_for_bit(tmp_path, reference):
    out = tmp_path / "store"
    assert launch(tmp_path, w.run_capture, str(out)) == {}
    assert tree(out) == tree(reference)  # every chunk and zarr.json, root metadata included
    store = ActivationStore.open(out)
    assert store.complete and store.n_rows == w.N


def test_capture_resumes_per_rank_after_one_rank_is_killed(tmp_path, reference):
    out = tmp_path / "store"
    lo1, hi1 = region(w.N, w.CHUNK, 2, 1)  # rank 1 owns rows 20..37
    failed = launch(tmp_path, w.run_capture, str(out), False, lo1 + 10)
    assert failed.pop(1) == "killed: SIGKILL"
    # rank 0 either was terminated with it or, if it was already waiting on rank 1 in a collective,
    # saw the peer's connection close (a race of the kill, not an error of the capture)
    assert all(not msg.strip() or "onnection" in msg or "gloo" in msg.lower() for msg in failed.values()), (
        failed
    )
    group = zarr.open_group(str(out), mode="r")
    assert not group.attrs["complete"] and group.attrs["rows_written"] == 0
    done1 = group[f"{PROGRESS_GROUP}/rank_1"].attrs["rows_done"]
    assert 0 < done1 < hi1 - lo1 and done1 % w.CHUNK == 0  # rank 1 committed whole chunks only
    with pytest.raises(StoreError, match="started with 2 processes"):
        capture_distributed(
            HookedOperator(w.tiny_fno()),
            w.inputs(),
            w.HOOKS,
            out,
            batch_size=w.BATCH,
            chunk_size=w.CHUNK,
            resume=True,
            progress=False,
        )
    assert launch(tmp_path, w.run_capture, str(out), True) == {}
    assert tree(out) == tree(reference)


def test_fsspec_url_store_and_the_progress_records_are_removed(reference):
    """An fsspec URL (``memory://``, one process: such a store lives in one process) goes through the
    same code as ``s3://``; the finished store keeps no trace of the distributed bookkeeping."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        url = f"memory://saeno-dist-{free_port()}"
        got = capture_distributed(
            HookedOperator(w.tiny_fno()),
            w.inputs(),
            w.HOOKS,
            url,
            batch_size=w.BATCH,
            chunk_size=w.CHUNK,
            progress=False,
        )
    finally:
        torch.set_num_threads(threads)
    ref = ActivationStore.open(reference)
    assert PROGRESS_GROUP not in dict(zarr.open_group(url, mode="r").members())
    assert got.attrs == ref.attrs
    for name in ref.array_names():
        assert np.array_equal(got.read(name), ref.read(name)), name


def test_torchrun_with_c10d_rendezvous_captures_the_same_store(tmp_path, reference):
    """The real launcher, as on several machines: torchrun's c10d rendezvous on a free port."""
    out = tmp_path / "store"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes",
        "1",
        "--nproc-per-node",
        "2",
        "--rdzv-backend",
        "c10d",
        "--rdzv-endpoint",
        f"127.0.0.1:{free_port()}",
        w.__file__,
        "capture",
        str(out),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert tree(out) == tree(reference)


def test_a_failure_on_rank_0_stops_every_rank_with_a_clear_error(tmp_path, reference):
    out = tmp_path / "store"
    out.mkdir()
    (out / "notes.txt").write_text("not a store")
    failed = launch(tmp_path, w.run_capture, str(out))
    assert failed[0].startswith("StoreError") and "not an empty folder" in failed[0]
    assert failed[1].startswith("DistributedError") and "rank(s) [0] failed" in failed[1]


# ------------------------------------------------------------------------------------ training
def _reference_training(store_path: Path, steps: int = w.TRAIN["steps"]):
    """``saeno.train_sae`` in one process on the global batches of 2 shards."""
    store = ActivationStore.open(store_path)
    sae = w.tiny_sae()
    mean, var = store.stats(w.HOOKS[1])
    sae.set_normalization(*_normalization_from(mean, var, "channel"))
    kw = {k: v for k, v in w.TRAIN.items() if k not in ("batch_size", "seed", "checkpoint_every")}
    data = ShardedBatches(
        store, w.HOOKS[1], view="points", batch_size=w.TRAIN["batch_size"], num_shards=2, seed=w.TRAIN["seed"]
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train_sae(sae, data, normalize="none", seed=w.TRAIN["seed"], progress=False, **kw)
    finally:
        torch.set_num_threads(threads)


def _assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], rtol=1e-5, atol=1e-6, msg=k)  # seen: 6e-8


@pytest.fixture(scope="module")
def ref_training(reference):
    return _reference_training(reference)


def test_ddp_training_equals_single_process_training(tmp_path, reference, ref_training):
    out = tmp_path / "run"
    assert launch(tmp_path, w.run_train, str(reference), str(out)) == {}
    ddp = load_sae(out / "final")
    _assert_same_weights(ddp, ref_training.sae)
    assert ddp.hook == w.HOOKS[1] and ddp.model_fingerprint == ActivationStore.open(reference).fingerprint
    # the run moved away from its start, and the logged global losses match the reference's
    assert (ddp.W_dec - w.tiny_sae().W_dec).abs().max() > 1e-3
    log = np.genfromtxt(out / "log.csv", delimiter=",", names=True)
    ref = ref_training.history
    np.testing.assert_allclose(log["mse"], [r["mse"] for r in ref], rtol=1e-4)
    assert any(r["aux"] > 0 for r in ref)  # AuxK (dead-concept statistics) took part
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step_00000008", "step_00000012"]


def test_ddp_training_resumes_after_one_rank_is_killed(tmp_path, reference, ref_training):
    out = tmp_path / "run"
    assert launch(tmp_path, w.run_train, str(reference), str(out), False, 6) == {1: "killed: SIGKILL"}
    assert not (out / "final").exists()
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step_00000004"]
    assert launch(tmp_path, w.run_train, str(reference), str(out), True) == {}
    _assert_same_weights(load_sae(out / "final"), ref_training.sae)
