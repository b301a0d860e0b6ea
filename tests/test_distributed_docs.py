"""Every torchrun command that ``docs/distributed.md`` shows runs, with every flag it shows.

The commands are read from the page's bash blocks and run for real (``python -m
torch.distributed.run``, 2 CPU processes with gloo) at a tiny size: the paths become temporary ones,
the model a tiny FNO folder, the dataset a small ``.pt`` file, the sizes small; every flag stays.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from distributed_worker import free_port

DOC = Path(__file__).resolve().parents[1] / "docs" / "distributed.md"

#: flag -> tiny value (the flags keep their place in the command)
TINY = {
    "--nproc-per-node": "2",
    "--nnodes": "1",
    "--concepts": "16",
    "--k": "2",
    "--batch-size": "64",
    "--steps": "4",
    "--checkpoint-every": "2",
    "--hook": "blocks.2.hook_out",
}


def documented_commands() -> list[list[str]]:
    """The torchrun commands of the page's ```bash blocks, continuation lines joined."""
    text = DOC.read_text(encoding="utf-8")
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.split(" #", 1)[0].strip()
            if line.startswith("torchrun "):
                commands.append(shlex.split(line))
    return commands


def _tiny(argv: list[str], paths: dict[str, str]) -> list[str]:
    out = [sys.executable, "-m", "torch.distributed.run"]
    args = argv[1:]
    i = 0
    while i < len(args):
        a = args[i]
        if a in TINY and i + 1 < len(args):
            out += [a, TINY[a]]
            i += 2
            continue
        if a == "--rdzv-endpoint":
            out += [a, f"127.0.0.1:{free_port()}"]
            i += 2
            continue
        if a in ("--model", "--dataset", "--out", "--store"):
            out += [a, paths[args[i + 1]]]
            i += 2
            continue
        out.append(a)
        i += 1
    return out


@pytest.fixture(scope="module")
def tiny_inputs(tmp_path_factory) -> tuple[Path, Path]:
    """A 3-layer FNO folder (hidden 8) and a 600-sample ``.pt`` dataset on a 16x16 grid (3 store
    chunks, so that each of the 2 training processes gets one)."""
    from neuralop.models import FNO

    from saeno.zoo import save_model

    root = tmp_path_factory.mktemp("docs")
    torch.manual_seed(0)
    fno = FNO(n_modes=(4, 4), in_channels=1, out_channels=1, hidden_channels=8, n_layers=3)
    model = save_model(fno.eval(), root / "model", {"name": "tiny"})
    g = torch.Generator().manual_seed(1)
    data = root / "data.pt"
    torch.save(
        {"x": torch.randn(600, 1, 16, 16, generator=g), "y": torch.randn(600, 1, 16, 16, generator=g)}, data
    )
    return model, data


def test_the_page_shows_capture_and_train_commands():
    verbs = [c[c.index("saeno") + 1] for c in documented_commands()]
    assert "capture" in verbs and "train" in verbs


def test_every_documented_torchrun_command_runs(tmp_path, tiny_inputs):
    model, data = tiny_inputs
    stores: dict[str, str] = {}

    def path_of(value: str) -> str:
        if value.endswith(".zarr"):
            return stores.setdefault(value, str(tmp_path / f"store{len(stores)}.zarr"))
        return str(tmp_path / Path(value).name)

    for argv in documented_commands():
        paths = {}
        for flag, value in zip(argv, argv[1:]):
            if flag == "--model":
                paths[value] = str(model)
            elif flag == "--dataset":
                paths[value] = str(data)
            elif flag in ("--out", "--store"):
                paths[value] = path_of(value)
        cmd = _tiny(argv, paths)
        if "train" in argv and not any(p.endswith(".zarr") and Path(p).exists() for p in stores.values()):
            pytest.fail(f"{' '.join(argv)}: no store was captured before it")
        cmd += ["--no-progress"]
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"}
        )
        assert proc.returncode == 0, f"{shlex.join(cmd)}\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
        verb = argv[argv.index("saeno") + 1]
        assert "with 2 processes" in proc.stdout, proc.stdout[-2000:]
        if verb == "train":
            from saeno.train.checkpoint import load_sae

            out = Path(paths[argv[argv.index("--out") + 1]])
            assert load_sae(out).metadata["world_size"] == 2
