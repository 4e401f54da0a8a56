"""``privpkg env``: environments (issue 10). The verbs live in one module per concern, each
adding its actions here: :mod:`.env_registry` (create, register, list, show, label),
:mod:`.env_lock` (lock), :mod:`.env_build` (build, path, run, prune) and :mod:`.env_docker`
(dockerfile, netrc)."""

from __future__ import annotations

import importlib
from typing import Any

from privpkg.cli.output import OneAction, add_group

#: Each module and the actions it adds, in the order of ``privpkg env --help``. A command line
#: naming one action imports its module alone (the others hold a fifth of the imports of a
#: build); ``tests/test_cli_imports.py`` checks this table against what the modules add.
MODULES = {
    "env_registry": ("create", "register", "list", "show", "label"),
    "env_lock": ("lock",),
    "env_build": ("build", "path", "run", "prune"),
    "env_docker": ("dockerfile", "netrc"),
}


def add_parser(sub: Any) -> None:
    actions = add_group(sub, "env", help="declare, register, lock, build and run environments",
                        description="Environments: named, versioned, locked specs in a workspace, built once and reused.")
    wanted = actions.wanted if isinstance(actions, OneAction) else None
    known = {action for names in MODULES.values() for action in names}
    for module, names in MODULES.items():
        if wanted is None or wanted in names or wanted not in known:
            importlib.import_module(f"privpkg.cli.{module}").add_parsers(actions)
