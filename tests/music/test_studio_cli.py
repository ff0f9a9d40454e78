"""`genstudio music ...` on the command line (in-process: same code as the console script)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from genstudio.cli import main

pytest.importorskip("pretty_midi")


def test_sample_interpolate_vary_write_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = ["--data-dir", str(tmp_path / "d")]
    out = tmp_path / "out"
    assert (
        main(
            [
                "music",
                "sample",
                "--n",
                "2",
                "--bars",
                "4",
                "--key",
                "A minor",
                "--tempo",
                "96",
                "--instrument",
                "flute",
                "--seed",
                "4",
                "--formats",
                "midi,musicxml",
                "-o",
                str(out),
                *data,
            ]
        )
        == 0
    )
    summary = json.loads(capsys.readouterr().out)
    mids = sorted(out.glob("*.mid"))
    assert len(mids) == 2 and len(list(out.glob("*.musicxml"))) == 2 and summary["seed"] == 4
    assert all(
        m["key"] == "A minor" and m["tempo"] == 96 and m["instrument_name"] == "Flute" for m in summary["melodies"]
    )

    assert (
        main(["music", "interpolate", str(mids[0]), str(mids[1]), "--steps", "3", "-o", str(tmp_path / "i"), *data])
        == 0
    )
    assert len(json.loads(capsys.readouterr().out)["files"]) == 3
    assert (
        main(["music", "vary", str(mids[0]), "--n", "2", "--similarity", "0.9", "-o", str(tmp_path / "v"), *data]) == 0
    )
    assert [m["bars"] for m in json.loads(capsys.readouterr().out)["melodies"]] == [4, 4]


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["music", "sample", "--bars", "10000"], "bars: at most"),
        (["music", "sample", "--key", "Q major"], "key"),
        (["music", "sample", "--formats", "mp3"], "--formats"),
        (["music", "vary", "/nonexistent.mid"], "no such file"),
    ],
)
def test_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], words: str) -> None:
    assert main([*argv, "-o", str(tmp_path / "o"), "--data-dir", str(tmp_path / "d")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("genstudio: error:") and words in err and "\n" not in err


def test_not_midi_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "x.mid"
    bad.write_bytes(b"hello")
    assert main(["music", "vary", str(bad), "-o", str(tmp_path / "o")]) == 1
    assert "not a MIDI file" in capsys.readouterr().err
