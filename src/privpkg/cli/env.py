"""``privpkg env``: environments (issue 10). The verbs live in one module per concern, each
adding its actions here: :mod:`.env_registry` (create, register, list, show, label),
:mod:`.env_lock` (lock), :mod:`.env_build` (build, path, run, prune) and :mod:`.env_docker`
(dockerfile)."""

from __future__ import annotations

from typing import Any

from privpkg.cli import env_build, env_docker, env_lock, env_registry
from privpkg.cli.output import add_group


def add_parser(sub: Any) -> None:
    actions = add_group(sub, "env", help="declare, register, lock, build and run environments",
                        description="Environments: named, versioned, locked specs in a workspace, built once and reused.")
    for module in (env_registry, env_lock, env_build, env_docker):
        module.add_parsers(actions)
