"""The `genstudio` command as a user runs it: real processes, real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from PIL import Image


def run(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GENSTUDIO_DATA_DIR": str(data_dir), "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "genstudio.cli", *args], capture_output=True, text=True, timeout=300, env=env
    )


def test_image_verify_and_models(tmp_path: Path, tiny_sd_dir: Path) -> None:
    data = tmp_path / "data"
    added = run("models", "add", str(tiny_sd_dir), "--name", "tiny-sd", data_dir=data)
    assert added.returncode == 0, added.stderr
    listed = run("models", "list", data_dir=data)
    assert "tiny-sd" in listed.stdout

    out = tmp_path / "out" / "city.png"
    r = run(
        "image",
        "a futuristic city with flying cars",
        "--model",
        "tiny-sd",
        "--width",
        "64",
        "--height",
        "64",
        "--steps",
        "2",
        "--seed",
        "5",
        "--batch",
        "2",
        "--style",
        "cinematic-film-still",
        "-o",
        str(out),
        data_dir=data,
    )
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    files = [Path(f) for f in result["files"]]
    assert [f.name for f in files] == ["city-1.png", "city-2.png"]
    im = Image.open(files[1])
    assert im.size == (64, 64) and "Seed: 6," in im.text["parameters"]
    assert "Style: cinematic-film-still" in im.text["parameters"]

    v = run("verify", str(files[0]), data_dir=data)
    assert v.returncode == 0, v.stderr
    report = json.loads(v.stdout)
    assert report["ai_generated"] is True and report["manifest"]["valid"] is True


def test_errors_are_one_line_and_nonzero(tmp_path: Path, tiny_sd_dir: Path) -> None:
    data = tmp_path / "data"
    r = run("image", "x", "--width", "100", "-o", str(tmp_path / "x.png"), data_dir=data)
    assert r.returncode == 1
    assert r.stderr.strip().count("\n") == 0 and "width" in r.stderr and "multiple of 8" in r.stderr
    assert not (tmp_path / "x.png").exists()

    r = run("models", "pull", "stabilityai/sd-turbo", data_dir=data)
    assert r.returncode == 1 and r.stderr.startswith("genstudio: error: ") and "Traceback" not in r.stderr

    r = run("verify", str(tmp_path / "missing.png"), data_dir=data)
    assert r.returncode == 1 and "Traceback" not in r.stderr
