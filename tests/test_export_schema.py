"""The concepts.json validator accepts a well-formed document and names what is wrong otherwise."""

import copy
import json

import pytest

from saeno.errors import SaenoError
from saeno.export.schema import (
    SCHEMA_VERSION,
    ConceptsSchemaError,
    load_concepts,
    validate_concepts,
)


def make_concept(k, *, page=True, name=None, label=None):
    return {
        "index": k,
        "name": name or f"concept {k}",
        "label": label,
        "rank": k,
        "stats": {
            "mean_activation": 1.0 + k,
            "max_activation": 2.0 + k,
            "sample_density": 0.5,
            "point_density": 0.25,
            "dead": False,
        },
        "histogram": {"edges": [0.0, 1.0, 2.0], "counts": [1, 2]},
        "top_examples": [{"row": 3, "activation": 2.0}],
        "quantile_examples": [{"quantile": 0.5, "row": 1, "activation": 1.0}],
        "correlated": [{"index": 1 - k if k < 2 else 0, "correlation": 0.5}],
        "effect": {
            "n_samples": 1,
            "rel_change": 0.1,
            "err_clean": 0.2,
            "err_ablated": 0.3,
            "per_sample": [{"row": 3, "rel_change": 0.1, "err_clean": 0.2, "err_ablated": 0.3}],
        },
        "params": {"nu": {"top_mean": 1.0, "overall_mean": 0.5, "overall_std": 0.1, "correlation": None}},
        "labels": {"family": {"top": {"a": 1.0}, "overall": {"a": 0.5, "b": 0.5}, "enriched": "a"}},
        "figures": {"atom": f"figures/concept_{k:05d}_atom.png"} if page else {},
        "page": f"concepts/concept_{k:05d}.html" if page else None,
    }


def make_doc(n=2, **concept_kwargs):
    return {
        "schema": "saeno.concepts",
        "version": SCHEMA_VERSION,
        "saeno_version": "0.1.0",
        "created": "2026-01-01T00:00:00+00:00",
        "sae": {
            "architecture": "SAE",
            "n_concepts": n,
            "in_channels": 4,
            "ndim": 2,
            "config": {"architecture": "SAE"},
            "path": None,
        },
        "store": {
            "path": "/tmp/s.zarr",
            "hook": "blocks.1.hook_out",
            "fingerprint": "ab",
            "grid": [8, 8],
            "n_rows": 10,
        },
        "model": {"name": "tiny", "fingerprint": "ab"},
        "ablation": {"done": True, "method": "zero ablation", "reason": None},
        "definitions": {"activation": "rms"},
        "resolutions": [[8, 8], [16, 16]],
        "arrays": "arrays.zarr",
        "figures_for": list(range(n)),
        "overview": {"density_figure": None},
        "concepts": [make_concept(k, **concept_kwargs) for k in range(n)],
    }


def test_valid_document_passes_and_round_trips(tmp_path):
    doc = make_doc()
    assert validate_concepts(doc) is doc
    (tmp_path / "concepts.json").write_text(json.dumps(doc))
    assert load_concepts(tmp_path) == doc
    assert load_concepts(tmp_path / "concepts.json") == doc


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.pop("store"), "'store'"),
        (lambda d: d["concepts"][1]["stats"].pop("dead"), "concepts[1].stats"),
        (
            lambda d: d["concepts"][0]["stats"].__setitem__("sample_density", "high"),
            "sample_density must be a number",
        ),
        (lambda d: d["concepts"][0]["stats"].__setitem__("mean_activation", float("nan")), "null"),
        (lambda d: d["concepts"][0].__setitem__("rank", True), "rank must be a integer"),
        (lambda d: d["concepts"].reverse(), "indices 0 .. 1"),
        (lambda d: d.__setitem__("figures_for", [5]), "figures_for"),
        (lambda d: d["concepts"][0]["labels"]["family"]["top"].__setitem__("a", "x"), "['a']"),
        (lambda d: d.__setitem__("version", SCHEMA_VERSION + 1), "export again"),
        (lambda d: d.__setitem__("schema", "other"), "not a concepts file"),
    ],
)
def test_invalid_documents_are_rejected_with_the_place(mutate, message):
    doc = copy.deepcopy(make_doc())
    mutate(doc)
    with pytest.raises(ConceptsSchemaError) as info:
        validate_concepts(doc)
    assert message in str(info.value)
    assert isinstance(info.value, SaenoError)


def test_load_concepts_reports_missing_and_broken_files(tmp_path):
    with pytest.raises(ConceptsSchemaError, match="saeno export"):
        load_concepts(tmp_path)
    (tmp_path / "concepts.json").write_text("{not json")
    with pytest.raises(ConceptsSchemaError, match="not valid JSON"):
        load_concepts(tmp_path)
