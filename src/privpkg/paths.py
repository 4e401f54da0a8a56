"""Where privpkg keeps its files.

``PRIVPKG_HOME`` relocates everything (tests and CI use it); otherwise the platformdirs user
data dir holds the store and the user config dir holds the key file::

    PRIVPKG_HOME=/tmp/x privpkg doctor   # store: /tmp/x/connections.store, key: /tmp/x/master.key

platformdirs is imported only when ``PRIVPKG_HOME`` is unset, because this is on the keyring
lookup path.
"""

from __future__ import annotations

import os
from pathlib import Path

from privpkg import envvars

APP = "privpkg"


#: The one line for a command that needs a user folder when no home directory can be found.
NO_HOME = "cannot tell where your files go: $HOME is unset and this user has no home directory; set HOME (keyring needs it too)"


def home_unknown() -> bool:
    """True when ``~`` means nothing: no (absolute) ``$HOME`` and no passwd entry for this uid."""
    home = os.environ.get("HOME")
    return not (home and os.path.isabs(home)) and os.path.expanduser("~") == "~"


def data_dir() -> Path:
    home = os.environ.get(envvars.HOME)
    if home:
        return Path(home)
    import platformdirs

    return Path(platformdirs.user_data_dir(APP, appauthor=False))


def config_dir() -> Path:
    home = os.environ.get(envvars.HOME)
    if home:
        return Path(home)
    import platformdirs

    return Path(platformdirs.user_config_dir(APP, appauthor=False))


def state_dir() -> Path:
    """Where privpkg keeps what it only records (the lookup log): the user state dir
    (``~/.local/state/privpkg`` on Linux), or ``PRIVPKG_HOME``."""
    home = os.environ.get(envvars.HOME)
    if home:
        return Path(home)
    import platformdirs

    return Path(platformdirs.user_state_dir(APP, appauthor=False))


def _cache_path() -> Path:
    home = os.environ.get(envvars.HOME)
    if home:
        return Path(home) / "cache"
    import platformdirs

    return Path(platformdirs.user_cache_dir(APP, appauthor=False))


def cache_dir() -> Path:
    """What privpkg can rebuild (environment builds and their fetched files): the user cache dir
    (``~/.cache/privpkg`` on Linux), or ``PRIVPKG_HOME/cache``. Made private (0700) when it is
    made, and tightened when it is the user's own: it holds private wheels and registry copies,
    which other local users must not read whatever the umask."""
    folder = _cache_path()
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = os.lstat(folder)
        if st.st_uid == os.getuid() and st.st_mode & 0o077:
            os.chmod(folder, 0o700)
    except OSError:
        pass  # the first write below it says what is wrong, in one line
    return folder


def store_path() -> Path:
    return data_dir() / "connections.store"


def key_path() -> Path:
    return config_dir() / "master.key"


def unwritable_hint(message: str, err: int | None) -> str:
    """For an error ``message`` (with ``err``) that failed to write under one of privpkg's user
    folders, the variables that move that folder (``"; ... set XDG_CACHE_HOME ..."``); else
    ``""``, as when ``PRIVPKG_HOME`` is set (the user chose that folder, and the message names
    it)."""
    import errno
    import sys

    # A read-only home (a CI job's, or a container's) or one owned by another user.
    if err not in (errno.EACCES, errno.EPERM, errno.EROFS) or os.environ.get(envvars.HOME) or home_unknown():
        return ""

    # platformdirs honours the XDG variables on Linux and the BSDs, not on macOS or Windows.
    xdg = not sys.platform.startswith(("darwin", "win", "cygwin"))
    for where, variable in ((_cache_path, "XDG_CACHE_HOME"), (state_dir, "XDG_STATE_HOME"),
                            (data_dir, "XDG_DATA_HOME"), (config_dir, "XDG_CONFIG_HOME")):
        try:
            folder, home = where(), Path.home()
        except (ImportError, RuntimeError, KeyError, OSError):  # a hint never replaces the error it adds to
            return ""
        if _names(message, folder, home):
            moved = f"{variable} (this folder only) or {envvars.HOME} (all of privpkg's files)" if xdg else envvars.HOME
            return f"; {folder} is not writable here: set {moved} to a writable folder"
    return ""


def _names(message: str, folder: Path, home: Path) -> bool:
    """Whether ``message`` names ``folder``, a path in it, or a parent of it inside ``home`` (the
    parent that could not be made: ``~/.config`` for ``~/.config/privpkg``)."""
    text = str(folder)
    if any(message[i + len(text):i + len(text) + 1] in ("", "/", ":", " ", ";", ",") for i in _find_all(message, text)):
        return True
    for parent in folder.parents:
        if parent == home or home not in parent.parents:
            break
        text = str(parent)
        if any(message[i + len(text):i + len(text) + 1] in ("", ":", " ", ";", ",") for i in _find_all(message, text)):
            return True
    return False


def _find_all(message: str, text: str) -> list[int]:
    found, i = [], message.find(text)
    while i >= 0:
        found.append(i)
        i = message.find(text, i + 1)
    return found
