"""One vocabulary across the CLI verbs: ``--device``, ``--no-progress`` and the row limit
``--max-samples`` in every verb that runs a model, old spellings still parsed with a warning, and no
flag that torchrun's own parser would take for one of its options."""

from __future__ import annotations

import argparse

import pytest

from saeno.cli.common import ROWS_FLAG, DeprecatedFlag
from saeno.cli.main import build_parser

#: the verbs that run a model, with their required arguments
VERBS = {
    "demo": ["demo"],
    "zoo train": ["zoo", "train", "darcy-fno"],
    "capture": ["capture", "--model", "m", "--dataset", "d", "--hooks", "*", "--out", "o"],
    "train": ["train", "--store", "s", "--out", "o"],
    "eval": ["eval", "--sae", "a", "--store", "s"],
    "explain": ["explain", "--sae", "a", "--store", "s", "--out", "o"],
    "export": ["export", "--sae", "a", "--store", "s", "--out", "o"],
    "intervene": ["intervene", "--sae", "a", "--store", "s", "--model", "m", "--set", "f=v", "--out", "o"],
    "audit": ["audit", "--sae", "a", "--train-store", "t", "--store", "s", "--out", "o"],
}
#: the verbs with a row limit
ROW_VERBS = ["capture", "eval", "explain", "export", "audit"]


def _parse(argv: list[str]) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def _shows_progress(args: argparse.Namespace) -> bool:
    return getattr(args, "progress", None) if hasattr(args, "progress") else not args.no_progress


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_every_verb_takes_device_and_no_progress(verb):
    args = _parse([*VERBS[verb], "--device", "cpu", "--no-progress"])
    assert args.device == "cpu"
    assert _shows_progress(args) is False
    assert _shows_progress(_parse(VERBS[verb])) is True


@pytest.mark.parametrize("verb", ROW_VERBS)
def test_the_row_limit_is_one_flag(verb):
    assert _parse([*VERBS[verb], ROW_FLAG := ROWS_FLAG, "7"]).max_samples == 7, ROW_FLAG


@pytest.mark.parametrize(
    ("verb", "old", "value", "attr", "expected"),
    [
        ("capture", "--n", "5", "max_samples", 5),
        ("eval", "--n", "5", "max_samples", 5),
        ("audit", "--n", "5", "max_samples", 5),
        ("explain", "--n-rows", "5", "max_samples", 5),
        ("export", "--n-rows", "5", "max_samples", 5),
        ("explain", "--quiet", None, "no_progress", True),
        ("export", "--quiet", None, "no_progress", True),
    ],
)
def test_old_spellings_parse_and_warn(capsys, verb, old, value, attr, expected):
    args = _parse([*VERBS[verb], old] + ([value] if value else []))
    assert getattr(args, attr) == expected
    err = capsys.readouterr().err
    new = ROWS_FLAG if attr == "max_samples" else "--no-progress"
    assert f"{old} is deprecated; use {new}" in err


def _verb_parsers() -> dict[str, argparse.ArgumentParser]:
    out = {}
    for name, parser in build_parser()._subparsers._group_actions[0].choices.items():  # type: ignore[union-attr]
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if subs:
            out.update({f"{name} {k}": p for k, p in subs[0].choices.items()})
        else:
            out[name] = parser
    return out


def test_no_flag_is_a_prefix_of_a_torchrun_option():
    """torchrun's parser accepts any unambiguous prefix of its options, even after ``-m saeno VERB``
    (``--n`` was read as ``--nnodes``/``--nproc-per-node``/...): no current flag may be one."""
    from torch.distributed.run import get_args_parser

    torchrun = [o for a in get_args_parser()._actions for o in a.option_strings if o.startswith("--")]
    clashes = []
    for verb, parser in _verb_parsers().items():
        for action in parser._actions:
            if isinstance(action, DeprecatedFlag):
                continue
            for flag in action.option_strings:
                if flag.startswith("--") and flag != "--help":
                    clashes += [f"{verb} {flag} ~ {t}" for t in torchrun if t.startswith(flag)]
    assert not clashes
    assert any(t.startswith("--n") for t in torchrun)  # the test can see the clash it guards against
