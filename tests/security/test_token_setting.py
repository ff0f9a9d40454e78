"""A guessable API token is refused at start: `genstudio serve` stops with one line naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from genstudio.config import Settings


def serve(tmp_path: Path, token: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "genstudio.cli", "serve", "--port", "0", "--data-dir", str(tmp_path / "data")],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "GENSTUDIO_API_TOKEN": token},
    )


def test_short_token_refused(tmp_path: Path) -> None:
    r = serve(tmp_path, "s3cret-token")  # 12 characters
    assert r.returncode == 1, r.stdout
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("genstudio: error:"), r.stderr
    assert "GENSTUDIO_API_TOKEN" in r.stderr and "at least 16" in r.stderr and "s3cret" not in r.stderr, r.stderr


@pytest.mark.parametrize("token", ["", " " * 20, "\t\n" * 10, "sixteen-chars-but has-a-space"])
def test_blank_token_refused(tmp_path: Path, token: str, monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # noqa: ANN001
    from genstudio.cli import main

    monkeypatch.setenv("GENSTUDIO_API_TOKEN", token)
    with pytest.raises(ValidationError, match="GENSTUDIO_API_TOKEN"):
        Settings(data_dir=tmp_path)
    assert main(["serve", "--port", "0", "--data-dir", str(tmp_path / "data")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "GENSTUDIO_API_TOKEN" in err, err


def test_long_token_accepted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENSTUDIO_API_TOKEN", "x" * 16)
    assert Settings(data_dir=tmp_path).api_token == "x" * 16
    monkeypatch.delenv("GENSTUDIO_API_TOKEN")
    assert Settings(data_dir=tmp_path).api_token is None  # unset: no token (loopback only)
