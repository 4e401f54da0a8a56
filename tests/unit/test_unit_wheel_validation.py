"""Wheel validation in-process: what ``wheel add`` accepts and the one line it refuses with."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from privpkg.errors import UsageError
from privpkg.testing import make_wheel
from privpkg.wheels import check_filename, validate_wheel


def test_a_made_wheel_validates(tmp_path: Path) -> None:
    whl = make_wheel(tmp_path, "My_Lib", "1.0")
    info = validate_wheel(whl)
    assert (info.name, info.version, info.filename) == ("my-lib", "1.0", "My_Lib-1.0-py3-none-any.whl")
    assert len(info.sha256) == 64 and info.size == whl.stat().st_size


def test_payload_wheel_validates_with_its_size(tmp_path: Path) -> None:
    whl = make_wheel(tmp_path, "big", "2.0", payload_size=3 << 20)
    assert validate_wheel(whl).size > 3 << 20


@pytest.mark.parametrize(
    ("filename", "message"),
    [
        ("../x-1.0-py3-none-any.whl", "no path separators"),
        ("a/x-1.0-py3-none-any.whl", "no path separators"),
        ("x.whl", "not a valid wheel file name"),
        ("x-1.0.tar.gz", "not a valid wheel file name"),
    ],
)
def test_bad_file_names(filename: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        check_filename(filename)


def test_metadata_must_match_the_file_name(tmp_path: Path) -> None:
    whl = make_wheel(tmp_path / "a", "other", "1.0")
    renamed = whl.rename(tmp_path / "mine-1.0-py3-none-any.whl")
    with pytest.raises(UsageError, match="METADATA says Name: other"):
        validate_wheel(renamed)
    wrong_version = make_wheel(tmp_path / "b", "mine", "2.0").rename(tmp_path / "b" / "mine-1.0-py3-none-any.whl")
    with pytest.raises(UsageError, match="METADATA says Version: 2.0"):
        validate_wheel(wrong_version)


def test_not_a_zip_and_no_metadata(tmp_path: Path) -> None:
    junk = tmp_path / "x-1.0-py3-none-any.whl"
    junk.write_bytes(b"not a zip")
    with pytest.raises(UsageError, match="is not a zip file"):
        validate_wheel(junk)
    with zipfile.ZipFile(junk, "w") as zf:
        zf.writestr("x.py", "")
    with pytest.raises(UsageError, match="has 0 .dist-info/METADATA files"):
        validate_wheel(junk)
    with pytest.raises(UsageError, match="no such file"):
        validate_wheel(tmp_path / "y-1.0-py3-none-any.whl")
