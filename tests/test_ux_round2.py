"""Session 18's review, round 2 (findings 14, 18, 23, 24, 25), through the real CLI:

- ``doctor``: two connections on one target are one warning naming both; ``--url`` is checked
  (``host/path`` means https, as ``auth status`` takes it; a malformed URL is one usage line), its
  own lookup is not recorded in the lookup log, and a URL nothing answers gets ``auth status``'s
  hint; ``--days`` refuses a negative number;
- words: counts in the right number, ``workspace remove`` of the built-in ``default`` or of a
  project workspace without ``--project`` says what to do, ``wheel add`` names each file once, a
  malformed ``$PRIVPKG_CONNECTIONS`` is one line with the JSON error's position, ``auth status``
  takes a URL with user info without echoing it, ``privpkg --help`` names no file;
- one concept, one name: the aliases (``env create --requirement``, ``connection set
  --endpoint-url``, ``workspace add --endpoint``, ``setup conda --config``), upper-case
  positionals, and ``connection list``'s expiry as ``auth status`` shows it.
"""

from __future__ import annotations

import datetime
import http.server
import json
import sys
import threading
from pathlib import Path

from support.cli import PrivpkgCLI

from privpkg import envvars
from privpkg.testing import free_port

PAT = "ux2-PAT-5d41402abc4b2a76b971"
OTHER = "ux2-OTHER-7d793037a0760186574b"


def _days(n: int) -> str:
    return (datetime.date.today() + datetime.timedelta(days=n)).isoformat()


def test_doctor_shared_target_url_and_days(privpkg_cli: PrivpkgCLI) -> None:
    cli = privpkg_cli
    cli.outputs.add_secret(PAT)
    cli.outputs.add_secret(OTHER)
    cli.ok("connection", "set", "feed-a", "--target", "https://pkgs.example.com/org/feed", stdin=PAT)
    cli.ok("connection", "set", "feed-b", "--target", "https://pkgs.example.com/org/feed/", "--username", "me", stdin=OTHER)
    cli.ok("connection", "set", "other", "--target", "https://pkgs.example.com/org/other", stdin=PAT)
    res = cli("doctor", "--pip", sys.executable)
    shared = [line for line in res.stdout.splitlines() if "same target" in line]
    assert shared == [(
        "warn  connections 'feed-a' (username __token__) and 'feed-b' (username me) have the same target "
        "https://pkgs.example.com/org/feed/: a lookup that names no username gets 'feed-a'; remove the one you do not use: "
        "privpkg connection delete NAME")], res.stdout

    # host/path means https, as auth status takes it; what nothing answers gets auth status's hint.
    res = cli("doctor", "--pip", sys.executable, "--url", "nowhere.example/x/simple")
    assert res.returncode == 1, res.stdout
    assert ("FAIL  no keyring backend has a credential for https://nowhere.example/x/simple/ "
            "(log in with: privpkg auth login https://nowhere.example/x/simple/)") in res.stdout.splitlines(), res.stdout
    # doctor's own question is not a lookup pip made: the log has none of it.
    cli.ok("doctor", "--url", "https://pkgs.example.com/org/feed/simple/", "--pip", sys.executable)
    assert json.loads(cli.ok("doctor", "--last", "--json")) == []
    # A bare host stays pip's bare-host lookup, with the index URL to check named.
    res = cli("doctor", "--pip", sys.executable, "--url", "nowhere.example")
    assert "privpkg doctor --url https://nowhere.example/PATH" in res.stdout, res.stdout

    cli.fails(2, "doctor", "--url", "https://", match="--url: not an absolute URL")
    cli.fails(2, "doctor", "--url", "bad host/x", match="--url: ")
    cli.fails(2, "doctor", "--url", f"{PAT}@h.example", match="--url: ***@h.example has user info")  # the PAT never echoed
    cli.fails(2, "doctor", "--days", "-3", match="--days takes a number of days (0 or more), got -3")
    cli.outputs.check()


