"""What the test run collects: the conda plugin (``privpkg/conda/plugin.py``) is left out when
conda is absent.

A plugin (not a hook in ``tests/conftest.py``) because a conftest's hooks see only its own
directory, and ``--doctest-modules`` collects ``src/privpkg`` too.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest


def _conda_importable() -> bool:
    return importlib.util.find_spec("conda") is not None


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """``--doctest-modules`` imports every module under src/privpkg; the conda plugin imports
    conda, which only a conda install has, so it is left out when conda is absent. The rest of
    ``privpkg.conda`` never imports conda and is collected everywhere."""
    if collection_path.name == "plugin.py" and collection_path.parent.name == "conda" and not _conda_importable():
        return True
    return None
