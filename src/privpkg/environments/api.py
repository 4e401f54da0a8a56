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

Where azureml v1 differs (README "Python API" has the whole table): an environment is made
from a file or an environment (``Environment("name")`` alone is refused with the constructor to
use); ``register`` returns the same object, now with its ``version``; ``build_local`` returns the
built environment's path; ``Environment.label(workspace, name, version, labels)`` and
``add_private_pip_wheel(workspace, file_path, exist_ok)`` are v1's.

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
from privpkg.errors import NotFoundError, PrivpkgError, UsageError, shown

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


def _workspace_arg(workspace: object) -> str | Workspace:
    """``workspace`` as the registry takes it: a name, or a :class:`privpkg.workspace.Workspace`.
    Anything else (None, azureml's ``Workspace`` object) is one clear error, not an AttributeError."""
    from privpkg.workspace import Workspace

    if isinstance(workspace, (str, Workspace)):
        return workspace
    raise UsageError(f"workspace: give a workspace's name (see: privpkg workspace list), not a {type(workspace).__name__}")


def _workspace_name(workspace: str | Workspace) -> str:
    return workspace if isinstance(workspace, str) else workspace.name


def screen_definition(spec: Spec, locks: Mapping[str, str], where: Callable[[str], str] | None = None) -> None:
    """Refuse (one line) a definition holding a secret before it is written or locked, naming the
    user's file and line. ``where`` names a version's file (``spec/NAME``, ``definition.json``,
    a lock) for the message; by default a spec file by its name, anything else as part of the
    definition."""
    name = spec.name
    where = where or (lambda key: key[5:] if key.startswith("spec/") else f"the definition of {name} ({key})")
    known = screen.known_secrets()
    for file, data in spec.sources:
        # Line by line first, for the line number; the whole file is screened below (a value
        # split by a line continuation, or bytes that are not UTF-8, are still refused).
        for number, line in enumerate(data.decode("utf-8", "replace").splitlines(), start=1):
            screen.refuse(line, f"{where('spec/' + file)}, line {number}", known)
    registry.screen_files({where(k): v for k, v in registry.version_files(spec, locks).items()}, known)


#: The build's messages start with the command line's option (``env build --python X``);
#: ``build_local``'s caller gave a keyword.
_KEYWORDS = (("--python ", "python="), ("--link ", "link="), ("--installer must", "installer must"))
#: ... and their advice names the option anywhere in the line.
_ADVICE = (("--installer pip", "installer='pip'"),)


def _in_api_words(exc: PrivpkgError) -> PrivpkgError:
    """``exc`` with the command line's options named as ``build_local``'s keywords (the same
    class: a UsageError, or a PrivpkgError's advice to build with pip)."""
    if type(exc) not in (PrivpkgError, UsageError):
        return exc  # other classes carry more than a message (FileWriteError's errno)
    text = str(exc)
    for option, keyword in _KEYWORDS:
        if text.startswith(option):
            text = keyword + text[len(option):]
    for option, keyword in _ADVICE:
        text = text.replace(option, keyword)
    return exc if text == str(exc) else type(exc)(text)


