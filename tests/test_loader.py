"""ActivationStore.loader: every row exactly once per epoch, shuffling, determinism, views, normalisation."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
import torch

from saeno.errors import StoreError
from saeno.hooking import HookedOperator
from saeno.store import ActivationStore, capture

HOOK = "blocks.1.hook_out"
N, CHUNK, C, G = 19, 4, 8, 16 * 16


@pytest.fixture(scope="module")
def store() -> ActivationStore:
    from neuralop.models import FNO

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = FNO(n_modes=(4, 4), in_channels=1, out_channels=1, hidden_channels=C, n_layers=4).eval()
        x = torch.randn(N, 1, 16, 16, generator=torch.Generator().manual_seed(1))
        url = f"memory://saeno-loader-{uuid.uuid4().hex}"
        return capture(HookedOperator(model), x, [HOOK], url, batch_size=5, chunk_size=CHUNK, progress=False)
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def field(store: ActivationStore) -> np.ndarray:
    return store.read(HOOK)


def _epoch_field(loader) -> tuple[np.ndarray, np.ndarray]:
    xs, rows = zip(*[(b.numpy(), r.numpy()) for b, r in loader])
    return np.concatenate(xs), np.concatenate(rows)


@pytest.mark.parametrize("shuffle_buffer", [0, 3, 50])
def test_field_view_yields_every_row_once_with_its_values(store, field, shuffle_buffer) -> None:
    loader = store.loader(HOOK, batch_size=3, shuffle_buffer=shuffle_buffer, seed=4, return_index=True)
    xs, rows = _epoch_field(loader)
    assert sorted(rows.tolist()) == list(range(N))
    assert np.array_equal(xs, field[rows])  # each batch row is the stored sample it claims to be
    assert len(loader) == -(-N // 3)
    if shuffle_buffer:
        assert rows.tolist() != list(range(N))
    else:
        assert rows.tolist() == list(range(N))


@pytest.mark.parametrize("shuffle_buffer", [0, 1000])
def test_points_view_yields_every_point_once_with_index(store, field, shuffle_buffer) -> None:
    loader = store.loader(
        HOOK, view="points", batch_size=500, shuffle_buffer=shuffle_buffer, seed=1, return_index=True
    )
    parts = list(loader)
    pts = np.concatenate([p.numpy() for p, _, _ in parts])
    rows = np.concatenate([r.numpy() for _, r, _ in parts])
    pos = np.concatenate([q.numpy() for _, _, q in parts])
    assert pts.shape == (N * G, C) and len(parts) == len(loader)
    flat = rows * G + pos
    assert np.array_equal(np.sort(flat), np.arange(N * G))  # every (sample, point) exactly once
    expected = field.reshape(N, C, G)[rows, :, pos]  # independent gather of the same points
    assert np.array_equal(pts, expected)
    assert all(len(p) == 500 for p, _, _ in parts[:-1])
    if shuffle_buffer:
        assert not np.array_equal(flat, np.arange(N * G))


def test_same_seed_same_order_new_epoch_new_order(store) -> None:
    def order(loader) -> list[int]:
        return np.concatenate([r.numpy() for _, r in loader]).tolist()

    a = store.loader(HOOK, batch_size=2, shuffle_buffer=6, seed=11, return_index=True)
    b = store.loader(HOOK, batch_size=2, shuffle_buffer=6, seed=11, return_index=True)
    first_a, first_b = order(a), order(b)
    assert first_a == first_b
    second_a = order(a)
    assert second_a != first_a and sorted(second_a) == list(range(N))
    assert order(store.loader(HOOK, batch_size=2, shuffle_buffer=6, seed=12, return_index=True)) != first_a


def test_rows_subset_and_drop_last(store, field) -> None:
    train = np.array([0, 3, 4, 9, 10, 11, 18])
    loader = store.loader(HOOK, batch_size=2, shuffle_buffer=4, rows=train, return_index=True)
    xs, rows = _epoch_field(loader)
    assert sorted(rows.tolist()) == train.tolist()
    assert np.array_equal(xs, field[rows])
    dropped = list(store.loader(HOOK, batch_size=2, rows=train, drop_last=True))
    assert [len(b) for b in dropped] == [2, 2, 2]
    with pytest.raises(StoreError, match="rows must lie"):
        store.loader(HOOK, rows=[N])


def test_normalize_uses_stored_stats(store, field) -> None:
    mean, var = store.stats(HOOK)
    pts = torch.cat(list(store.loader(HOOK, view="points", batch_size=4096, normalize=True)))
    raw = field.transpose(0, 2, 3, 1).reshape(-1, C)
    expected = ((raw - mean.astype(np.float32)) / np.sqrt(var).astype(np.float32)).astype(np.float32)
    np.testing.assert_allclose(pts.numpy(), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(pts.numpy().mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(pts.numpy().std(axis=0), 1, rtol=1e-3)


def test_abandoning_an_epoch_stops_the_prefetch_thread(store) -> None:
    import threading

    it = iter(store.loader(HOOK, view="points", batch_size=7, prefetch=1))
    next(it)
    it.close()  # runs the generator's cleanup: the thread must stop, not hang on a full queue
    assert not any(t.name == "saeno-loader-prefetch" and t.is_alive() for t in threading.enumerate())


def test_bad_view_is_refused(store) -> None:
    with pytest.raises(StoreError, match="view"):
        store.loader(HOOK, view="pixels")


def test_shuffled_pool_equals_concatenating_then_taking() -> None:
    from saeno.store.loader import _shuffled

    rng = np.random.default_rng(0)
    parts = [(rng.normal(size=(n, 3, 2)).astype(np.float32), rng.integers(0, 99, n)) for n in (5, 1, 7, 4)]
    order = rng.permutation(17)
    got = _shuffled(parts, order)
    for col, expect in zip(
        got, (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    ):
        assert col.dtype == expect.dtype and np.array_equal(col, expect[order])
    first = rng.permutation(5)
    assert np.array_equal(_shuffled(parts[:1], first)[0], parts[0][0][first])
