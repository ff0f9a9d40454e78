"""Device, precision and memory choice for every kind of machine, on a machine without a GPU: the choice
is a function of the settings and a described `Machine`; the memory switches are applied to a real
(tiny) diffusers pipeline; a device that is not there stops `serve` at start; an out-of-memory job
fails with the setting to change and the worker goes on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from genstudio.image.backend import generate, load_pipeline
from genstudio.image.device import (
    DeviceError,
    Machine,
    Placement,
    apply_memory,
    pick_device,
    pick_dtype,
    pick_memory,
    place,
)
from genstudio.image.models import ModelEntry
from genstudio.jobs.base import JobFailed

GB = 1 << 30


def gpu(name: str = "RTX 4090", total: int = 24 * GB, free: int = 22 * GB, bf16: bool = True) -> dict:
    return {"name": name, "total": total, "free": free, "bf16": bf16}


CUDA_BOX = Machine(cuda=[gpu()], torch_cuda_build=True, ram_free=32 * GB)
TWO_GPUS = Machine(cuda=[gpu(), gpu("RTX 3060", 12 * GB, 11 * GB)], torch_cuda_build=True)
MAC = Machine(mps=True, ram_free=16 * GB)
CPU_ONLY = Machine(ram_free=24 * GB, cpu_bf16=True)
OLD_GPU = Machine(cuda=[gpu("GTX 1080", 8 * GB, 7 * GB, bf16=False)], torch_cuda_build=True)


@pytest.mark.parametrize(
    ("machine", "expected"),
    [(CUDA_BOX, "cuda:0"), (TWO_GPUS, "cuda:0"), (MAC, "mps"), (CPU_ONLY, "cpu")],
)
def test_auto_picks_cuda_then_mps_then_cpu(machine: Machine, expected: str) -> None:
    assert pick_device("auto", machine) == expected


def test_named_devices_are_honoured_or_refused_naming_the_setting() -> None:
    assert pick_device("cuda:1", TWO_GPUS) == "cuda:1"
    assert pick_device("cuda", TWO_GPUS) == "cuda:0"
    assert pick_device("cpu", CUDA_BOX) == "cpu"
    with pytest.raises(DeviceError, match=r"GENSTUDIO_DEVICE=cuda:2: only 2 CUDA device"):
        pick_device("cuda:2", TWO_GPUS)
    with pytest.raises(DeviceError, match=r"GENSTUDIO_DEVICE=cuda: no CUDA device: this torch is a CPU-only build"):
        pick_device("cuda", CPU_ONLY)
    with pytest.raises(DeviceError, match=r"GENSTUDIO_DEVICE=mps: no Apple GPU"):
        pick_device("mps", CUDA_BOX)
    with pytest.raises(DeviceError, match="GENSTUDIO_DEVICE='tpu'"):
        pick_device("tpu", CUDA_BOX)


def test_precision_float16_on_gpus_bfloat16_for_bf16_families_float32_on_cpu() -> None:
    assert pick_dtype("auto", "cuda:0", CUDA_BOX, "sdxl") == "float16"
    assert pick_dtype("auto", "cuda:0", CUDA_BOX, "flux") == "bfloat16"
    assert pick_dtype("auto", "cuda:0", OLD_GPU, "sd3") == "float16"  # no bf16 on Pascal
    assert pick_dtype("auto", "mps", MAC, "sd1") == "float16"
    assert pick_dtype("auto", "cpu", CPU_ONLY, "sd1") == "bfloat16"  # AVX-512 BF16: measured faster
    assert pick_dtype("auto", "cpu", Machine(ram_free=8 * GB), "sd1") == "float32"  # no bf16 in hardware
    assert pick_dtype("auto", "cpu", CPU_ONLY, "builtin") == "float32"
    assert pick_dtype("bfloat16", "cpu", CPU_ONLY) == "bfloat16"
    with pytest.raises(DeviceError, match="GENSTUDIO_DTYPE=float16 on the CPU"):
        pick_dtype("float16", "cpu", CPU_ONLY)
    with pytest.raises(DeviceError, match="GENSTUDIO_DTYPE=bfloat16: GTX 1080 has no bfloat16"):
        pick_dtype("bfloat16", "cuda:0", OLD_GPU)


def test_memory_mode_from_free_memory_and_model_size() -> None:
    sdxl = 7 * GB
    assert pick_memory("auto", "cuda:0", CUDA_BOX, sdxl) == "normal"  # 22 GB free
    assert pick_memory("auto", "cuda:0", OLD_GPU, sdxl) == "low"  # 7 GB free: fits once
    small = Machine(cuda=[gpu("MX150", 2 * GB, 2 * GB)], torch_cuda_build=True)
    assert pick_memory("auto", "cuda:0", small, sdxl) == "minimal"
    assert pick_memory("auto", "cpu", Machine(ram_free=8 * GB), 7 * GB) == "low"
    assert pick_memory("minimal", "cuda:0", CUDA_BOX, sdxl) == "minimal"
    with pytest.raises(DeviceError, match="GENSTUDIO_MEMORY='tiny'"):
        pick_memory("tiny", "cpu", CPU_ONLY)
    assert place("auto", "auto", "auto", TWO_GPUS, family="sdxl", model_bytes=sdxl) == Placement(
        "cuda:0", "float16", "normal"
    )


class Recorder:
    """Stands in for a pipeline on a GPU this machine lacks: records which diffusers switch was used."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []

    def __getattr__(self, name: str):  # noqa: ANN204
        if name.startswith(("enable_", "to")):
            return lambda *a, **k: self.calls.append((name, k.get("device", a[0] if a else None)))
        raise AttributeError(name)


