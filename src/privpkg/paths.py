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


def cache_dir() -> Path:
    """What privpkg can rebuild (environment builds and their fetched files): the user cache dir
    (``~/.cache/privpkg`` on Linux), or ``PRIVPKG_HOME/cache``. Made private (0700) when it is
    made, and tightened when it is the user's own: it holds private wheels and registry copies,
    which other local users must not read whatever the umask."""
    home = os.environ.get(envvars.HOME)
    if home:
        folder = Path(home) / "cache"
    else:
        import platformdirs

        folder = Path(platformdirs.user_cache_dir(APP, appauthor=False))
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
