"""``privpkg.Environment``: azureml v1's names over the spec, the sources and the registry.

    import privpkg
    env = privpkg.Environment.from_conda_specification("train", "environment.yml")
    env = env.register("team")                      # version 1; unchanged: the same version, nothing written
    env = privpkg.Environment.get("team", "train")  # the latest; or version=1, or label="prod"
    env.set_label("team", "prod")
    privpkg.Environment.list("team")                # {"train": Environment(train:1)}
    env.save_to_directory("env-dir")                # what `privpkg env create` writes
    privpkg.Environment.load_from_directory("env-dir")

A directory holds ``definition.json``, ``spec/`` (the files as given) and, once locked or
registered, the locks (``pylock.toml``, ``conda-PLATFORM.txt``). ``register`` stores the locks a
directory brings in canonical form (:func:`checked_locks`, then the registry's rewrite); without any, it asks
:func:`privpkg.environments.locking.lock_spec` for them (issue 10's lock part). Setting
``version`` asserts it: registering other content under an existing version is an error.

``register`` and ``save_to_directory`` warn (:class:`SecretLikeVariableWarning`, a
``UserWarning``, once per name) about variables whose names look like secrets': their values
are stored as written, and may be public settings, so it is a warning, not a refusal.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from privpkg.environments import registry, screen, sources
from privpkg.environments.registry import open_registry
from privpkg.environments.spec import Spec, load_definition
from privpkg.errors import NotFoundError, UsageError, shown

if TYPE_CHECKING:
    from privpkg.workspace import Workspace

SecretLikeVariableWarning = screen.SecretLikeVariableWarning

def lock(spec: Spec, previous: Mapping[str, str] | None) -> dict[str, str]:
    """The locks of ``spec`` (:func:`privpkg.environments.locking.lock_spec`), keeping the
    previous version's pins."""
    from privpkg.environments.build import build_conda
    from privpkg.environments.locking import lock_spec

    return lock_spec(spec.definition(), previous=dict(previous) if previous else None, upgrade=False, conda_prefix=build_conda)


def checked_locks(spec: Spec, locks: Mapping[str, str]) -> dict[str, str]:
    """Locks brought by a directory (or set by hand) held to the rules of the locks privpkg
    makes: ``pylock.toml`` read and written again (:mod:`.pylock` refuses a signature, a
    password in user info, a local file or path, and strips a username alone), each conda list
    read (:func:`.condalock.load_explicit`: https/http URLs with sha256, no token), and none
    empty when the spec has something to lock."""
    from privpkg.environments import condalock, pylock

    out = {}
    for name, text in locks.items():
        if name == registry.PYLOCK:
            lock_ = pylock.load(text)
            if spec.pip and not lock_.packages:
                raise UsageError(f"environment {spec.name}: {name} locks no package, but the spec has pip requirements")
            out[name] = pylock.dump(lock_)
        else:
            if not condalock.load_explicit(text) and spec.conda:
                raise UsageError(f"environment {spec.name}: {name} locks no package, but the spec has conda dependencies")
            out[name] = text
    return out


