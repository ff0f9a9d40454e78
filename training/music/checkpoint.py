"""Resumable checkpoints of the music training scripts (train_coconet.py, train_hier.py): a run folder holds
`ckpt-STEP/` (the model folder, Adam state, the batch generator's state, step and minutes trained; the last
`keep`) and `export-STEP/` (the model folder alone, loadable with the model class's from_pretrained)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


def save(
    run: Path, step: int, elapsed: float, model, opt: torch.optim.Optimizer, gen: torch.Generator, keep: int = 2
) -> None:  # noqa: ANN001
    final, tmp = run / f"ckpt-{step:07d}", run / f".ckpt-{step:07d}.tmp"
    if final.exists():
        return
    model.save_pretrained(tmp)
    sd = opt.state_dict()
    save_file(
        {f"{i}.{k}": torch.as_tensor(v).clone().contiguous() for i, s in sd["state"].items() for k, v in s.items()},
        tmp / "optimizer.safetensors",
    )
    save_file({"gen": gen.get_state()}, tmp / "rng.safetensors")
    (tmp / "state.json").write_text(
        json.dumps({"step": step, "elapsed_s": elapsed, "param_groups": sd["param_groups"]})
    )
    tmp.rename(final)
    model.save_pretrained(run / f"export-{step:07d}")
    for old in sorted(run.glob("ckpt-*"))[:-keep]:
        for f in old.iterdir():
            f.unlink()
        old.rmdir()


def resume(run: Path, model, opt: torch.optim.Optimizer, gen: torch.Generator) -> tuple[int, float]:  # noqa: ANN001
    """Load the run's latest checkpoint into model, optimizer and generator: (step, seconds trained), or
    (0, 0.0) for a new run."""
    ckpts = sorted(run.glob("ckpt-*"))
    if not ckpts:
        return 0, 0.0
    src = ckpts[-1]
    model.load_state_dict(load_file(src / "model.safetensors"))
    st = json.loads((src / "state.json").read_text())
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, v in load_file(src / "optimizer.safetensors").items():
        i, k = key.split(".", 1)
        state.setdefault(int(i), {})[k] = v
    opt.load_state_dict({"state": state, "param_groups": st["param_groups"]})
    gen.set_state(load_file(src / "rng.safetensors")["gen"])
    print(f"resumed from {src} at step {st['step']}", flush=True)
    return st["step"], st["elapsed_s"]
