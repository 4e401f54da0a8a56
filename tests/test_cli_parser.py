"""A command line naming a command group and action builds only their parser (a cache hit of ``env
build`` otherwise spent a third of its time building parsers); shown here: for every group and
action, the usage, help, errors and parsed values are the same as with the whole parser, and
running one imports no other group's module."""

from __future__ import annotations

import argparse
import contextlib
import io
import subprocess
import sys

import pytest

from privpkg.cli import GROUPS, build_parser, parser_for


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> tuple[object, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            ns = parser.parse_args(argv)
            code: object = sorted((k, f"{v.__module__}.{v.__qualname__}" if callable(v) else repr(v)) for k, v in vars(ns).items())
        except SystemExit as exc:
            code = exc.code
    return code, out.getvalue(), err.getvalue()


def _actions(parser: argparse.ArgumentParser, group: str) -> list[str]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            sub = action.choices[group]
            for inner in sub._actions:
                if isinstance(inner, argparse._SubParsersAction):
                    return list(inner.choices)
    return []


def test_groups_are_the_full_parsers_commands() -> None:
    full = build_parser()
    (sub,) = [a for a in full._actions if isinstance(a, argparse._SubParsersAction)]
    assert tuple(sub.choices) == GROUPS


@pytest.mark.parametrize("group", GROUPS)
def test_a_groups_parser_alone_parses_as_the_full_one(group: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    full = build_parser()
    lines = [[group], [group, "--help"], [group, "no-such-action"], [group, "bulid"], [group, "--no-such-option"], [group, "x", "y"]]
    for action in _actions(full, group):
        lines += [[group, action, "--help"], [group, action], [group, action, "--no-such-option"], [group, action, "a", "b", "c", "d"],
                  [group, action, "--json"], [group, action, "--workspace"]]
    assert len(lines) > 6 or group in ("resolve", "doctor", "demo")
    for argv in lines:
        assert _parse(parser_for(argv), argv) == _parse(full, argv), argv
    for action in _actions(full, group):
        built = _actions(parser_for([group, action]), group)
        assert built == [action], (action, built)  # the other actions were not built


def test_one_group_imports_no_other() -> None:
    code = ("import sys; from privpkg.cli import _run\n"
            "try:\n    _run(['env', 'path', '--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.startswith('privpkg.cli.')))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = eval(r.stdout.strip().splitlines()[-1])
    assert "privpkg.cli.env" in loaded
    assert not {f"privpkg.cli.{g}" for g in GROUPS if g != "env"} & set(loaded), loaded


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["env", "build", "--worksapce", "team"],
         "privpkg env build: error: unrecognized arguments: --worksapce; did you mean '--workspace'?"),
        (["connection", "list", "--jsn"], "privpkg connection list: error: unrecognized arguments: --jsn; did you mean '--json'?"),
        (["env", "prune", "extra"], "privpkg env prune: error: unrecognized arguments: extra"),
        (["--bogus"], "privpkg: error: unrecognized arguments: --bogus"),
    ],
)
def test_unrecognized_arguments_are_told_by_their_command(argv: list[str], line: str) -> None:
    """An argument no option took is reported by the command it was given to (its usage and
    --help), with a "did you mean" for a mistyped option of that command; exit 2."""
    res = subprocess.run([sys.executable, "-m", "privpkg", *argv], capture_output=True, text=True, check=False)
    assert res.returncode == 2, res
    command = line.partition(": error:")[0]
    assert res.stderr.splitlines() == [line, f"(see: {command} --help)"], res.stderr
    assert res.stdout == ""


def test_env_modules_table_names_what_each_module_adds() -> None:
    """``privpkg env ACTION`` imports the module :data:`privpkg.cli.env.MODULES` names for it
    alone: the table must hold every action each module adds, and nothing else."""
    import importlib

    from privpkg.cli.env import MODULES

    class Names:
        def __init__(self) -> None:
            self.names: list[str] = []

        def add_parser(self, name: str, **kwargs: object) -> argparse.ArgumentParser:
            self.names.append(name)
            return argparse.ArgumentParser(prog=name)

    for module, names in MODULES.items():
        seen = Names()
        importlib.import_module(f"privpkg.cli.{module}").add_parsers(seen)
        assert tuple(seen.names) == names, module
    assert [a for names in MODULES.values() for a in names] == _actions(build_parser(), "env")


@pytest.mark.parametrize(("action", "module"), [("build", "env_build"), ("lock", "env_lock"), ("show", "env_registry"),
                                                ("dockerfile", "env_docker")])
def test_an_env_action_imports_its_module_alone(action: str, module: str) -> None:
    code = ("import sys; from privpkg.cli import _run\n"
            f"try:\n    _run(['env', {action!r}, '--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.startswith('privpkg.cli.env_')))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert eval(r.stdout.strip().splitlines()[-1]) == [f"privpkg.cli.{module}"]
    # A mistyped action still gets the whole group's error, every action listed.
    r = subprocess.run([sys.executable, "-m", "privpkg", "env", "bulid"], capture_output=True, text=True, check=False)
    assert r.returncode == 2 and "'build'" in r.stderr and "'dockerfile'" in r.stderr, r.stderr


@pytest.mark.parametrize("columns", ["100", "57", None])
def test_help_is_formatted_as_argparse_formats_it(columns: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    """privpkg's formatter finds the width without importing shutil (a build's import cost), as
    argparse's own finds it: ``$COLUMNS``, else the terminal (none here), else 80."""
    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", columns)
    parser = parser_for(["env", "build"])
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    (inner,) = [a for a in sub.choices["env"]._actions if isinstance(a, argparse._SubParsersAction)]
    build = inner.choices["build"]
    ours = build.format_help()
    build.formatter_class = argparse.HelpFormatter
    assert ours == build.format_help()
    if columns is not None:  # (without, the width is a terminal's when the tests run in one)
        longest = max(len(line) for line in ours.splitlines())
        assert int(columns) - 14 < longest <= int(columns) - 2  # it fills $COLUMNS: not a fixed 80
