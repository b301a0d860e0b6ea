"""Exceptions that carry a user-facing message: what is wrong and how to fix it.

The CLI prints these without a traceback; everything else is a bug and keeps its traceback.
"""


class SaenoError(Exception):
    """Base class for errors caused by user input (files, names, shapes, options)."""


class HookNameError(SaenoError, KeyError):
    """A hook name or filter that matches no hook point."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ShapeError(SaenoError, ValueError):
    """An input or activation with the wrong shape."""


class StoreError(SaenoError):
    """A store that is missing, incompatible with the request, or damaged."""


class ModelMismatchError(StoreError):
    """A model or SAE that is not the one whose activations a store holds (fingerprints differ)."""


class LabelError(SaenoError, ValueError):
    """Labels that are missing or do not fit the supervised SAE's factors (unknown factor or category, bad shape)."""


class DataFormatError(SaenoError, ValueError):
    """A data file that does not have the layout its reader expects."""


class UntrustedFileError(SaenoError):
    """A file that needs unpickling and was not marked trusted."""
