"""Where and how pipelines run: device, precision and memory mode, chosen from settings and the machine.

The choice is a pure function of the settings and a `Machine` (what torch reports), so that every case
(CUDA, several GPUs, Apple MPS, CPU only, little memory) is tested on a machine without a GPU.

    GENSTUDIO_DEVICE  auto | cpu | cuda | cuda:N | mps   (auto: CUDA, then MPS, then the CPU)
    GENSTUDIO_DTYPE   auto | float32 | float16 | bfloat16 (auto: float16 on GPUs, bfloat16 for the
                      families trained in it where the GPU has it; on the CPU what CPU_DTYPE says)
    GENSTUDIO_MEMORY  auto | normal | low | minimal       (auto: from free memory and the model's size)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

DEVICE_SETTING = re.compile(r"^(auto|cpu|cuda|cuda:\d{1,2}|mps)$")
DTYPES = ("auto", "float32", "float16", "bfloat16")
MEMORY_MODES = ("auto", "normal", "low", "minimal")
# Families whose weights were trained in bfloat16 and overflow in float16 (black or NaN images).
BF16_FAMILIES = frozenset({"sd3", "flux"})
# On the CPU: bfloat16 for the Stable Diffusion families on CPUs with AVX-512 BF16 or AMX, where
# bench/run_cpu_speed_bench.py measured it 2.0-2.5x faster than float32 at full size with a mean pixel
# difference under 1/255 (docs/benchmarks.md); float32 elsewhere (bfloat16 without hardware support is
# emulated and slower). The built-in model always runs in float32.
CPU_BF16_FAMILIES: frozenset[str] = frozenset({"sd1", "sd2", "sdxl", "sdxl-refiner", "sd3", "flux"})


class DeviceError(ValueError):
    """The settings ask for a device or precision this machine does not have; the message names the setting."""


@dataclass
class Machine:
    """What torch reports about this machine (`Machine.probe()`), or a made-up one in tests."""

    cuda: list[dict[str, Any]] = field(default_factory=list)  # per GPU: name, total, free (bytes), bf16
    mps: bool = False
    cpu_bf16: bool = False  # AVX-512 BF16 or AMX: bfloat16 matmuls in hardware
    ram_free: int = 0
    torch_cuda_build: bool = False

    @classmethod
    def probe(cls) -> Machine:
        import torch

        gpus = []
        if torch.cuda.is_available():
            for i in range(torch.cuda.device_count()):
                free, total = torch.cuda.mem_get_info(i)
                gpus.append({"name": torch.cuda.get_device_name(i), "total": total, "free": free,
                             "bf16": torch.cuda.is_bf16_supported()})
        mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
        return cls(cuda=gpus, mps=mps, cpu_bf16=_cpu_has_bf16(), ram_free=_ram_free(),
                   torch_cuda_build=torch.version.cuda is not None)


@dataclass(frozen=True)
class Placement:
    device: str  # cpu | cuda:N | mps
    dtype: str  # float32 | float16 | bfloat16
    memory: str  # normal | low | minimal

    def torch_dtype(self) -> Any:
        import torch

        return getattr(torch, self.dtype)


def pick_device(setting: str, machine: Machine) -> str:
    setting = (setting or "auto").strip().lower()
    if not DEVICE_SETTING.match(setting):
        raise DeviceError(f"GENSTUDIO_DEVICE={setting!r}: use auto, cpu, cuda, cuda:N or mps")
    if setting == "auto":
        return "cuda:0" if machine.cuda else "mps" if machine.mps else "cpu"
    if setting == "cpu":
        return "cpu"
    if setting == "mps":
        if not machine.mps:
            raise DeviceError("GENSTUDIO_DEVICE=mps: no Apple GPU (MPS) here; use auto or cpu")
        return "mps"
    index = int(setting.split(":")[1]) if ":" in setting else 0
    if not machine.cuda:
        why = "this torch is a CPU-only build (see README: GPU install)" if not machine.torch_cuda_build else (
            "torch sees no CUDA device (driver?)")
        raise DeviceError(f"GENSTUDIO_DEVICE={setting}: no CUDA device: {why}; use auto or cpu")
    if index >= len(machine.cuda):
        raise DeviceError(f"GENSTUDIO_DEVICE={setting}: only {len(machine.cuda)} CUDA device(s) (cuda:0..cuda:"
                          f"{len(machine.cuda) - 1})")
    return f"cuda:{index}"


def pick_dtype(setting: str, device: str, machine: Machine, family: str | None = None) -> str:
    setting = (setting or "auto").strip().lower()
    if setting not in DTYPES:
        raise DeviceError(f"GENSTUDIO_DTYPE={setting!r}: use one of {', '.join(DTYPES)}")
    gpu = _gpu(device, machine)
    if setting == "float16" and device == "cpu":
        raise DeviceError("GENSTUDIO_DTYPE=float16 on the CPU: most CPU kernels lack it; use float32 or bfloat16")
    if setting == "bfloat16" and gpu is not None and not gpu.get("bf16", True):
        raise DeviceError(f"GENSTUDIO_DTYPE=bfloat16: {gpu.get('name', device)} has no bfloat16; use float16")
    if setting != "auto":
        return setting
    if device.startswith("cuda"):
        if family in BF16_FAMILIES and gpu is not None and gpu.get("bf16", False):
            return "bfloat16"
        return "float16"
    if device == "mps":
        return "float16"
    return "bfloat16" if (family in CPU_BF16_FAMILIES and machine.cpu_bf16) else "float32"


def pick_memory(setting: str, device: str, machine: Machine, model_bytes: int = 0) -> str:
    """auto: everything resident when the model fits twice over (weights + activations), attention slicing
    and VAE tiling plus model offload when it fits once, sequential offload below that."""
    setting = (setting or "auto").strip().lower()
    if setting not in MEMORY_MODES:
        raise DeviceError(f"GENSTUDIO_MEMORY={setting!r}: use one of {', '.join(MEMORY_MODES)}")
    if setting != "auto":
        return setting
    gpu = _gpu(device, machine)
    free = gpu["free"] if gpu is not None else machine.ram_free
    if not model_bytes or not free:
        return "normal"
    if free >= 2 * model_bytes:
        return "normal"
    if free >= model_bytes and device != "cpu":
        return "low"
    if device == "cpu":
        return "low"  # no offload on the CPU: slicing and tiling only
    return "minimal"


def place(device: str, dtype: str, memory: str, machine: Machine | None = None, *, family: str | None = None,
          model_bytes: int = 0) -> Placement:
    machine = machine if machine is not None else Machine.probe()
    dev = pick_device(device, machine)
    return Placement(dev, pick_dtype(dtype, dev, machine, family), pick_memory(memory, dev, machine, model_bytes))


_MACHINE: Machine | None = None


def machine() -> Machine:
    """This machine, probed once per process (the free memory figures are those at the first probe)."""
    global _MACHINE
    if _MACHINE is None:
        _MACHINE = Machine.probe()
    return _MACHINE


def check_settings(settings: Any, found: Machine | None = None) -> Placement:
    """At `serve` / `worker` start: the placement, or DeviceError naming the setting."""
    return place(settings.device, settings.dtype, settings.memory, found or machine())


def apply_memory(pipe: Any, placement: Placement) -> Any:
    """Put `pipe` on its device in its memory mode with diffusers' own switches."""
    import torch

    mode, device = placement.memory, placement.device
    offload = device != "cpu" and mode in ("low", "minimal")
    if mode == "minimal" and offload and hasattr(pipe, "enable_sequential_cpu_offload"):
        pipe.enable_sequential_cpu_offload(device=device)
    elif offload and hasattr(pipe, "enable_model_cpu_offload"):
        pipe.enable_model_cpu_offload(device=device)
    else:
        pipe.to(device)
    if device == "cpu" and placement.dtype == "bfloat16":
        # oneDNN's bfloat16 convolutions run faster on channels-last tensors (measured 1.2x at full size).
        for name in ("unet", "vae"):
            module = getattr(pipe, name, None)
            if module is not None and hasattr(module, "to"):
                module.to(memory_format=torch.channels_last)
    if mode in ("low", "minimal"):
        if hasattr(pipe, "enable_attention_slicing"):
            pipe.enable_attention_slicing()
        vae = getattr(pipe, "vae", None)
        for switch in ("enable_tiling", "enable_slicing"):
            if vae is not None and hasattr(vae, switch):
                getattr(vae, switch)()
    return pipe


def out_of_memory(exc: BaseException) -> bool:
    """Whether `exc` is the device (or the host) running out of memory."""
    text = f"{type(exc).__name__}: {exc}".lower()
    return type(exc).__name__ == "OutOfMemoryError" or "out of memory" in text or isinstance(exc, MemoryError)


def oom_reason(placement: Placement) -> str:
    nxt = {"normal": "low", "low": "minimal"}.get(placement.memory)
    hint = f"set GENSTUDIO_MEMORY={nxt}" if nxt else "use a smaller size or batch, or GENSTUDIO_DEVICE=cpu"
    return (f"out of memory on {placement.device} ({placement.dtype}, GENSTUDIO_MEMORY={placement.memory}): "
            f"{hint}, or lower width, height or batch")


def _gpu(device: str, machine: Machine) -> dict[str, Any] | None:
    if device.startswith("cuda") and machine.cuda:
        index = int(device.split(":")[1]) if ":" in device else 0
        return machine.cuda[index] if index < len(machine.cuda) else None
    return None


def _cpu_has_bf16() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _ram_free() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
