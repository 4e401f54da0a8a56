"""privpkg's conda plugin: hook declarations only (entry point group ``conda``).

conda imports this module at start-up for every command, ``conda info`` and ``conda --version``
included, so at module level it imports only ``conda.plugins``; each hook imports privpkg's
implementation in its body (as conda-auth does), and no hook reads the store before it needs a
credential. The implementations are plain callables in modules that never import conda
(:mod:`privpkg.conda.pipstep`, :mod:`privpkg.conda.health`, :mod:`privpkg.conda.channelauth`,
:mod:`privpkg.conda.pypirecords`);
this module only wraps them in conda's types. An error inside a hook is one ``privpkg:`` line,
never a conda traceback.

- ``conda_pre_commands``: for the commands that run an environment file's pip section, the pip
  step's environment and the wrapper around conda's pip subprocess (:mod:`~privpkg.conda.pipstep`);
- ``conda_auth_handlers``: ``auth: privpkg`` in a condarc ``channel_settings`` entry sends that
  channel's requests through :class:`PrivpkgChannelAuth` (``privpkg setup conda`` writes them);
- ``conda_health_checks``: privpkg's checks in ``conda doctor`` (:mod:`~privpkg.conda.health`);
- ``conda_prefix_data_loaders``: ``conda list`` shows the ``privpkg://`` URL of a wheel pip
  installed from a workspace as its channel (:mod:`~privpkg.conda.pypirecords`);
- ``conda_environment_exporters``: ``conda export --format privpkg-yaml`` (conda's environment
  YAML with ``NAME @ privpkg://...`` pip lines for workspace wheels).
"""

from __future__ import annotations

from typing import Any

from conda.plugins import hookimpl, types

#: The name condarc's ``channel_settings`` entries give as ``auth:``.
AUTH_HANDLER = "privpkg"
#: privpkg.conda.pipstep.PIP_COMMANDS, spelled here so that registering the hook (on every conda
#: command) imports nothing of privpkg; a conda-marked test keeps the two equal.
PIP_COMMANDS = frozenset({"create", "install", "update", "env_update"})


#: Lines already printed: conda makes several requests per channel (one per subdir), and one
#: line per problem is enough.
_SAID: set[str] = set()


def _warn(message: str) -> None:
    if message in _SAID:
        return
    _SAID.add(message)
    try:
        from privpkg import log

        log.warning(message)
    except Exception:  # noqa: BLE001, S110 - a message must never break conda
        pass


def _one_line(exc: BaseException) -> str:
    first = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


@hookimpl
def conda_pre_commands() -> Any:
    yield types.CondaPreCommand(name="privpkg-pip-step", action=_pip_step, run_for=set(PIP_COMMANDS))


def _pip_installer() -> Any:
    from conda.env.installers import pip

    return pip


def _pip_step(command: str) -> None:
    try:
        from privpkg.conda import pipstep

        pipstep.pre_command(command, _pip_installer)
    except Exception as exc:  # noqa: BLE001 - pre_command says its own failures; this is the last guard
        _warn(f"privpkg's conda pre-command failed: {_one_line(exc)}")


class PrivpkgChannelAuth(types.ChannelAuthBase):
    """A channel's requests with the header of the privpkg connection that answers their URL
    (longest prefix, https only except loopback: ``privpkg.conda.channelauth.headers_for``),
    and, on a 401 or 403, one line naming the connection to fix."""

    def __call__(self, request: Any) -> Any:
        url = str(request.url)
        try:
            channelauth = _channelauth()
            headers = channelauth.headers_for(url)
        except Exception as exc:  # noqa: BLE001 - the request goes out without; conda reports the 401
            _warn(f"no credential for conda channel {self.channel_name}: {_one_line(exc)}")
            return request
        request.headers.update(headers)
        names = tuple(headers)

        def explain(response: Any, **_kw: Any) -> Any:
            sent = getattr(response, "request", None)
            if sent is not None and names:
                try:
                    # `sent` is the request requests copies for a redirect's next hop.
                    if getattr(response, "is_redirect", False):
                        channelauth.strip_if_cross_origin(sent.headers, names, str(sent.url), response.headers.get("location"))
                    # conda logs (-vv) and reports (response_details) response.request: a copy
                    # with the values hidden; the hop above already went out with them.
                    shown = sent.copy()
                    channelauth.hide(shown.headers, names)
                    response.request = shown
                except Exception as exc:  # noqa: BLE001 - conda's request must go on
                    _warn(f"cannot hide privpkg's header from conda's logs for channel {self.channel_name}: {_one_line(exc)}")
            if getattr(response, "status_code", None) in (401, 403):
                try:
                    line = channelauth.explain_status(url, int(response.status_code))
                except Exception as exc:  # noqa: BLE001 - the explanation must not hide conda's error
                    line = f"cannot explain the {response.status_code} from conda channel {self.channel_name}: {_one_line(exc)}"
                if line:
                    _warn(line)
            return response

        request.register_hook("response", explain)
        return request


