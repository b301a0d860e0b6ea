"""Decoded chunks kept in memory across epochs: the same batches, fewer store reads, the budget kept."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
import torch

import saeno
from saeno.errors import StoreError
from saeno.hooking import HookedOperator
from saeno.store import ActivationStore, capture
from saeno.store import activation_store as store_module
from saeno.store.chunk_cache import ChunkCache
from saeno.train.config import TrainConfigError
from saeno.train.data import StoreSource, attach_chunk_cache

HOOK = "blocks.1.hook_out"
N, CHUNK, C = 19, 4, 8
N_CHUNKS = -(-N // CHUNK)


@pytest.fixture(scope="module")
def store() -> ActivationStore:
    from neuralop.models import FNO

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = FNO(n_modes=(4, 4), in_channels=1, out_channels=1, hidden_channels=C, n_layers=3).eval()
    x = torch.randn(N, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    url = f"memory://saeno-cache-{uuid.uuid4().hex}"
    return capture(HookedOperator(model), x, [HOOK], url, batch_size=5, chunk_size=CHUNK, progress=False)


@pytest.fixture
def reads(monkeypatch) -> list[int]:
    """The chunk numbers the store decodes, in order."""
    seen: list[int] = []
    real = store_module.read_chunk

    def counting(array, url, name, chunk, n_rows, crcs):
        seen.append(chunk)
        return real(array, url, name, chunk, n_rows, crcs)

    monkeypatch.setattr(store_module, "read_chunk", counting)
    return seen


def _epochs(store, n: int, **kw) -> list[list[np.ndarray]]:
    """``n`` epochs of one loader (each iteration is the next epoch), as copied arrays."""
    loader = store.loader(HOOK, seed=3, **kw)
    return [[b.numpy().copy() for b in loader] for _ in range(n)]


@pytest.mark.parametrize(
    "kw",
    [
        {"view": "field", "batch_size": 3, "shuffle_buffer": 0},
        {"view": "field", "batch_size": 3, "shuffle_buffer": 7},
        {"view": "points", "batch_size": 500, "shuffle_buffer": 2000},
        {
            "view": "field",
            "batch_size": 2,
            "shuffle_buffer": 5,
            "rows": np.arange(1, N, 2),
            "normalize": True,
        },
    ],
)
def test_cached_epochs_equal_uncached_ones_and_read_each_chunk_once(store, reads, kw) -> None:
    plain = _epochs(store, 3, **kw)
    reads.clear()
    cache = ChunkCache(2**30)
    cached = _epochs(store, 3, cache=cache, **kw)
    for a, b in zip(plain, cached):
        assert len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))
    used = sorted(set(reads))
    assert sorted(reads) == used  # every chunk decoded once, in the first epoch
    assert cache.misses == len(used) and cache.hits == 2 * len(used)
    assert cache.nbytes == sum(store[HOOK][i * CHUNK : (i + 1) * CHUNK].nbytes for i in used)


def test_writing_into_a_batch_leaves_the_cached_chunk_alone(store) -> None:
    cache = ChunkCache(2**30)
    stored = store.read(HOOK)
    for epoch in range(2):
        loader = store.loader(HOOK, batch_size=CHUNK, shuffle_buffer=0, cache=cache)
        rows = np.concatenate([b.numpy().copy() for b in loader])
        assert np.array_equal(rows, stored), epoch
        for b in store.loader(HOOK, batch_size=CHUNK, shuffle_buffer=0, cache=cache):
            b.mul_(0.0)  # a consumer that normalises in place
    assert cache.hits > 0
    block = cache.reader((str(store.url), HOOK, store.n_rows), store.chunk_reader(HOOK))(0)
    assert not block.flags.writeable
    with pytest.raises(ValueError):
        block[0] = 0


def test_the_budget_caps_what_is_kept_and_batches_stay_right(store, reads) -> None:
    cache = ChunkCache(2 * store[HOOK][:CHUNK].nbytes + 1)
    plain = _epochs(store, 2, batch_size=3, shuffle_buffer=7)
    reads.clear()
    cached = _epochs(store, 2, batch_size=3, shuffle_buffer=7, cache=cache)
    assert all(np.array_equal(x, y) for a, b in zip(plain, cached) for x, y in zip(a, b))
    sizes = [store[HOOK][i * CHUNK : (i + 1) * CHUNK].nbytes for i in range(N_CHUNKS)]
    assert 2 <= len(cache) < N_CHUNKS and cache.nbytes <= cache.budget
    assert cache.budget - cache.nbytes < max(sizes)  # filled until the next chunk would not fit
    assert len(reads) == 2 * N_CHUNKS - len(cache)  # the second epoch found those in memory
    empty = ChunkCache(0)
    _epochs(store, 2, batch_size=3, cache=empty)
    assert empty.nbytes == 0 and empty.hits == 0
    with pytest.raises(StoreError, match="0 or more bytes"):
        ChunkCache(-1)


def _train(store, **kw):
    torch.manual_seed(0)
    sae = saeno.SAE(C, 16, ndim=2, sparsity={"type": "topk", "k": 4})
    return saeno.train_sae(sae, store, hook=HOOK, batch_size=512, progress=False, seed=1, **kw)


def test_training_with_the_cache_gives_the_same_sae_and_decodes_each_chunk_once(store, reads) -> None:
    epochs = 4
    plain = _train(store, epochs=epochs, cache_mib=0)
    reads_plain = len(reads)
    reads.clear()
    cached = _train(store, epochs=epochs)  # the default budget
    for (name, a), b in zip(plain.sae.state_dict().items(), cached.sae.state_dict().values()):
        assert torch.equal(a, b), name
    assert reads_plain >= epochs * N_CHUNKS
    assert sorted(reads) == list(range(N_CHUNKS))


def test_runs_of_one_epoch_and_other_sources_get_no_cache(store) -> None:
    source = StoreSource(store, HOOK, "points", 512, 0)
    assert attach_chunk_cache(source, None, source.n_batches) is None
    assert attach_chunk_cache(source, 0, 10 * source.n_batches) is None
    assert source.cache is None
    cache = attach_chunk_cache(source, 8, 10 * source.n_batches)
    assert source.cache is cache and cache.budget == 8 * 2**20

    class Plain:  # a user's store object whose loader cannot take a cache
        n_rows = store.n_rows
        hooks = [HOOK]
        fingerprint = None

        def __getitem__(self, name):
            return store[name]

        def hook_info(self, hook):
            return store.hook_info(hook)

        def loader(self, hook, **kw):
            return store.loader(hook, **kw)

        def stats(self, hook):
            return store.stats(hook)

    other = StoreSource(Plain(), HOOK, "points", 512, 0)
    assert attach_chunk_cache(other, None, 10 * other.n_batches) is None
    with pytest.raises(TrainConfigError, match="cache_mib"):
        saeno.TrainConfig(cache_mib=-1)


def test_the_cli_refuses_a_negative_budget_naming_its_flag(store, tmp_path, capsys) -> None:
    from saeno.cli.main import main

    args = ["train", "--store", str(store.url), "--hook", HOOK, "--concepts", "16", "--out", str(tmp_path)]
    assert main([*args, "--cache-mib", "-5"]) == 2
    assert "--cache-mib must be an integer >= 0, got -5" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # refused before anything was written
