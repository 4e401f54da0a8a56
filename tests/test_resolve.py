"""``privpkg resolve`` on hostile and unusual input (issue 6, E14 and E17).

- per-requirement options (``--hash``) survive into the constraints file, in a form real pip
  (23.1 and the newest) and uv accept and enforce in hash-checking mode: a wheel swapped in the
  workspace is refused;
- a line with a ``privpkg://`` URL that cannot be signed is an error naming file and line, never
  skipped;
- NUL bytes, over-long names and malformed URLs, deeply nested, cyclic and binary ``-r`` files:
  one ``privpkg: error:`` line and a non-zero exit, never a traceback (PrivpkgCLI checks that).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from support.builds import Venv
from support.cli import PrivpkgCLI
from test_pip_shim import WS, local_workspace, pip_install, versions_in

from privpkg.testing import make_wheel

ALPHA = f"privpkg://{WS}/wheels/alpha_pkg-1.0-py3-none-any.whl"


def _constraints(out: Path) -> list[str]:
    return [ln for ln in out.read_text().splitlines() if not ln.startswith("#")]


def test_hash_options_reach_pip_and_uv(
    privpkg_cli: PrivpkgCLI, venv_bare_pip: Venv, venv_pip231: Venv, uv_bin: Path, tmp_path: Path
) -> None:
    cli = privpkg_cli
    folder, urls = local_workspace(cli, tmp_path, ("alpha-pkg", "1.0"), ("beta-pkg", "2.0"))
    stored = {n: folder / "wheels" / u.rsplit("/", 1)[1] for n, u in urls.items()}
    sha = {n: hashlib.sha256(p.read_bytes()).hexdigest() for n, p in stored.items()}
    req = tmp_path / "requirements.txt"
    req.write_text(
        "# hashed, as pip-compile --generate-hashes writes them\n"
        f"alpha-pkg @ {urls['alpha-pkg']} \\\n"
        f"    --hash=sha256:{sha['alpha-pkg']}\n"
        f'beta-pkg @ {urls["beta-pkg"]} ; python_version >= "3" --hash sha256:{sha["beta-pkg"]}\n'
    )
    out = tmp_path / "constraints.txt"
    res = cli("resolve", "-r", req, "-o", out)
    assert res.returncode == 0, res.stderr
    uri = {n: p.resolve().as_uri() for n, p in stored.items()}
    assert _constraints(out) == [
        f"alpha-pkg @ {uri['alpha-pkg']} --hash=sha256:{sha['alpha-pkg']}",
        f'beta-pkg @ {uri["beta-pkg"]} ; python_version >= "3" --hash=sha256:{sha["beta-pkg"]}',
    ]

    # Real pip in hash-checking mode, without the shim: newest and 23.1 read the constraints
    # file as requirements; newest also as -c under hashed names.
    names = tmp_path / "names.txt"
    names.write_text(f"alpha-pkg --hash=sha256:{sha['alpha-pkg']}\nbeta-pkg --hash=sha256:{sha['beta-pkg']}\n")
    runs = {
        "pip-r": (venv_bare_pip, ["--require-hashes", "-r", out]),
        "pip231-r": (venv_pip231, ["--require-hashes", "-r", out]),
        "pip-c": (venv_bare_pip, ["-r", names, "-c", out]),
    }
    for label, (venv, args) in runs.items():
        r = pip_install(cli, venv, tmp_path / f"t-{label}", *args)
        assert r.returncode == 0, r.describe()
        assert versions_in(venv, tmp_path / f"t-{label}", cli.env, "alpha_pkg", "beta_pkg") == ["1.0", "2.0"]
    uv = [uv_bin, "pip", "install", "--no-config", "--no-cache", "--no-index", "--python", venv_bare_pip.python]
    r = cli.tool([*uv, "--target", tmp_path / "t-uv", "alpha-pkg", "beta-pkg", "-c", out])
    assert r.returncode == 0, r.describe()

    # The attack the hashes are for: the stored wheel is swapped behind the workspace's back.
    evil = make_wheel(tmp_path / "evil", "alpha-pkg", "1.0", body='VERSION = "evil"\n')
    assert evil.name == stored["alpha-pkg"].name
    os.chmod(stored["alpha-pkg"], 0o600)
    stored["alpha-pkg"].write_bytes(evil.read_bytes())
    res = cli("resolve", "-r", req, "-o", out)
    assert res.returncode == 0, res.stderr
    for label, (venv, args) in runs.items():
        r = pip_install(cli, venv, tmp_path / f"evil-{label}", *args)
        assert r.returncode != 0 and "DO NOT MATCH THE HASHES" in r.output, r.describe()
        assert not list((tmp_path / f"evil-{label}").glob("alpha_pkg*")), r.describe()
    r = cli.tool([*uv, "--target", tmp_path / "evil-uv", "alpha-pkg", "beta-pkg", "-c", out])
    assert r.returncode != 0 and sha["alpha-pkg"] in r.output and "hash" in r.output.lower(), r.describe()
    assert not list((tmp_path / "evil-uv").glob("alpha_pkg*"))
    assert cli.outputs.check() == 0


def test_bare_url_fragment_and_several_options(privpkg_cli: PrivpkgCLI, tmp_path: Path) -> None:
    cli = privpkg_cli
    folder, urls = local_workspace(cli, tmp_path, ("alpha-pkg", "1.0"), ("beta-pkg", "2.0"))
    sha = hashlib.sha256((folder / "wheels" / urls["beta-pkg"].rsplit("/", 1)[1]).read_bytes()).hexdigest()
    req = tmp_path / "requirements.txt"
    other = "0" * 64
    req.write_text(
        f"{urls['alpha-pkg']}\n"
        f"beta-pkg @ {urls['beta-pkg']}#sha256={sha} --hash=sha256:{other} \\\n  --hash sha256:{sha} --config-settings 'k=a b'\n"
    )
    out = tmp_path / "constraints.txt"
    assert cli("resolve", "-r", req, "-o", out).returncode == 0
    wheels = (folder / "wheels").resolve()
    assert _constraints(out) == [
        f"alpha-pkg @ {(wheels / urls['alpha-pkg'].rsplit('/', 1)[1]).as_uri()}",
        (
            f"beta-pkg @ {(wheels / urls['beta-pkg'].rsplit('/', 1)[1]).as_uri()}#sha256={sha}"
            f" --hash=sha256:{other} --hash=sha256:{sha} --config-settings='k=a b'"
        ),
    ]


LONG_NAME = "a" * 300
BAD_LINES = [
    ("no-wheels-dir", f"alpha-pkg @ privpkg://{WS}/nowheels/alpha_pkg-1.0-py3-none-any.whl", 2, "expected privpkg://WORKSPACE/wheels/FILE.whl"),
    ("not-a-wheel", f"alpha-pkg @ privpkg://{WS}/wheels/readme.txt", 2, "not a valid wheel file name"),
    ("bad-requirement", f"alpha-pkg @@ {ALPHA}", 2, "not a valid requirement"),
    ("url-not-the-requirement", f'alpha-pkg ; extra == "privpkg://{WS}"', 2, "privpkg:// must be the URL of the requirement"),
    ("editable", f"-e {ALPHA}", 2, "signed only in requirement lines"),
    ("find-links", f"--find-links privpkg://{WS}/wheels/", 2, "signed only in requirement lines"),
    ("unknown-option", f"alpha-pkg @ {ALPHA} --frobnicate=1", 2, "--frobnicate is not an option of a requirement line"),
    ("weak-hash", f"alpha-pkg @ {ALPHA} --hash=md5:0123456789abcdef0123456789abcdef", 2, "--hash takes sha256:"),
    ("nul-in-file-name", f"alpha-pkg @ privpkg://{WS}/wheels/alpha_pkg%00-1.0-py3-none-any.whl", 2, "cannot contain control characters"),
    ("long-file-name", f"alpha-pkg @ privpkg://{WS}/wheels/{LONG_NAME}-1.0-py3-none-any.whl", 2, "wheel file name too long (321 bytes"),
    ("long-workspace", f"alpha-pkg @ privpkg://{LONG_NAME}/wheels/alpha_pkg-1.0-py3-none-any.whl", 2, "workspace name too long (300 characters"),
    ("malformed-host", "alpha-pkg @ privpkg://[::1/wheels/alpha_pkg-1.0-py3-none-any.whl", 2, "malformed privpkg:// URL"),
    ("missing-wheel", f"missing-pkg @ privpkg://{WS}/wheels/missing_pkg-1.0-py3-none-any.whl", 1, "no wheel missing_pkg-1.0-py3-none-any.whl"),
]


@pytest.mark.parametrize(("line", "code", "message"), [b[1:] for b in BAD_LINES], ids=[b[0] for b in BAD_LINES])
def test_a_privpkg_line_that_cannot_be_signed_is_an_error(privpkg_cli: PrivpkgCLI, tmp_path: Path, line: str, code: int, message: str) -> None:
    cli = privpkg_cli
    local_workspace(cli, tmp_path, ("alpha-pkg", "1.0"))
    top = tmp_path / "requirements.txt"
    nested = tmp_path / "more" / "nested.txt"
    nested.parent.mkdir()
    top.write_text("-r more/nested.txt\n")
    nested.write_text(f"# line 1\nalpha-pkg @ {ALPHA}\n{line}\n")
    out = tmp_path / "constraints.txt"
    err = cli.fails(code, "resolve", "-r", top, "-o", out, match=[f"{top.parent / 'more/nested.txt'}, line 3: ", message])
    assert len(err) < 400, err
    assert not out.exists(), "no constraints file from a requirements file with an error"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (f"privpkg://{WS}/wheels/alpha_pkg%00-1.0-py3-none-any.whl", "cannot contain control characters"),
        ("privpkg://lo%00c/wheels/alpha_pkg-1.0-py3-none-any.whl", "invalid workspace name"),
        (f"privpkg://{WS}/wheels/{'a' * 5000}-1.0-py3-none-any.whl", "privpkg:// URL too long"),
        (f"privpkg://{WS}/wheels/{LONG_NAME}-1.0-py3-none-any.whl", "wheel file name too long"),
        (f"privpkg://{LONG_NAME}/wheels/alpha_pkg-1.0-py3-none-any.whl", "workspace name too long"),
        ("privpkg://[::1/wheels/alpha_pkg-1.0-py3-none-any.whl", "malformed privpkg:// URL"),
    ],
    ids=["nul-file", "nul-workspace", "long-url", "long-file", "long-workspace", "bad-ipv6"],
)
def test_resolve_url_rejects_nul_and_long_names(privpkg_cli: PrivpkgCLI, tmp_path: Path, url: str, message: str) -> None:
    local_workspace(privpkg_cli, tmp_path, ("alpha-pkg", "1.0"))
    err = privpkg_cli.fails(2, "resolve", url, match=message)
    assert len(err) < 400 and "\x00" not in err, err


def _chain(tmp_path: Path, depth: int, last: str) -> Path:
    """``r0.txt`` includes ``r1.txt`` ... ``depth`` levels down (``rDEPTH.txt`` holds ``last``)."""
    d = tmp_path / "chain"
    d.mkdir(parents=True)
    for i in range(depth):
        d.joinpath(f"r{i}.txt").write_text(f"-r r{i + 1}.txt\n")
    d.joinpath(f"r{depth}.txt").write_text(last + "\n")
    return d / "r0.txt"


def test_deep_nesting_works_like_pip_and_too_deep_is_one_line(privpkg_cli: PrivpkgCLI, tmp_path: Path) -> None:
    cli = privpkg_cli
    local_workspace(cli, tmp_path, ("alpha-pkg", "1.0"))
    out = tmp_path / "constraints.txt"
    # 200 levels: pip 26.3 reads them, so privpkg does too.
    top = _chain(tmp_path / "ok", 200, f"alpha-pkg @ {ALPHA}")
    res = cli("resolve", "-r", top, "-o", out)
    assert res.returncode == 0 and "wrote 1 signed constraint to" in res.stderr, res.stderr
    # 1000 levels: pip dies of RecursionError, uv of a stack overflow; privpkg says one line.
    top = _chain(tmp_path / "deep", 1000, f"alpha-pkg @ {ALPHA}")
    cli.fails(2, "resolve", "-r", top, "-o", tmp_path / "deep.txt", match=["line 1: ", "nested more than 256 deep"])
    assert not (tmp_path / "deep.txt").exists()


def test_cycles_are_one_line_and_shared_includes_are_fine(privpkg_cli: PrivpkgCLI, tmp_path: Path) -> None:
    cli = privpkg_cli
    local_workspace(cli, tmp_path, ("alpha-pkg", "1.0"))
    out = tmp_path / "constraints.txt"
    a, b = tmp_path / "a.txt", tmp_path / "sub" / "b.txt"
    b.parent.mkdir()
    a.write_text(f"alpha-pkg @ {ALPHA}\n-r sub/b.txt\n")
    b.write_text("# back to the top\n--requirement=../a.txt\n")
    cli.fails(2, "resolve", "-r", a, "-o", out, match=[f"{b}, line 2: ", "a.txt includes itself"])
    selfish = tmp_path / "self.txt"
    selfish.write_text("-c self.txt\n")
    cli.fails(2, "resolve", "-r", selfish, "-o", out, match=[f"{selfish}, line 1: ", "self.txt includes itself"])
    assert not out.exists()
    # A diamond (two files that include the same third) is no cycle: read once.
    (tmp_path / "common.txt").write_text(f"alpha-pkg @ {ALPHA}\n")
    (tmp_path / "left.txt").write_text("-r common.txt\n")
    (tmp_path / "right.txt").write_text("-c common.txt\n")
    top = tmp_path / "top.txt"
    top.write_text("-r left.txt\n-r right.txt\n")
    res = cli("resolve", "-r", top, "-o", out)
    assert res.returncode == 0, res.stderr
    assert len(_constraints(out)) == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x7fELF\x02\x01\x01\x00\x00\x00\xd0\xff\xfe" + bytes(range(256)), "not a text requirements file"),
        (b"alpha-pkg\n\x00\x00\x00\x00binary\n", "is a binary file"),
        (b"\xff\xfe" + "alpha\x00\n".encode("utf-16-le"), "is a binary file"),  # UTF-16 BOM, then a NUL character
    ],
    ids=["elf", "nul-bytes", "utf16-nul"],
)
def test_binary_requirements_file_is_one_line(privpkg_cli: PrivpkgCLI, tmp_path: Path, content: bytes, message: str) -> None:
    blob = tmp_path / "blob.txt"
    blob.write_bytes(content)
    top = tmp_path / "requirements.txt"
    top.write_text("-r blob.txt\n")
    privpkg_cli.fails(2, "resolve", "-r", top, "-o", tmp_path / "c.txt", match=[f"{top}, line 1: ", message])
    privpkg_cli.fails(2, "resolve", "-r", blob, "-o", tmp_path / "c.txt", match=message)
    privpkg_cli.fails(2, "resolve", "-r", tmp_path, "-o", tmp_path / "c.txt", match="cannot read")


def test_utf8_bom_and_utf16_files_are_read(privpkg_cli: PrivpkgCLI, tmp_path: Path) -> None:
    """pip decodes a requirements file by its BOM; so does privpkg (Windows editors write them)."""
    local_workspace(privpkg_cli, tmp_path, ("alpha-pkg", "1.0"))
    for i, data in enumerate([f"\ufeffalpha-pkg @ {ALPHA}\n".encode(), f"alpha-pkg @ {ALPHA}\r\n".encode("utf-16")]):
        req = tmp_path / f"r{i}.txt"
        req.write_bytes(data)
        res = privpkg_cli("resolve", "-r", req, "-o", tmp_path / f"c{i}.txt")
        assert res.returncode == 0 and "wrote 1 signed constraint to" in res.stderr, res.stderr
