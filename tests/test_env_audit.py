"""Issue 10's registry and locks against the audit of 2026-11-22: each test failed on main at
7967f2a (the proof of concept) and states what the issue and the README promise; none needs the
network."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from support.cli import PrivpkgCLI

from privpkg.environments import condalock, registry, screen
from privpkg.environments.api import Environment
from privpkg.environments.spec import Spec, parse_ref
from privpkg.errors import PrivpkgError, UsageError
from privpkg.storage.local import LocalStorage

SHA = "0" * 64
LOCK_HEAD = 'lock-version = "1.0"\ncreated-by = "x"\n'


def wheel_lock(url: str) -> str:
    return LOCK_HEAD + f'[[packages]]\nname = "x"\nversion = "1"\n[[packages.wheels]]\nurl = "{url}"\nhashes = {{sha256 = "{SHA}"}}\n'


def spec(name: str = "poc") -> Spec:
    return Spec(name, pip=("requests",), sources=(("requirements.txt", b"requests\n"),))


# --- 1. locks brought by a definition directory skip the lock screening (issue item 3) -----------

@pytest.mark.parametrize("lock", [
    wheel_lock("file:///home/me/x-1-py3-none-any.whl"),
    LOCK_HEAD + f'[[packages]]\nname = "x"\nversion = "1"\n[packages.archive]\npath = "/home/me/proj"\nhashes = {{sha256 = "{SHA}"}}\n',
    "this is not TOML {{{\n",
])
def test_registered_pylock_is_screened_like_a_made_one(isolated_privpkg: Path, tmp_path: Path, lock: str) -> None:
    store = LocalStorage(tmp_path / "ws")
    with pytest.raises(UsageError):
        registry.register(store, spec(), {"pylock.toml": lock})


def test_a_token_as_user_name_in_a_brought_lock_is_refused(isolated_privpkg: Path, tmp_path: Path) -> None:
    """A username alone is stripped from a lock's URLs (``__token__@``), but one that is a token
    (``https://ghp_...@host``, as GitHub takes it) refuses the lock in one line that never shows
    it, and nothing is stored."""
    store = LocalStorage(tmp_path / "ws")
    with pytest.raises(UsageError, match="a token as the user name") as info:
        registry.register(store, spec(), {"pylock.toml": wheel_lock("https://ghp_REALLYSECRETTOKEN0123456789@h.example/x-1-py3-none-any.whl")})
    assert "REALLYSECRET" not in str(info.value)
    assert not list((tmp_path / "ws").rglob("version.json"))


def test_definitions_refuse_tokens_in_user_names_and_queries_and_mask_them() -> None:
    for text, what in (("git+https://ghp_abcdef1234567890@github.com/org/repo", "a token as the user name"),
                       ("--extra-index-url https://h.example/simple/?token=tok-1234567", "a token in a query")):
        assert (screen.find_secret(text, secrets={}) or "").startswith(what), text
        assert "abcdef1234567890" not in screen.masked(text, secrets={}) and "tok-1234567" not in screen.masked(text, secrets={})


def test_save_to_directory_screens_too(isolated_privpkg: Path, tmp_path: Path) -> None:
    """The API's save_to_directory writes what ``env create`` writes: a secret refuses it, and the
    directory is not made."""
    env = Environment(Spec("poc", pip=("x @ https://u:hunter22pass@h.example/x-1.0-py3-none-any.whl",)))
    with pytest.raises(UsageError, match="password in user info"):
        env.save_to_directory(tmp_path / "d")
    assert not (tmp_path / "d").exists()


def test_registered_conda_lock_is_screened(isolated_privpkg: Path, tmp_path: Path) -> None:
    store = LocalStorage(tmp_path / "ws")
    conda = f"@EXPLICIT\nfile:///opt/conda/pkgs/x-1-0.conda#sha256:{SHA}\nhttps://h/prefix/t/TOKEN123/c/linux-64/y-1-0.conda#sha256:{SHA}\n"
    with pytest.raises(UsageError):
        registry.register(store, Spec("poc", conda=("python",)), {"conda-linux-64.txt": conda})


# --- 2. a spec/ symlink in a definition directory uploads any readable file --------------------

def test_definition_directory_symlink_is_not_followed(isolated_privpkg: Path, tmp_path: Path) -> None:
    env = Environment(spec())
    d = env.save_to_directory(tmp_path / "d")
    (tmp_path / "private").write_text("PRIVATE KEY MATERIAL\n")
    os.symlink(tmp_path / "private", d / "spec" / "notes.txt")
    try:
        loaded = Environment.load_from_directory(d)
    except PrivpkgError:
        return  # refused: fine
    assert b"PRIVATE KEY" not in dict(loaded.spec.sources).get("notes.txt", b"")


# --- 3. error lines echo the secret they were given --------------------------------------------

@pytest.mark.parametrize("line", [
    "https://alice:Hunter2Secret@pkgs.example.com/x-1.0-py3-none-any.whl",     # not a requirement
    "-e git+https://alice:Hunter2Secret@github.com/o/r#egg=r",                 # editable
    "requests\x01 https://alice:Hunter2Secret@h/",                             # control character
    "-r https://alice:Hunter2Secret@h/req.txt",                                # include not found
])
def test_error_lines_never_show_a_password(isolated_privpkg: Path, tmp_path: Path, line: str) -> None:
    f = tmp_path / "requirements.txt"
    f.write_text(line + "\n")
    with pytest.raises(PrivpkgError) as info:
        Environment.from_pip_requirements("poc", f)
    assert "Hunter2Secret" not in str(info.value)


# --- 4. a spec file named F.sha256 beside F: the local version is never complete ---------------

def test_spec_file_with_sha256_suffix(isolated_privpkg: Path, tmp_path: Path) -> None:
    """A local workspace keeps each object's checksum as ``KEY.sha256``: a spec file of that name
    would hide as one (its version never complete), so the name is refused."""
    with pytest.raises(UsageError, match="invalid or repeated spec file name 'req.txt.sha256'"):
        Spec("poc", pip=("requests",), sources=(("req.txt", b"requests\n"), ("req.txt.sha256", b"requests>=2\n")))


# --- 5. a lockless register when every version is incomplete: 'register again' cannot help ----

def test_register_without_locks_completes_or_skips_an_incomplete_version(isolated_privpkg: Path, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from privpkg.environments import api
    from privpkg.workspace import Workspace, add_workspace

    add_workspace(Workspace("ws", "local", str(tmp_path / "ws")))
    store = LocalStorage(tmp_path / "ws")
    files = registry.version_files(spec(), {"pylock.toml": LOCK_HEAD})
    store.put_bytes("environments/poc/1/version.json", registry.canonical_json(registry._record("poc", 1, files)))
    monkeypatch.setattr(api, "lock", lambda s, previous: {"pylock.toml": LOCK_HEAD})  # no pip run
    env = Environment(spec()).register("ws")  # the README: "registering the same spec again completes it"
    assert env.version == 1


# --- 6. bad input that is a traceback, not one line ---------------------------------------------

@pytest.mark.parametrize(("definition", "line"), [
    ({"name": "d", "pip": ["requests"], "conda": [1]}, "not a privpkg environment definition of format 1"),
    ({"format": 1, "name": "d", "pip": ["requests"], "conda": [1]}, "malformed environment definition: conda must be a mapping, not list"),
    ({"format": 1, "name": "d", "pip": "requests"}, "malformed environment definition: pip must be a list, not str"),
    ({"format": 1, "pip": ["requests"]}, "malformed environment definition: it has no name"),
    ({"format": 1, "name": "d", "conda": {"channels": "c"}}, "malformed environment definition: conda.channels must be a list, not str"),
    ({"format": 1, "name": "d", "conda": {"channels": ["c"], "dependencies": [1]}}, "a conda dependency must be text, not int"),
])
def test_env_lock_malformed_definition_is_one_line(privpkg_cli: PrivpkgCLI, tmp_path: Path, definition: dict[str, object],
                                                   line: str) -> None:
    d = tmp_path / "d"
    d.mkdir()
    (d / "definition.json").write_text(json.dumps(definition))
    privpkg_cli.fails(2, "env", "lock", str(d), match=line)
    assert not [p.name for p in d.iterdir() if registry.is_lock_name(p.name)]  # nothing locked


def test_explicit_list_with_an_odd_file_name_is_one_line() -> None:
    with pytest.raises(UsageError):
        condalock.load_explicit(f"@EXPLICIT\nhttps://h/c/noarch/foo.conda#sha256:{SHA}\n")


def test_yaml_alias_bomb_is_one_line(isolated_privpkg: Path, tmp_path: Path) -> None:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 7)]
    f = tmp_path / "environment.yml"
    f.write_text("\n".join(lines) + "\ndependencies: [python]\nvariables: {A: *a6}\n")
    with pytest.raises(PrivpkgError):  # 9**7 strings joined into one variable value otherwise
        Environment.from_conda_specification("poc", f)


# --- 7. other platforms "on request": the request does not survive a definition --------------

def test_platforms_survive_the_canonical_definition() -> None:
    s = Spec.from_definition({"format": 1, "name": "x", "conda": {"channels": ["conda-forge"], "dependencies": ["python"]},
                              "platforms": ["linux-64", "osx-arm64"]})
    assert s.definition().get("platforms") == ["linux-64", "osx-arm64"]


# --- 8. screening gaps -------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "https://conda.example/prefix/t/tk-1234567/chan",   # conda's token anywhere in the path (condalock refuses it)
    "https://u%3Ap4ssw0rd@host/simple/",                 # the user info's colon percent-encoded
])
def test_screen_gaps(text: str) -> None:
    assert screen.find_secret(text, secrets={}) is not None


# --- 9. robustness -------------------------------------------------------------------------------

def test_versions_are_ascii_digits() -> None:
    with pytest.raises(UsageError):
        parse_ref("poc:\u0661")  # ARABIC-INDIC DIGIT ONE


def test_a_corrupt_record_does_not_block_the_registry(isolated_privpkg: Path, tmp_path: Path) -> None:
    """A ``version.json`` privpkg cannot read (and a stray key under environments/) is skipped
    for reading and listing, never overwritten: the next registration goes past it."""
    store = LocalStorage(tmp_path / "ws")
    registry.register(store, spec(), {"pylock.toml": LOCK_HEAD})
    store.put_bytes("environments/poc/2/version.json", b"{}")
    store.put_bytes("environments/bad name/1/version.json", b"{}")
    assert registry.get(store, "poc").version == 1
    assert set(registry.list_environments(store)) == {"poc"}
    changed = Spec("poc", pip=("requests>=2",), sources=(("requirements.txt", b"requests>=2\n"),))
    assert registry.register(store, changed, {"pylock.toml": LOCK_HEAD}).version == 3
    assert store.read_bytes("environments/poc/2/version.json") == b"{}"
