"""Export a melody model folder to ONNX for on-device use (onnxruntime, onnxruntime-web in the browser).

Writes `melody_encoder.onnx` (tokens -> mu, sigma), `melody_decoder.onnx` (the whole 32-step sampler as one
graph: z, temperature and uniforms in, tokens out, see `MusicVAE.decode_tokens_uniform`) and a
`config.json` the browser reads.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from genstudio.storage.files import atomic_write, sha256_file

from .encoding import STEPS_PER_QUARTER, MelodyEncoding
from .model import GREEDY_TEMPERATURE, MusicVAE

ENCODER_FILE = "melody_encoder.onnx"
DECODER_FILE = "melody_decoder.onnx"
CONFIG_FILE = "config.json"
FILES = (ENCODER_FILE, DECODER_FILE, CONFIG_FILE)
EXPORT_FORMAT = 1
BUILTIN_MELODY_MODEL = Path(__file__).resolve().parent.parent / "builtin_models" / "melody-2bar"


class _Encoder(nn.Module):
    def __init__(self, model: MusicVAE) -> None:
        super().__init__()
        self.model = model

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.encode(tokens)


class _Sampler(nn.Module):
    def __init__(self, model: MusicVAE) -> None:
        super().__init__()
        self.model = model

    def forward(self, z: torch.Tensor, temperature: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return self.model.decode_tokens_uniform(z, temperature, u)


def _to_onnx(module: nn.Module, args: tuple[torch.Tensor, ...], opset: int, **kwargs: Any) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        # The TorchScript exporter warns that it is deprecated and that the unrolled loop is traced: both intended.
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, buf, opset_version=opset, dynamo=False, do_constant_folding=True, **kwargs)
    return buf.getvalue()


def export_onnx(model_dir: Path, out_dir: Path, *, opset: int = 17) -> dict[str, Any]:
    """Export the model folder `model_dir` (config.json + model.safetensors) into `out_dir`.

    Each file is written to a temporary name and renamed into place, config.json last, so a reader that
    finds config.json finds the graphs its sha256s name. Returns the summary that config.json holds.
    """
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    model = MusicVAE.from_pretrained(model_dir).float().eval()
    cfg = model.config
    out_dir.mkdir(parents=True, exist_ok=True)
    steps, b = cfg.max_seq_len, 2

    tokens = torch.zeros(b, steps, dtype=torch.long)
    encoder = _to_onnx(
        _Encoder(model),
        (tokens,),
        opset,
        input_names=["tokens"],
        output_names=["mu", "sigma"],
        dynamic_axes={"tokens": {0: "batch"}, "mu": {0: "batch"}, "sigma": {0: "batch"}},
    )
    z = torch.zeros(b, cfg.z_size)
    sampler = _to_onnx(
        _Sampler(model),
        (z, torch.tensor(1.0), torch.full((b, steps), 0.5)),
        opset,
        input_names=["z", "temperature", "u"],
        output_names=["tokens"],
        dynamic_axes={"z": {0: "batch"}, "u": {0: "batch"}, "tokens": {0: "batch"}},
    )
    atomic_write(out_dir / ENCODER_FILE, encoder)
    atomic_write(out_dir / DECODER_FILE, sampler)

    weights = model_dir / "model.safetensors"
    encoding = MelodyEncoding(cfg.min_pitch, cfg.max_pitch)
    summary: dict[str, Any] = {
        "format": EXPORT_FORMAT,
        "source_model": model_dir.name,
        "source_sha256": sha256_file(weights),
        "z_size": cfg.z_size,
        "num_steps": steps,
        "min_pitch": cfg.min_pitch,
        "max_pitch": cfg.max_pitch,
        "classes": encoding.num_classes,
        "steps_per_quarter": cfg.steps_per_quarter or STEPS_PER_QUARTER,
        "greedy_temperature": GREEDY_TEMPERATURE,
        "opset": opset,
        "files": {
            ENCODER_FILE: {"sha256": hashlib.sha256(encoder).hexdigest(), "bytes": len(encoder)},
            DECODER_FILE: {"sha256": hashlib.sha256(sampler).hexdigest(), "bytes": len(sampler)},
        },
    }
    atomic_write(out_dir / CONFIG_FILE, (json.dumps(summary, indent=2) + "\n").encode())
    return summary


def main(argv: list[str] | None = None) -> int:
    """`genstudio export onnx [--model DIR] -o OUT_DIR`: prints a one-line summary per file."""
    parser = argparse.ArgumentParser(prog="genstudio export onnx", description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=BUILTIN_MELODY_MODEL, help="model folder (default: built-in)")
    parser.add_argument("-o", "--out", type=Path, required=True, help="output folder")
    parser.add_argument("--opset", type=int, default=17)
    args = parser.parse_args(argv)
    if not (args.model / "config.json").is_file() or not (args.model / "model.safetensors").is_file():
        print(f"error: {args.model} is not a model folder (config.json + model.safetensors)", file=sys.stderr)
        return 2
    try:
        summary = export_onnx(args.model, args.out, opset=args.opset)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for name, meta in summary["files"].items():
        print(f"{args.out / name}  {meta['bytes']:,} bytes  sha256 {meta['sha256'][:16]}")
    print(f"{args.out / CONFIG_FILE}  z_size {summary['z_size']}, {summary['num_steps']} steps")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
