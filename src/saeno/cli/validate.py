"""Argument checks every verb runs before it reads or writes anything (called from ``saeno.cli.main``).

Numbers are checked by option name (``--batch-size 0``, ``--lr nan``, ``--resolution -16``), devices
by asking torch whether they exist, and output locations by finding the nearest existing folder and
trying to create a file there (so ``--out`` under a regular file, in ``/proc`` or on a read-only disk
is refused before a half-made output is left behind). Each failure is a :class:`SaenoError` naming the
flag and the fix.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from saeno.errors import SaenoError

#: options that must be positive integers when given (export checks --n-top and --max-concepts itself)
POSITIVE_INTS = (
    "batch_size",
    "n",
    "n_train",
    "n_test",
    "chunk_size",
    "resolution",
    "dpi",
    "steps",
    "epochs",
    "concepts",
    "k",
    "dead_window",
    "checkpoint_every",
    "modes",
    "n_rows",
    "max_samples",
    "lifting",
    "batch",
    "workers",
    "block_size",
)
#: options that must be integers >= 0 when given
NONNEGATIVE_INTS = ("aux_k", "hidden", "nuisance_size", "seed", "cache_mib")
#: options that must be finite numbers > 0 / >= 0 when given
POSITIVE_FLOATS = ("lr",)
NONNEGATIVE_FLOATS = ("l1", "l0", "domain_l1", "decorrelate")
#: where each verb writes: (attribute, kind) with kind "dir", "file" or "store"
OUTPUTS = {
    "capture": (("out", "store"),),
    "train": (("out", "dir"),),
    "export": (("out", "dir"),),
    "eval": (("json", "file"),),
    "intervene": (("out", "file"),),
    "demo": (("out", "dir"),),
    "store": (("hdf5", "file"),),
    "zoo": (("out", "dir"),),
}
#: fsspec protocols and the package each needs
PROTOCOL_PACKAGES = {
    "s3": "s3fs",
    "s3a": "s3fs",
    "gs": "gcsfs",
    "gcs": "gcsfs",
    "az": "adlfs",
    "abfs": "adlfs",
    "hf": "huggingface_hub",
}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _values(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def check_numbers(args: argparse.Namespace) -> None:
    """Refuse zero, negative or non-finite values of the options listed above."""
    for name in POSITIVE_INTS + NONNEGATIVE_INTS:
        for v in _values(getattr(args, name, None)):
            if v is None:
                continue
            low = 1 if name in POSITIVE_INTS else 0
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                what = "a positive integer" if low else "an integer >= 0"
                raise SaenoError(f"{_flag(name)} must be {what}, got {v}")
    for name in POSITIVE_FLOATS + NONNEGATIVE_FLOATS:
        v = getattr(args, name, None)
        if v is None:
            continue
        ok = (
            isinstance(v, (int, float))
            and math.isfinite(v)
            and (v > 0 if name in POSITIVE_FLOATS else v >= 0)
        )
        if not ok:
            what = "a positive finite number" if name in POSITIVE_FLOATS else "a finite number >= 0"
            raise SaenoError(f"{_flag(name)} must be {what}, got {v}")
    frac = getattr(args, "domain_frac", None)
    if frac is not None and not (math.isfinite(frac) and 0 < frac <= 1):
        raise SaenoError(f"--domain-frac must lie in (0, 1], got {frac}")


def check_device(value: str | None, flag: str = "--device") -> None:
    """Refuse a device torch does not know or this machine does not have."""
    if value is None:
        return
    import torch

    try:
        dev = torch.device(value)
    except (RuntimeError, ValueError, TypeError):
        raise SaenoError(f"{flag} {value!r} is not a device: use cpu, cuda, cuda:N or mps") from None
    if dev.type == "cpu":
        return
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise SaenoError(
                f"{flag} {value}: no CUDA GPU is available here (or this torch is a CPU "
                "build): use --device cpu"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise SaenoError(
                f"{flag} {value}: this machine has {torch.cuda.device_count()} CUDA "
                "device(s), numbered from 0"
            )
        return
    if dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise SaenoError(f"{flag} {value}: Apple's MPS device is not available here: use --device cpu")
        return
    raise SaenoError(f"{flag} {value!r}: saeno runs on cpu, cuda or mps devices")


def _nearest_existing(path: Path) -> Path:
    for parent in (path, *path.parents):
        if parent.exists():
            return parent
    return Path("/")  # pragma: no cover


def _check_writable(folder: Path, target: Path, flag: str) -> None:
    try:
        fd, probe = tempfile.mkstemp(prefix=".saeno-write-test-", dir=folder)
    except OSError as exc:
        raise SaenoError(
            f"{flag} {target}: cannot write in {folder} ({exc.strerror}); choose a location you can write to"
        ) from None
    os.close(fd)
    os.unlink(probe)


def check_output(value: str | None, kind: str, flag: str) -> None:
    """Refuse an output location that cannot be written (checked without creating it)."""
    if value is None:
        return
    text = str(value)
    if "://" in text and not text.startswith("file://"):
        check_protocol(text, flag)
        return
    path = Path(text.removeprefix("file://")).expanduser().absolute()
    base = _nearest_existing(path)
    if not base.is_dir():
        raise SaenoError(f"{flag} {value}: {base} is a file, not a folder; choose another location")
    if kind == "dir" and path.exists() and not path.is_dir():
        raise SaenoError(f"{flag} {value} is a file; {flag} names a folder: choose another location")
    if kind == "file":
        if path.is_dir():
            raise SaenoError(f"{flag} {value} is a folder; {flag} names a file")
        if base != path and base != path.parent:
            raise SaenoError(
                f"{flag} {value}: the folder {path.parent} does not exist; create it "
                "first or choose another location"
            )
    _check_writable(base, path, flag)


def check_protocol(url: str, flag: str) -> None:
    """Refuse an fsspec URL whose file-system package is not installed."""
    protocol = url.split("://", 1)[0].lower()
    try:
        import fsspec

        fsspec.get_filesystem_class(protocol)
    except ImportError:
        package = PROTOCOL_PACKAGES.get(protocol, f"the fsspec back-end for {protocol}://")
        raise SaenoError(
            f"{flag} {url}: {protocol}:// needs the package {package}: pip install {package}"
        ) from None
    except ValueError:
        raise SaenoError(
            f"{flag} {url}: {protocol}:// is not a protocol fsspec knows; use a local "
            "path or a URL such as s3://bucket/store"
        ) from None


def check_modes(modes: int, grid: tuple[int, ...], flag: str = "--modes") -> None:
    """Refuse more Fourier modes than the grid resolves (above its Nyquist limit)."""
    if not grid:
        return
    limit = (min(grid) + 1) // 2
    if modes > limit:
        raise SaenoError(
            f"{flag} {modes} is above the Nyquist limit of the {'x'.join(map(str, grid))} "
            f"grid: at most {limit} modes per dimension; pass {flag} {limit} or fewer"
        )


def check(args: argparse.Namespace) -> None:
    """Every check that applies to the parsed arguments of one verb."""
    check_numbers(args)
    if hasattr(args, "device"):
        check_device(getattr(args, "device", None))
    verb = getattr(args, "verb", None)
    if verb == "store" and getattr(args, "action", None) != "export":
        return
    for attr, kind in OUTPUTS.get(verb or "", ()):
        value = getattr(args, attr, None)
        if isinstance(value, str):
            check_output(value, kind, _flag(attr))


def disk_error(exc: OSError) -> str | None:
    """A message for an OSError the user can fix (full, read-only or forbidden disk), else None."""
    import errno

    fixes = {
        errno.ENOSPC: "the disk is full: free some space (or choose another location) and run again "
        "(capture and train: add --resume to continue)",
        errno.EDQUOT: "the disk quota is exceeded: free some space and run again",
        errno.EROFS: "the file system is read-only: choose another location",
        errno.EACCES: "permission denied: choose a location you can write to",
    }
    fix = fixes.get(exc.errno)
    if fix is None:
        return None
    where = f" ({exc.filename})" if exc.filename else ""
    return f"{exc.strerror or exc}{where}: {fix}"