class Environment:
    """A named environment: its :class:`~privpkg.environments.spec.Spec`, its locks, and, once
    registered or fetched, its ``version``."""

    def __init__(self, spec: Spec, locks: Mapping[str, str] | None = None, version: int | None = None,
                 digest: str | None = None) -> None:
        self.spec = spec
        self.locks: dict[str, str] = dict(locks or {})
        self.version = version
        self.digest = digest
        #: Whether the last register() made a new version (False: it found this content).
        self.created = False

    def __repr__(self) -> str:
        return f"Environment({self.name}:{self.version if self.version is not None else 'unregistered'})"

    @property
    def name(self) -> str:
        return self.spec.name

    # --- from what users have ---------------------------------------------------------------

    # ``platforms``: conda platforms to lock for besides this machine's (``osx-arm64``, ``win-64``...;
    # added to an environment.yml's own ``platforms:``). Only a conda part can be locked for
    # another platform: a spec with a pip part that names one is refused when it is locked.

    @classmethod
    def from_conda_specification(cls, name: str, file_path: str | os.PathLike[str], *, platforms: Iterable[str] = ()) -> Environment:
        return cls(sources.from_conda_specification(name, file_path).with_platforms(platforms))

    @classmethod
    def from_pip_requirements(cls, name: str, file_path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], *,
                              platforms: Iterable[str] = ()) -> Environment:
        """From a requirements file, or several merged in order (as pip merges repeated ``-r``)."""
        return cls(sources.from_pip_requirements(name, file_path).with_platforms(platforms))

    @classmethod
    def from_existing_conda_environment(cls, name: str, conda_environment_name: str, *, platforms: Iterable[str] = ()) -> Environment:
        return cls(sources.from_existing_conda_environment(name, conda_environment_name).with_platforms(platforms))

    @classmethod
    def from_existing_virtualenv(cls, name: str, path: str | os.PathLike[str], *, platforms: Iterable[str] = ()) -> Environment:
        return cls(sources.from_existing_virtualenv(name, path).with_platforms(platforms))

    # --- the workspace ----------------------------------------------------------------------

    def register(self, workspace: str | Workspace) -> Environment:
        """Store this environment in ``workspace``: the version whose content it is (nothing
        written, two storage requests), or a new one. Its locks: those it has, else made now
        (keeping the previous version's pins); an unchanged spec without locks keeps the
        version's locks in the workspace (``Environment.get`` reads them)."""
        _, store = open_registry(workspace)
        locks = self.locks
        if not locks and self.version is None:
            same = registry.find_unchanged(store, self.spec)
            if same is not None:  # two requests, nothing read or written beyond them
                self.version, self.digest, self.created = same.version, same.digest, False
                self._warn_variables()
                return self
            previous = None
            try:
                previous = registry.get(store, self.name).locks
            except (NotFoundError, registry.IncompleteVersion):
                pass  # nothing to keep pins from: lock afresh (the same content completes a version)
            locks = lock(self.spec, previous)
        else:
            locks = checked_locks(self.spec, locks)
        rec = registry.register(store, self.spec, locks, version=self.version)
        self.version, self.digest, self.locks, self.created = rec.version, rec.digest, dict(locks), rec.created
        self._warn_variables()
        return self

    def _warn_variables(self) -> None:
        # After the work succeeded, as the CLI's lines are: a refusal stays one error alone.
        screen.warn_variables((n for n, _ in self.spec.variables), stacklevel=4)

    @staticmethod
    def get(workspace: str | Workspace, name: str, version: int | str | None = None, label: str | None = None) -> Environment:
        if version is not None and label is not None:
            raise UsageError("give a version or a label, not both")
        _, store = open_registry(workspace)
        from privpkg.environments.spec import validate_version

        rec = registry.get(store, name, None if version is None else validate_version(version), label)
        return Environment(rec.spec, rec.locks, rec.version, rec.digest)

    @staticmethod
    def list(workspace: str | Workspace) -> dict[str, Environment]:
        """Each environment's latest version, by name, with its definition (its spec files and
        locks are not read: ``get`` one for them)."""
        _, store = open_registry(workspace)
        out = {}
        for name, rec in registry.list_environments(store).items():
            out[name] = Environment(registry.read_definition(store, rec), version=rec.version, digest=rec.digest)
        return out

    def set_label(self, workspace: str | Workspace, label: str, remove: bool = False) -> None:
        """Point ``label`` at this registered version (``remove``: take the label away)."""
        if self.version is None:
            raise UsageError(f"environment {self.name} is not registered; register it first")
        _, store = open_registry(workspace)
        registry.set_label(store, self.name, label, None if remove else self.version)

    def build_local(self, workspace: str | Workspace | None = None, *, python: str | None = None,
                    link: str | os.PathLike[str] | None = None, report: Callable[[str], None] | None = None) -> Path:
        """The local environment this version's lock describes (a venv, or a conda prefix for a
        conda spec), built now unless the cache has it (``privpkg env build``). Without locks in
        hand, a registered version's are read from ``workspace``. ``report`` gets the line
        ``env build`` prints when it makes a conda prefix (which installer made it)."""
        from privpkg.environments.build import build, lock_for

        locks = self.locks
        if not locks:
            if self.version is None or workspace is None:
                raise UsageError(f"environment {self.name} has no lock yet: register it (or give the workspace it is registered in)")
            locks = Environment.get(workspace, self.name, self.version).locks
        return build(lock_for(self.spec, locks, f"environment {self.name}"), python=python,
                     link=None if link is None else Path(link), report=report)

    # --- directories --------------------------------------------------------------------------

    def save_to_directory(self, path: str | os.PathLike[str], overwrite: bool = False) -> Path:
        """Write ``definition.json``, ``spec/`` and the locks into the directory ``path``
        (made anew; an existing one only with ``overwrite``)."""
        from privpkg.fileio import replace_dir

        dest = Path(path)
        if dest.exists() and not overwrite:
            raise UsageError(f"{shown(dest)} exists; choose another directory or replace it (privpkg env create --force, "
                             "overwrite=True)")
        if dest.exists() and not dest.is_dir():  # never replaced, and never an OSError's line about it
            raise UsageError(f"{shown(dest)} is a file, not an environment directory; refusing to replace it")
        if dest.exists() and not (dest / registry.DEFINITION).is_file() and any(dest.iterdir()):
            raise UsageError(f"{shown(dest)} is not an environment directory; refusing to replace it")
        files = registry.version_files(self.spec, self.locks)
        registry.screen_files(files)  # a definition directory is often committed: no secret in it either

        def fill(new: Path) -> None:
            for rel, data in files.items():
                target = new / rel
                target.parent.mkdir(exist_ok=True)
                target.write_bytes(data)

        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a target that cannot be written: exit 1, naming it
            from privpkg.fileio import FileWriteError

            why = "Not a directory" if isinstance(exc, (FileExistsError, NotADirectoryError)) else exc.strerror or type(exc).__name__
            raise FileWriteError(f"cannot write {shown(dest)}: {why}", exc.errno) from None
        replace_dir(dest, fill)
        self._warn_variables()
        return dest

    @classmethod
    def load_from_directory(cls, path: str | os.PathLike[str]) -> Environment:
        """The environment a directory written by :meth:`save_to_directory` describes."""
        folder = Path(path)
        definition = folder / registry.DEFINITION
        # A missing directory, or one of the wrong kind, is bad input (README: exit 2).
        if not folder.exists():
            raise UsageError(f"no such definition directory: {shown(folder)} (make one with: privpkg env create)")
        if not definition.is_file():
            raise UsageError(f"{shown(folder)} has no {registry.DEFINITION} (make one with: privpkg env create)")
        # The directory may be someone else's commit: its files are read without following links.
        spec = load_definition(sources.read_file(definition, follow=False))
        spec_dir = folder / "spec"
        given: tuple[tuple[str, bytes], ...] = ()
        if spec_dir.is_dir() and not spec_dir.is_symlink():
            files = [p for p in sorted(spec_dir.iterdir()) if not p.is_dir() or p.is_symlink()]
            given = tuple((p.name, sources.read_file(p, follow=False)) for p in files)
            for p, (_, data) in zip(files, given, strict=True):
                sources.decode(p, data)  # UTF-8 only (registry.screen_files says why): refused here, naming the file
        elif spec_dir.is_symlink():
            raise UsageError(f"{shown(spec_dir)} is a symbolic link; a definition directory holds plain files")
        spec = Spec.from_definition(spec.definition(), given)
        locks = {}
        for p in sorted(folder.iterdir()):
            if registry.is_lock_name(p.name):
                locks[p.name] = sources.decode(p, sources.read_file(p, follow=False))
        return cls(spec, locks)