@pytest.mark.parametrize(
    ("memory", "switch"),
    [("normal", "to"), ("low", "enable_model_cpu_offload"), ("minimal", "enable_sequential_cpu_offload")],
)
def test_gpu_memory_modes_use_diffusers_offload_switches(memory: str, switch: str) -> None:
    pipe = Recorder()
    apply_memory(pipe, Placement("cuda:1", "float16", memory))
    assert pipe.calls[0] == (switch, "cuda:1")
    assert (("enable_attention_slicing", None) in pipe.calls) == (memory != "normal")


def test_low_memory_on_a_real_pipeline_slices_attention_and_tiles_the_vae(tiny_sd_dir: Path) -> None:
    entry = ModelEntry(id="tiny", format="folder", source=str(tiny_sd_dir))
    pipe = load_pipeline(entry, Placement("cpu", "float32", "low"))
    assert pipe.vae.use_tiling and pipe.vae.use_slicing
    assert pipe.unet.dtype == torch.float32 and pipe.device.type == "cpu"
    bf16 = load_pipeline(entry, Placement("cpu", "bfloat16", "normal"))
    assert bf16.unet.dtype == torch.bfloat16
    conv = bf16.unet.conv_in.weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()


def test_out_of_memory_fails_the_job_naming_the_setting(tiny_sd_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from genstudio.image.params import ImageParams

    pipe = load_pipeline(ModelEntry(id="tiny", format="folder", source=str(tiny_sd_dir)))
    pipe._genstudio_placement = Placement("cuda:0", "float16", "normal")

    def no_room(*_a: object, **_k: object) -> None:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(pipe.unet, "forward", no_room)
    p = ImageParams(prompt="x", negative_prompt="", style=None, model="tiny", seed=1, steps=2, guidance=1.0,
                    width=64, height=64, batch=1, sampler="ddim", tile=False)
    with pytest.raises(JobFailed, match=r"out of memory on cuda:0 .*set GENSTUDIO_MEMORY=low"):
        generate(pipe, p, prompt="x", negative_prompt="")


def test_serve_stops_at_start_naming_the_device_setting(tmp_path: Path) -> None:
    env = {"GENSTUDIO_DEVICE": "cuda", "GENSTUDIO_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "genstudio.cli", "serve", "--port", "1"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "GENSTUDIO_DEVICE=cuda" in lines[0], done.stderr


def test_health_reports_device_and_dtype(client) -> None:  # noqa: ANN001
    from genstudio.image.device import machine

    health = client.get("/api/health").json()
    # The default model here is an SD 1.x pipeline: bfloat16 where the CPU has it in hardware.
    assert (health["device"], health["dtype"]) == ("cpu", "bfloat16" if machine().cpu_bf16 else "float32")
    assert health["memory"] in ("normal", "low")


def test_memory_modes_have_what_diffusers_needs_for_them() -> None:
    """Model and sequential CPU offload (GENSTUDIO_MEMORY=low|minimal on a GPU) and loading without a random
    init first (an SDXL single file: 13.5 GB peak instead of 22.7 GB) need accelerate in the environment."""
    from diffusers.utils import is_accelerate_available

    assert is_accelerate_available()