def test_words_counts_and_hints(privpkg_cli: PrivpkgCLI, tmp_path: Path) -> None:
    cli = privpkg_cli
    cli.outputs.add_secret(PAT)
    cli.ok("connection", "set", "soon", "--target", "https://h.example/soon", "--expires", _days(1), stdin=PAT)
    cli.ok("connection", "set", "later", "--target", "https://h.example/later", "--expires", _days(99), stdin=PAT)
    listed = cli.ok("connection", "list")
    assert f"{_days(1)} (in 1 day)" in listed and f"{_days(99)} (in 99 days)" in listed, listed
    assert f"{_days(1)} (in 1 day)" in cli.ok("auth", "status")
    res = cli("connection", "set", "soon2", "--target", "https://h.example/soon", "--username", "ci", stdin=PAT)
    assert "overlaps 1 other connection: " in res.stderr, res.stderr

    # A URL with user info is looked up without it, and never echoed.
    res = cli("auth", "status", f"https://u:{PAT}@h.example/soon/simple/")
    assert res.returncode == 0 and "soon" in res.stdout and "u:" not in res.stdout + res.stderr, res.stdout + res.stderr

    res = cli("connection", "list", env={envvars.CONNECTIONS: "not json"})
    assert res.returncode == 0 and res.stderr == (
        "privpkg: warning: ignoring $PRIVPKG_CONNECTIONS: it is not valid JSON (expecting value at line 1, column 1)\n"), res.stderr

    cli.fails(2, "workspace", "remove", "default", match="'default' is built in and cannot be removed")
    proj = tmp_path / "proj"
    proj.mkdir()
    cli.ok("workspace", "add", "shared", "--local", proj / "wheels", "--project", cwd=proj)
    cli.fails(1, "workspace", "remove", "shared", cwd=proj,
              match=f"(it is in {proj / 'privpkg.toml'}: privpkg workspace remove shared --project)")
    cli.ok("workspace", "add", "mine", "--local", tmp_path / "mine")
    cli.fails(1, "workspace", "remove", "mine", "--project", cwd=proj, match="(it is in ")

    bad = tmp_path / "bad-1.0-py3-none-any.whl"
    bad.write_bytes(b"not a zip")
    res = cli("wheel", "add", tmp_path / "nope-1.0-py3-none-any.whl", bad)
    assert res.returncode == 2
    lines = res.stderr.splitlines()
    assert lines[0] == f"privpkg: error: no such file: {tmp_path / 'nope-1.0-py3-none-any.whl'}", lines
    assert lines[1] == "privpkg: error: bad-1.0-py3-none-any.whl is not a zip file, so not a wheel", lines

    helped = " ".join(cli.ok("--help").split())  # argparse wraps the epilog
    assert "README" not in helped and "privpkg COMMAND --help" in helped, helped
    cli.outputs.check()


def test_one_concept_one_name(privpkg_cli: PrivpkgCLI, tmp_path: Path) -> None:
    cli = privpkg_cli
    cli.outputs.add_secret(PAT)
    (tmp_path / "requirements.txt").write_text("requests>=2\n")
    cli.ok("env", "create", "r1", "--requirement", tmp_path / "requirements.txt", "-o", tmp_path / "r1")
    assert json.loads((tmp_path / "r1" / "definition.json").read_text())["pip"] == ["requests>=2"]
    out = cli.ok("connection", "set", "minio", "--category", "S3", "--target", "s3://bucket", "--username", "AKIAEXAMPLE",
                 "--endpoint-url", "http://127.0.0.1:9000", stdin=PAT)
    assert "endpoint http://127.0.0.1:9000" in out, out
    out = cli.ok("workspace", "add", "w3", "--s3", "s3://bucket", "--endpoint", "http://127.0.0.1:9000")
    assert json.loads(cli.ok("workspace", "show", "w3", "--json"))["endpoint_url"] == "http://127.0.0.1:9000", out
    assert "--config FILE" in cli.ok("setup", "conda", "--help")
    for argv, metavar in ((["connection", "show"], "NAME"), (["workspace", "remove"], "NAME"), (["wheel", "url"], "FILE"),
                          (["resolve"], "URL"), (["env", "build"], "NAME[:VERSION|@LABEL]")):
        usage = cli.ok(*argv, "--help").split("\n\n")[0]
        assert metavar in usage and metavar.lower() not in usage.replace("privpkg", ""), usage
    assert "a privpkg:// URL" in cli.ok("resolve", "--help")
    cli.outputs.check()


def test_unreachable_in_words(privpkg_cli: PrivpkgCLI) -> None:
    """``connection test``'s UNREACHABLE says why in words: https to a plain-http server (not
    OpenSSL's [SSL: WRONG_VERSION_NUMBER]), an S3 endpoint nothing listens on (not botocore's
    class name)."""
    cli = privpkg_cli
    cli.outputs.add_secret(PAT)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        cli.ok("connection", "set", "plain", "--target", f"https://127.0.0.1:{server.server_port}/f", stdin=PAT)
        res = cli("connection", "test", "plain", "--timeout", "5")
    finally:
        server.shutdown()
        server.server_close()
    assert res.returncode == 1 and res.stdout == (
        f"UNREACHABLE: https://127.0.0.1:{server.server_port}/f/: the server does not speak TLS (is it http?)\n"), res.stdout
    cli.ok("connection", "set", "s3c", "--category", "S3", "--target", "s3://bucket", "--username", "AKIAEXAMPLE",
           "--endpoint", f"http://127.0.0.1:{free_port()}", stdin=PAT)
    res = cli("connection", "test", "s3c", "--timeout", "5")
    assert res.returncode == 1 and "could not connect to the endpoint (is it running, and is its URL right?)" in res.stdout, res.stdout
    cli.outputs.check()