def _channelauth() -> Any:
    # Imported at the first request, not with the plugin: the module holds the store lookups.
    from privpkg.conda import channelauth

    return channelauth


@hookimpl
def conda_auth_handlers() -> Any:
    yield types.CondaAuthHandler(name=AUTH_HANDLER, handler=PrivpkgChannelAuth)


@hookimpl
def conda_health_checks() -> Any:
    summary = "its store, the keyring launcher for pip sections, the pip shim and pip in the environment"
    try:
        yield types.CondaHealthCheck(name="privpkg", action=_health, summary=summary)
    except TypeError:  # a conda from before health checks had summaries
        yield types.CondaHealthCheck(name="privpkg", action=_health)


def _health(prefix: str, verbose: bool) -> None:
    try:
        from conda.base.constants import OK_MARK, X_MARK
    except ImportError:
        OK_MARK, X_MARK = "ok", "X"
    try:
        from privpkg.conda.health import checks

        found = checks(prefix, verbose)
    except Exception as exc:  # noqa: BLE001 - conda doctor reports, it does not crash
        print(f"{X_MARK} privpkg's checks failed: {_one_line(exc)}\n")
        return
    for c in found:
        print(f"{OK_MARK if c.status == 'ok' else X_MARK} {c.detail}")
    print()


#: privpkg.conda.pypirecords.LOADER_NAME (a conda-marked test keeps the two equal): conda runs the
#: prefix-data loaders sorted by name, and this one must come after conda's "pypi".
PREFIX_DATA_LOADER = "pypi-privpkg"


@hookimpl
def conda_prefix_data_loaders() -> Any:
    yield types.CondaPrefixDataLoader(name=PREFIX_DATA_LOADER, loader=_privpkg_urls)


def _privpkg_urls(prefix: Any, records: Any) -> Any:
    try:
        from privpkg.conda import pypirecords

        return pypirecords.show_privpkg_urls(prefix, records, _with_channel)
    except Exception as exc:  # noqa: BLE001 - conda list goes on with conda's own records
        _warn(f"privpkg could not read the privpkg:// URLs of pip's packages in {prefix}: {_one_line(exc)}")
        return {}


def _with_channel(record: Any, url: str) -> Any:
    # Only the channel: subdir "pypi", build "pypi_0" and the package type stay conda's (its
    # solver and `conda env export` tell pip's packages by them).
    from conda.models.channel import Channel
    from conda.models.records import PrefixRecord

    return PrefixRecord.from_objects(record, channel=Channel(url))


#: The export format (and its alias): conda's own environment-yaml keeps ``environment.yml`` and
#: the default; two exporters may not share a name, an alias or a file name.
EXPORT_FORMAT = "privpkg-environment-yaml"


@hookimpl
def conda_environment_exporters() -> Any:
    yield types.CondaEnvironmentExporter(
        name=EXPORT_FORMAT,
        aliases=("privpkg-yaml",),
        default_filenames=(),
        export=_export_yaml,
        description="environment-yaml with the privpkg:// URL of each workspace wheel in the pip section",
    )


def _export_yaml(env: Any) -> str:
    from conda.exceptions import CondaValueError

    try:
        return _export_yaml_of(env)
    except CondaValueError:
        raise
    except Exception as exc:  # noqa: BLE001 - conda's internals moved: one line, not conda's crash report
        raise CondaValueError(f"privpkg cannot export in the privpkg-yaml format with this conda: {_one_line(exc)}") from None


def _export_yaml_of(env: Any) -> str:
    # conda's own environment-yaml dictionary (its exporter's to_dict), then the pip lines.
    from conda.common.serialize import yaml
    from conda.core.prefix_data import PrefixData
    from conda.plugins.environment_exporters.environment_yml import to_dict

    from privpkg.conda import pypirecords

    data = to_dict(env)
    # The records privpkg's loader relabelled: their channel is the privpkg:// URL.
    records = PrefixData(env.prefix, interoperability=True).get_python_packages() if env.prefix else []
    urls = {r.name: str(r.channel.canonical_name) for r in records if pypirecords.is_shown_url(str(r.channel.canonical_name))}
    for dep in data.get("dependencies", []):
        if isinstance(dep, dict) and isinstance(dep.get("pip"), list):
            dep["pip"] = pypirecords.pip_lines_with_urls(dep["pip"], urls)
    return str(yaml.dumps(data))
