"""Error messages in the CLI's own terms: Python keyword syntax (``overwrite=True``) becomes CLI flags."""

from __future__ import annotations

import re

_KWARGS = r"(?:\b[a-z][a-z0-9_]*=(?:True|False)?/?)+"
# "trust=True (CLI: --trust)", "resume=True (--resume)", "x_key=/y_key= (CLI --x-key/--y-key)"
_WITH_FLAGS = re.compile(rf"({_KWARGS})\s*\((?:CLI:?\s*)?(--[a-z0-9-]+(?:\s*(?:,|/|or)\s*--[a-z0-9-]+)*)\)")
_KWARG = re.compile(r"\b([a-z][a-z0-9_]*)=(True\b|(?=[\s/,).;:]|$))")
# Python argument names whose CLI flag is not the name with dashes
_RENAMED = {"channels_squeezed": "no-channels", "hooks": "hooks", "model_config": "model-config"}


def cli_message(message: str) -> str:
    """``message`` with Python keyword arguments replaced by the CLI flags that set them."""
    message = _WITH_FLAGS.sub(lambda m: m.group(2), message)

    def flag(m: re.Match[str]) -> str:
        name = m.group(1)
        return "--" + _RENAMED.get(name, name.replace("_", "-"))

    return _KWARG.sub(flag, message)
