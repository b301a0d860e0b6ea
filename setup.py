"""Package list for setuptools: the library under src/ plus the preset folders at the top level.

``hooks/`` (hook-point presets) and ``datasets/`` (dataset cards) live at the repository root, where a
reader looks for them, and ship inside the wheel as the data packages ``saeno._hooks`` and
``saeno._datasets`` (mapped in pyproject.toml).
"""

from setuptools import find_packages, setup

setup(packages=find_packages("src") + ["saeno._hooks", "saeno._datasets"])
