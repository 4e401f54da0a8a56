"""The ``privpkg://`` URL of workspace wheels in conda's view of an environment (``conda list``).

conda's own prefix-data loader (``conda/plugins/prefix_data_loaders/pypi``) makes one record for
each distribution that pip installed into a conda environment, with the channel ``pypi`` and the
build ``pypi_0``; it never reads ``direct_url.json``, so a wheel installed from a workspace looked
like any wheel from PyPI. privpkg's loader runs after it (conda calls the loaders in the order of
their names, not of ``tryfirst``: :data:`LOADER_NAME` sorts after ``pypi``) and, for each of those
records whose ``.dist-info/direct_url.json`` names a ``privpkg://`` URL, puts in its place a copy
(built by the caller: plugin.py, with conda's types) whose channel is that URL. ``conda list``
prints it in the Channel column and ``conda list --json`` as ``base_url`` and ``channel``.

Only the channel changes. The name, version, build (``pypi_0``), subdir (``pypi``, which conda's
solver reads to tell pip's packages from its own), package type and file list stay conda's, so
``conda remove``, ``conda env export`` and the solver treat the record as before. The URL shown
is the one pip recorded from the pip section (``privpkg://WORKSPACE/wheels/FILE.whl``): never a signed URL.
A URL that :mod:`privpkg.refs` refuses (a user part, a query, control characters), or one with
white space (conda separates its columns with spaces), is not shown
at all (the record stays ``pypi``), so nothing that could carry a secret reaches conda's output;
a fragment (pip's ``#sha256=``) is dropped.

conda runs every loader on each ``conda list``/``env export``/``compare`` (and, with
``pip_interop_enabled``, before each solve), so this reads only the ``direct_url.json`` of
records conda already found (one ``open`` each; a missing file is the common case) and imports
nothing of privpkg but the URL grammar (:mod:`privpkg.refs`, standard library only).

conda's ``env export`` writes pip's packages as ``NAME==VERSION`` whatever their record says
(conda/models/environment.py); :func:`pip_lines_with_urls` is the ``privpkg-yaml`` export format
(``conda export --format privpkg-yaml``), which writes ``NAME @ privpkg://...`` for them instead.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, MutableMapping
from pathlib import Path
from typing import Any, TypeVar

from privpkg import refs
from privpkg.errors import UsageError

#: The loader's name in conda: loaders run sorted by name, and this one must see the records of
#: conda's ``pypi`` loader ("pypi" < "pypi-privpkg").
LOADER_NAME = "pypi-privpkg"
#: conda's subdir for the records of its pypi loader (conda/core/solve.py reads it too).
PYPI_SUBDIR = "pypi"
#: direct_url.json is a few hundred bytes; a larger one is not pip's and is not read.
MAX_DIRECT_URL_BYTES = 64 * 1024

R = TypeVar("R")


def site_packages_dir(python_record: Any) -> str | None:
    """The environment's site-packages, relative to the prefix, as conda's pypi loader finds it:
    the python record's ``python_site_packages_path`` (CEP 17) or ``lib/pythonX.Y/site-packages``
    (``Lib/site-packages`` on Windows). None without a python version."""
    explicit = getattr(python_record, "python_site_packages_path", None)
    if explicit:
        return str(explicit)
    version = str(getattr(python_record, "version", "") or "")
    parts = version.split(".")
    if len(parts) < 2 or not parts[0].isdigit() or not parts[1].isdigit():
        return None
    if os.name == "nt":
        return "Lib/site-packages"
    return f"lib/python{parts[0]}.{parts[1]}/site-packages"


def privpkg_url(dist_info: Path) -> str | None:
    """The ``privpkg://`` wheel URL in ``DIST_INFO/direct_url.json`` without its fragment, or
    None: no file, not pip's format, another scheme, or a URL that :func:`privpkg.refs.parse`
    refuses (user part, query, control characters: never shown)."""
    try:
        with open(dist_info / "direct_url.json", "rb") as f:
            raw = f.read(MAX_DIRECT_URL_BYTES + 1)
    except OSError:  # no direct_url.json: installed from an index, the common case
        return None
    if len(raw) > MAX_DIRECT_URL_BYTES:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    url = data.get("url") if isinstance(data, dict) else None
    if not isinstance(url, str) or not refs.is_ref(url):
        return None
    try:
        refs.parse(url)  # the one grammar: no user part, no query, no control character
    except UsageError:
        return None
    shown = url.split("#", 1)[0]  # pip's #sha256= is not part of the reference (privpkg.refs)
    if any(c.isspace() for c in shown):  # conda prints its columns separated by spaces
        return None
    return shown


def show_privpkg_urls(prefix: str | os.PathLike[str], records: MutableMapping[str, R], with_channel: Callable[[R, str], R]) -> dict[str, R]:
    """conda's prefix-data loader: replace each pip record whose ``direct_url.json`` names a
    ``privpkg://`` URL by ``with_channel(record, url)`` in ``records``; return the replaced ones.

    ``records`` is conda's name -> record mapping after its pypi loader ran; a pip record is one
    whose ``subdir`` is ``pypi`` and whose ``fn`` is its ``.dist-info`` folder's name."""
    python = records.get("python")
    if python is None:  # conda's pypi loader found nothing either (it needs python)
        return {}
    site = site_packages_dir(python)
    if site is None:
        return {}
    site_path = Path(prefix) / site
    replaced: dict[str, R] = {}
    for name, record in list(records.items()):
        if getattr(record, "subdir", None) != PYPI_SUBDIR:
            continue
        fn = getattr(record, "fn", None)
        if not isinstance(fn, str) or not fn.endswith(".dist-info") or "/" in fn or os.sep in fn or fn.startswith("."):
            continue
        url = privpkg_url(site_path / fn)
        if url is None:
            continue
        replaced[name] = records[name] = with_channel(record, url)
    return replaced


def is_shown_url(channel: str) -> bool:
    """Whether a record's channel is a URL that :func:`show_privpkg_urls` put there."""
    return refs.is_ref(channel)


def pip_lines_with_urls(lines: list[Any], urls: Mapping[str, str]) -> list[Any]:
    """An exported environment's pip lines with each ``NAME==VERSION`` of a workspace wheel
    written as ``NAME @ URL`` (``urls``: name -> the ``privpkg://`` URL its record shows), so
    ``conda env create`` of the exported file installs the same wheel through privpkg's shim
    instead of looking the name up on the indexes. Other lines stay as conda wrote them."""
    out: list[Any] = []
    for line in lines:
        name = line.split("==", 1)[0].strip() if isinstance(line, str) and "==" in line else None
        url = urls.get(name) if name else None
        out.append(f"{name} @ {url}" if url else line)
    return out