class Environment:
    """A named environment (azureml v1's ``Environment``): made with ``from_pip_requirements``,
    ``from_conda_specification``, ``from_existing_conda_environment``,
    ``from_existing_virtualenv`` or ``load_from_directory``; stored with ``register``; read back
    with ``get`` and ``list``.

    Attributes: ``name``; ``spec`` (the :class:`~privpkg.environments.spec.Spec`: ``pip``,
    ``conda``, ``channels``, ``variables``, ``python``, ``platforms``, and the files as given in
    ``sources``); ``locks`` (file name -> text: ``pylock.toml``, ``conda-PLATFORM.txt``; empty
    for an ``Environment.list`` entry, until ``get``); ``version`` (None until registered);
    ``digest`` (the version's sha256); ``created`` (whether the last ``register`` made a new
    version). Methods raise :class:`privpkg.errors.PrivpkgError` subclasses with one-line messages
    (:class:`~privpkg.errors.NotFoundError`, :class:`~privpkg.errors.UsageError`, ...).
    """

    def __init__(self, spec: Spec, locks: Mapping[str, str] | None = None, version: int | None = None,
                 digest: str | None = None) -> None:
        """An environment of ``spec`` (made by the ``from_*`` constructors; azureml's
        ``Environment(name)`` has no equivalent), with ``locks`` if known and, for a registered
        one, its ``version`` and ``digest``."""
        if not isinstance(spec, Spec):
            # azureml's Environment("name") then filled python.conda_dependencies in code; here a
            # spec comes from a file or an environment, so say which constructor to use.
            shown_spec = shown(spec, 40) if isinstance(spec, str) else type(spec).__name__
            raise UsageError(f"Environment({shown_spec!r}): an environment is made from a file or an environment: "
                             "Environment.from_pip_requirements(NAME, FILE), from_conda_specification(NAME, FILE), "
                             "from_existing_conda_environment(NAME, ENV), from_existing_virtualenv(NAME, PATH) or "
                             "load_from_directory(PATH)")
        self.spec = spec
        self.locks: dict[str, str] = dict(locks or {})
        self.version = version
        self.digest = digest
        #: Whether the last register() made a new version (False: it found this content).
        self.created = False
        # The workspace get/list/register read it from: build_local() reads its locks there.
        self._workspace: str | Workspace | None = None

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
        """From a conda environment file (``channels``, ``dependencies`` with a ``pip:`` list,
        ``variables``; needs ``privpkg[env]``). ``platforms``: conda platforms to lock for besides
        this machine's."""
        return cls(sources.from_conda_specification(name, file_path).with_platforms(platforms))

    @classmethod
    def from_pip_requirements(cls, name: str, file_path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], *,
                              platforms: Iterable[str] = ()) -> Environment:
        """From a requirements file, or several merged in order (as pip merges repeated ``-r``)."""
        return cls(sources.from_pip_requirements(name, file_path).with_platforms(platforms))

    @classmethod
    def from_existing_conda_environment(cls, name: str, conda_environment_name: str, *, platforms: Iterable[str] = ()) -> Environment:
        """From a conda environment's ``conda-meta`` records and what pip installed there
        (``conda_environment_name``: a name, found as conda finds it, or a prefix's path)."""
        return cls(sources.from_existing_conda_environment(name, conda_environment_name).with_platforms(platforms))

    @classmethod
    def from_existing_virtualenv(cls, name: str, path: str | os.PathLike[str], *, platforms: Iterable[str] = ()) -> Environment:
        """Pinning the distributions installed in the virtualenv at ``path`` (not in azureml v1).
        pip records no index for them: a :class:`UnindexedPackagesWarning` says so."""
        return cls(sources.from_existing_virtualenv(name, path).with_platforms(platforms))

    def clone(self, new_name: str) -> Environment:
        """azureml v1's ``clone``: this environment's spec and locks under ``new_name``,
        unregistered (``register`` makes its version 1, keeping these locks)."""
        spec = Spec.from_definition({**self.spec.definition(), "name": new_name}, self.spec.sources)
        return Environment(spec, self.locks)

    # --- the workspace ----------------------------------------------------------------------

    def register(self, workspace: str | Workspace) -> Environment:
        """Store this environment in ``workspace``: the version whose content it is (nothing
        written, two storage requests), or a new one. Its locks: those it has, else made now
        (keeping the previous version's pins); an unchanged spec without locks keeps the
        version's locks in the workspace (``Environment.get`` reads them). Returns ``self``
        (azureml returned a new object), with ``version`` and ``created`` set, and ``locks``
        unless the content was found unchanged (``build_local()`` reads them then). An
        environment read from another workspace (``get``, ``list``) keeps its locks and becomes
        this one's next version, or the one holding its content: its version number was the
        other workspace's. A definition holding a secret is refused before it is locked, naming
        the file and line."""
        workspace = _workspace_arg(workspace)
        _, store = open_registry(workspace)
        # A version read from another workspace is that workspace's number: here this content is
        # the next version, or the one holding it (azureml's get(ws1).register(ws2) copies it).
        came_from = self._workspace
        version = self.version if came_from is None or _workspace_name(came_from) == _workspace_name(workspace) else None
        locks = self.locks
        if not locks and self.version is not None and came_from is not None:
            locks = self._stored_locks(came_from)  # a list() entry: its locks are where it was listed
        if not locks and version is None:
            same = registry.find_unchanged(store, self.spec)
            if same is not None:  # two requests, nothing read or written beyond them
                self.version, self.digest, self.created = same.version, same.digest, False
                self._workspace = workspace
                self._warn_variables()
                return self
            previous = None
            try:
                previous = registry.get(store, self.name).locks
            except (NotFoundError, registry.IncompleteVersion):
                pass  # nothing to keep pins from: lock afresh (the same content completes a version)
            # Before locking: a secret is the line to see, naming the user's file, and locking
            # (seconds, requests to the feeds) would be wasted on a definition refused anyway.
            screen_definition(self.spec, {})
            locks = lock(self.spec, previous)
        else:
            locks = checked_locks(self.spec, locks)
        rec = registry.register(store, self.spec, locks, version=version)
        self.version, self.digest, self.locks, self.created = rec.version, rec.digest, dict(locks), rec.created
        self._workspace = workspace
        self._warn_variables()
        return self

    def _stored_locks(self, where: str | Workspace) -> dict[str, str]:
        """This registered version's locks, read from ``where``."""
        stored = Environment.get(where, self.name, self.version)
        if self.digest is not None and stored.digest != self.digest:
            # Another workspace's NAME:N is another environment: its lock under this spec would
            # build (or register) something else, silently.
            raise PrivpkgError(f"environment {self.name}:{self.version} in workspace {_workspace_name(where)!r} is other "
                               f"content than this one (digest {(stored.digest or '')[:12]}, this one's {self.digest[:12]}); "
                               "give the workspace it came from")
        return stored.locks

    def _warn_variables(self) -> None:
        # After the work succeeded, as the CLI's lines are: a refusal stays one error alone.
        screen.warn_variables((n for n, _ in self.spec.variables), stacklevel=4)

    @staticmethod
    def get(workspace: str | Workspace, name: str, version: int | str | None = None, label: str | None = None) -> Environment:
        """Version ``version`` of ``name`` (an int, or a string of digits as azureml took it;
        None or ``"latest"``: the highest complete version, as ``NAME:latest`` on the command
        line), or the version ``label`` points at; with its spec and locks.
        :class:`~privpkg.errors.NotFoundError` names the closest registered name."""
        if version is not None and label is not None:
            raise UsageError("give a version or a label, not both")
        from privpkg.environments.spec import LATEST, validate_version

        workspace = _workspace_arg(workspace)
        _, store = open_registry(workspace)
        wanted = None if version is None or version == LATEST else validate_version(version)
        rec = registry.get(store, name, wanted, label)
        env = Environment(rec.spec, rec.locks, rec.version, rec.digest)
        env._workspace = workspace
        return env

    @staticmethod
    def list(workspace: str | Workspace) -> dict[str, Environment]:
        """Each environment's latest version, by name, with its definition (its spec files and
        locks are not read: ``get`` one for them; ``build_local()`` and ``register`` read them). Labels are
        not read (``privpkg env list`` shows them)."""
        workspace = _workspace_arg(workspace)
        _, store = open_registry(workspace)
        out = {}
        for name, rec in registry.list_environments(store).items():
            env = Environment(registry.read_definition(store, rec), version=rec.version, digest=rec.digest)
            env._workspace = workspace
            out[name] = env
        return out

    def set_label(self, workspace: str | Workspace, label: str, remove: bool = False) -> None:
        """Point ``label`` at this registered version (``remove``: take the label away). In
        another workspace than the one it was read from or registered in, that workspace's
        ``NAME:VERSION`` must hold this content."""
        if self.version is None:
            raise UsageError(f"environment {self.name} is not registered; register it first")
        where = _workspace_arg(workspace)
        if not remove and self._workspace is not None and _workspace_name(self._workspace) != _workspace_name(where):
            self._stored_locks(where)  # NAME:N there is another environment unless it holds this content
        _, store = open_registry(where)
        registry.set_label(store, self.name, label, None if remove else self.version)

    @staticmethod
    def label(workspace: str | Workspace, name: str, version: int | str, labels: str | Iterable[str]) -> None:
        """azureml v1's ``Environment.label``: point each of ``labels`` at ``name``'s ``version``
        (``privpkg env label NAME:VERSION LABEL``). Every label is checked before any moves; should the
        storage refuse one, the error names those that moved before it."""
        from privpkg.environments.spec import validate_label, validate_name, validate_version

        wanted = [labels] if isinstance(labels, str) else list(labels)
        if not wanted:
            raise UsageError("give at least one label")
        for one in wanted:
            validate_label(one)
        validate_name(name)
        number = validate_version(version)
        _, store = open_registry(_workspace_arg(workspace))
        moved: list[str] = []
        for one in wanted:
            try:
                registry.set_label(store, name, one, number)
            except PrivpkgError as exc:
                if not moved:
                    raise
                # Each label is its own object: those before this one have moved, and the line says so.
                cls = type(exc) if type(exc) in (PrivpkgError, UsageError, NotFoundError) else PrivpkgError
                raise cls(f"{exc} ({', '.join(repr(m) for m in moved)} already point{'s' if len(moved) == 1 else ''} "
                          f"at {name}:{number})") from None
            moved.append(one)

    @staticmethod
    def labels(workspace: str | Workspace, name: str) -> dict[str, int]:
        """``name``'s labels and the versions they point at (``{"prod": 3}``; ``latest`` is
        implicit and not listed), as ``privpkg env list`` and ``env show`` print them."""
        from privpkg.environments.spec import validate_name

        validate_name(name)
        _, store = open_registry(_workspace_arg(workspace))
        registry.get(store, name)  # an unknown name: NotFoundError with the closest one, as get says it
        return dict(sorted(registry.labels(store, name).items()))

    @staticmethod
    def add_private_pip_wheel(workspace: str | Workspace, file_path: str | os.PathLike[str], exist_ok: bool = False) -> str:
        """azureml v1's ``Environment.add_private_pip_wheel``: publish the wheel at ``file_path``
        in ``workspace`` and return its ``privpkg://WORKSPACE/wheels/FILE`` URL, to name in a
        requirements file (``mylib @ URL``) or an environment.yml's ``pip:`` list
        (``privpkg wheel add``). The same file already there is an error unless ``exist_ok``; unlike
        azureml, a different file under a taken name always is one, as is a removed wheel's name
        (:class:`~privpkg.errors.PrivpkgError`)."""
        from privpkg.wheels import add_private_wheel
        from privpkg.workspace import get_workspace

        ws = _workspace_arg(workspace)
        return add_private_wheel(get_workspace(ws) if isinstance(ws, str) else ws, file_path, exist_ok)

    def build_local(self, workspace: str | Workspace | None = None, *, python: str | None = None,
                    link: str | os.PathLike[str] | None = None, installer: str | None = None,
                    report: Callable[[str], None] | None = None) -> Path:
        """The local environment this version's lock describes (a venv, or a conda prefix for a
        conda spec), built now unless the cache has it (``privpkg env build``). Without locks in
        hand, a registered version's are read from ``workspace`` (default: the one ``get``,
        ``list`` or ``register`` used). Returns the environment's path (its ``bin/python``
        runs in it; ``privpkg env run`` sets PATH too). Unlike azureml, no Docker is involved
        (``privpkg env dockerfile`` writes an image's build context) and no ``platform``: the
        build is for this machine and ``python``. ``installer``: ``"uv"`` or ``"pip"`` (default:
        uv when installed, else pip; ``env build --installer``). ``report`` gets the line ``env
        build`` prints when it makes a conda prefix (which installer made it)."""
        from privpkg.environments.build import build, lock_for

        locks = self.locks
        if not locks:
            where = self._workspace if workspace is None else _workspace_arg(workspace)
            if self.version is None:
                raise UsageError(f"environment {self.name} has no lock yet: register it first")
            if where is None:
                raise UsageError(f"environment {self.name}:{self.version} has its lock in its workspace: give it "
                                 "(build_local(WORKSPACE))")
            locks = self._stored_locks(where)
        try:
            return build(lock_for(self.spec, locks, f"environment {self.name}"), python=python,
                         link=None if link is None else Path(link), installer=installer, report=report)
        except PrivpkgError as exc:
            raise _in_api_words(exc) from None

    # --- directories --------------------------------------------------------------------------

    def save_to_directory(self, path: str | os.PathLike[str], overwrite: bool = False) -> Path:
        """Write ``definition.json``, ``spec/`` and the locks into the directory ``path``
        (made anew; an existing one only with ``overwrite``)."""
        from privpkg.fileio import replace_dir

        dest = Path(path)
        # lexists: a dangling symlink is something there too, which only overwrite may replace.
        if os.path.lexists(dest) and not overwrite:
            raise UsageError(f"{shown(dest)} exists; choose another directory or replace it (privpkg env create --force, "
                             "overwrite=True)")
        if os.path.lexists(dest) and not dest.is_dir():  # never replaced, and never an OSError's line about it
            what = "a file" if dest.exists() else "a broken symbolic link"
            raise UsageError(f"{shown(dest)} is {what}, not an environment directory; refusing to replace it")
        if dest.exists() and (dest / registry.RECORD).exists():
            # A local workspace's environments/NAME/N/ holds definition.json too: replacing it
            # would unmake that registered version.
            raise UsageError(f"{shown(dest)} is a registered version in a workspace's storage, not an environment "
                             "directory; refusing to replace it")
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
            if (folder / "azureml_environment.json").is_file():
                # What azureml v1's save_to_directory wrote: its conda file is the spec to bring along.
                raise UsageError(f"{shown(folder)} is an azureml v1 environment directory; make one from its "
                                 "conda_dependencies.yml: Environment.from_conda_specification(NAME, FILE) "
                                 "(privpkg env create NAME --file FILE -o DIR)")
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
