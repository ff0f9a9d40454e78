"""Text-to-image through diffusers: load a model once, then run it with any sampler, seed and size.

One code path for every model family: SD 1.x / 2.x / SDXL / one-step turbo folders load through
`AutoPipelineForText2Image`, single `.safetensors` checkpoints through `from_single_file`, and the
built-in model through its own small `DiffusionPipeline` subclass.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from genstudio.image.addons import Addons
from genstudio.image.device import Placement, apply_memory, oom_reason, out_of_memory
from genstudio.image.models import ModelEntry, ModelError, family_of
from genstudio.image.params import ImageParams
from genstudio.jobs.base import JobFailed

ProgressFn = Callable[[int, int], None]  # (steps done, total steps)
PreviewFn = Callable[[int, int, bytes], None]  # (step, total steps, JPEG of the current step)


def scheduler_class(name: str) -> Any:
    from diffusers import (
        DDIMScheduler,
        DPMSolverMultistepScheduler,
        EulerAncestralDiscreteScheduler,
        EulerDiscreteScheduler,
        LCMScheduler,
    )

    return {
        "ddim": DDIMScheduler,
        "euler": EulerDiscreteScheduler,
        "euler_a": EulerAncestralDiscreteScheduler,
        "dpmpp_2m": DPMSolverMultistepScheduler,
        "lcm": LCMScheduler,
    }[name]


FLOW_FAMILIES = frozenset({"sd3", "flux"})  # trained with flow matching: one sampler family fits them
WEIGHTED_PROMPT_FAMILIES = frozenset({"sd1", "sd2", "sdxl"})  # CLIP-encoded: A1111 emphasis and long prompts


def make_scheduler(name: str, base_config: Any) -> Any:
    if str(base_config.get("_class_name", "")).startswith("FlowMatch"):
        # SD3 / FLUX: the model's own flow-matching Euler (resolve() allows only "euler" for them).
        from diffusers import FlowMatchEulerDiscreteScheduler

        return FlowMatchEulerDiscreteScheduler.from_config(base_config)
    cls = scheduler_class(name)
    extra: dict[str, Any] = {}
    if name == "dpmpp_2m":
        extra = {"algorithm_type": "dpmsolver++", "solver_order": 2}
    return cls.from_config(base_config, **extra)


CPU_FLOAT32 = Placement("cpu", "float32", "normal")
OUTPAINT_SEAM_BLUR = 8  # px: how far into the new area an outpaint blends towards the original


def load_pipeline(entry: ModelEntry, placement: Placement = CPU_FLOAT32, configs: Path | None = None) -> Any:
    """Load a model into a ready-to-run pipeline on its device, precision and memory mode, from safetensors
    only. The built-in model always runs on the CPU in float32 (it is tiny: a GPU gains nothing)."""
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    if entry.format == "builtin" or _is_tiny_folder(entry):
        placement = CPU_FLOAT32
    dtype = placement.torch_dtype()
    try:
        if entry.format == "builtin" or _is_tiny_folder(entry):
            from genstudio.image.tiny_pipeline import GenStudioTinyPipeline

            pipe = GenStudioTinyPipeline.from_folder(entry.source, torch_dtype=dtype)
        elif entry.format == "folder":
            pipe = _auto_from_pretrained(entry.source, dtype=dtype, local_files_only=True)
        elif entry.format == "hub":
            # Only what is already in the local cache; `genstudio models pull` is the explicit download.
            pipe = _auto_from_pretrained(entry.source, dtype=dtype, local_files_only=True)
        elif entry.format == "single_file":
            pipe = _from_single_file(entry, dtype, configs)
        else:  # pragma: no cover - guarded by ModelFormat
            raise ModelError(f"unknown model format {entry.format}")
    except ModelError:
        raise
    except Exception as exc:  # noqa: BLE001 - turn loader errors into one clear line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ModelError(f"model {entry.id}: could not load ({type(exc).__name__}: {first})") from exc
    pipe.set_progress_bar_config(disable=True)
    if hasattr(pipe, "safety_checker"):
        # Offline studio: no separate NSFW model is shipped; the provenance label says it is AI-made.
        pipe.safety_checker = None
    pipe._genstudio_base_scheduler_config = dict(pipe.scheduler.config)
    pipe._genstudio_placement = placement
    pipe._genstudio_family = family_of(entry)
    try:
        apply_memory(pipe, placement)
    except Exception as exc:  # noqa: BLE001 - the device refused the weights
        if out_of_memory(exc):
            raise ModelError(f"model {entry.id}: {oom_reason(placement)}") from exc
        why = f"{type(exc).__name__}: {exc}"
        raise ModelError(f"model {entry.id}: could not move to {placement.device} ({why})") from exc
    return pipe


def _is_tiny_folder(entry: ModelEntry) -> bool:
    index = Path(entry.source) / "model_index.json"
    if entry.format != "folder" or not index.is_file():
        return False
    return json.loads(index.read_text()).get("_class_name") == "GenStudioTinyPipeline"


def _auto_from_pretrained(source: str, *, dtype: torch.dtype, local_files_only: bool) -> Any:
    from diffusers import AutoPipelineForText2Image

    # Components a folder leaves out on purpose ([null, null] in model_index.json: SD3 without its T5
    # encoder, no safety checker) are passed as None, which the pipelines accept but the loader does not infer.
    absent: dict[str, Any] = {}
    index = Path(source) / "model_index.json"
    if index.is_file():
        absent = {k: None for k, v in json.loads(index.read_text()).items() if v == [None, None]}
    return AutoPipelineForText2Image.from_pretrained(
        source, torch_dtype=dtype, use_safetensors=True, local_files_only=local_files_only, **absent
    )


def _from_single_file(entry: ModelEntry, dtype: torch.dtype, configs: Path | None = None) -> Any:
    """An A1111 / CivitAI single file, offline: the family from its keys, its configuration from the
    package (`single_file.FAMILIES`), or from `entry.config` (a family config name such as "sd2-base", or
    a diffusers folder)."""
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline
    from safetensors import safe_open

    from genstudio.image.models import family_from_keys
    from genstudio.image.single_file import DEFAULT_FOR_FAMILY, FAMILIES, config_folder

    with safe_open(entry.source, framework="pt") as f:
        keys = set(f.keys())
    if not any(k.startswith(("model.diffusion_model.", "first_stage_model.")) for k in keys):
        raise ModelError(f"{entry.source}: not a Stable Diffusion checkpoint (no model.diffusion_model.* weights)")
    family = family_from_keys(keys)
    name = entry.config if entry.config in FAMILIES else (None if entry.config else DEFAULT_FOR_FAMILY.get(family))
    first_conv = "model.diffusion_model.input_blocks.0.0.weight"
    if name is not None and not name.endswith("-inpaint") and first_conv in keys:
        with safe_open(entry.source, framework="pt") as f:
            if f.get_slice(first_conv).get_shape()[1] == 9:  # an inpainting checkpoint
                name = {"sd2": "sd2-base"}.get(name, name) + "-inpaint"
    if entry.config and name is None:
        config: str = entry.config  # the user's own diffusers folder (or a cached hub id)
    elif name is None:
        raise ModelError(
            f"{entry.source}: a {family} checkpoint; single files of SD 1.x, SD 2.x and SDXL load offline, "
            f"others need `genstudio models add FILE --config DIFFUSERS_FOLDER`"
        )
    else:
        root = configs or Path(tempfile.gettempdir()) / "genstudio-configs"
        config = str(config_folder(name, root))
    xl = name in ("sdxl", "sdxl-inpaint") or family == "sdxl"
    cls = StableDiffusionXLPipeline if xl else StableDiffusionPipeline
    kwargs: dict[str, Any] = {"torch_dtype": dtype, "config": config, "local_files_only": True}
    if not xl:
        kwargs.update(safety_checker=None, requires_safety_checker=False)
    try:
        return cls.from_single_file(entry.source, **kwargs)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ModelError(
            f"{entry.source}: could not load as {name or 'the given --config'} ({type(exc).__name__}: {first[:300]}); "
            "for SD 2.x base (512 px) models add it with `--config sd2-base`, for others "
            "`--config DIFFUSERS_FOLDER`"
        ) from exc


def set_tiling(pipe: Any, enabled: bool) -> None:
    """Seamless tiling: circular padding in every convolution, so the image wraps at its edges."""
    mode = "circular" if enabled else "zeros"
    for name in ("unet", "vae"):
        module = getattr(pipe, name, None)
        if module is None:
            continue
        for layer in module.modules():
            if isinstance(layer, torch.nn.Conv2d):
                layer.padding_mode = mode


def native_size(pipe: Any) -> int | None:
    """The fixed output size of a model that cannot change it (the built-in model), else None."""
    return getattr(pipe, "native_size", None)


def resize_image(img: Image.Image, width: int, height: int, *, wrap: bool) -> Image.Image:
    if img.size == (width, height):
        return img
    if not wrap:
        return img.resize((width, height), Image.Resampling.LANCZOS)
    # Resample a 3x3 mosaic and cut out the centre, so the filter sees the wrapped neighbours.
    arr = np.asarray(img)
    big = Image.fromarray(np.tile(arr, (3, 3, 1)))
    big = big.resize((width * 3, height * 3), Image.Resampling.LANCZOS)
    return big.crop((width, height, width * 2, height * 2))


class PipelineCache:
    """Keeps the most recently used pipelines in memory (loading costs seconds to minutes). `placer(entry)`
    says where each model runs (device, precision, memory mode); default: the CPU in float32."""

    def __init__(
        self, capacity: int = 1, placer: Callable[[ModelEntry], Placement] | None = None, configs: Path | None = None
    ) -> None:
        self.capacity = capacity
        self.configs = configs  # where single-file family configs are written (the data dir's models/configs)
        self.placer = placer or (lambda _entry: CPU_FLOAT32)
        self._pipes: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, entry: ModelEntry) -> Any:
        key = f"{entry.format}:{entry.source}:{entry.config}"
        with self._lock:
            if key in self._pipes:
                self._pipes.move_to_end(key)
                return self._pipes[key]
        if self._pipes and self.capacity == 1:
            self._pipes.clear()  # free the old model's memory before loading the next (a GPU holds one)
            _free_device_memory()
        pipe = load_pipeline(entry, self.placer(entry), self.configs)
        with self._lock:
            self._pipes[key] = pipe
            while len(self._pipes) > self.capacity:
                self._pipes.popitem(last=False)
        return pipe


def generate(
    pipe: Any,
    params: ImageParams,
    *,
    prompt: str,
    negative_prompt: str,
    on_step: ProgressFn | None = None,
    on_preview: PreviewFn | None = None,
    init: Image.Image | None = None,
    mask: Image.Image | None = None,
    addons: Addons | None = None,
) -> list[Image.Image]:
    """Run one image job: text to image, img2img from `init` at `params.strength`, inpainting with `mask`
    (whole picture or only a crop around the mask), outpainting, and the hires fix; with the job's LoRAs,
    embeddings and ControlNet units. A raise from `on_step` (a cancel) stops it between steps. `on_preview`
    gets a small approximate JPEG of the first image a few times during sampling (live preview)."""
    from genstudio.image.addons import apply_loras, load_embeddings
    from genstudio.image.edit import extend_canvas, masked_box, paste_crop

    addons = addons or Addons()
    if native_size(pipe) is None:
        apply_loras(pipe, addons.loras)
        load_embeddings(pipe, addons.embeddings)
    size = (params.width, params.height)
    if init is not None and params.outpaint is not None:
        # The canvas grows; the new area is what gets painted (with any mask the user drew as well).
        pad = params.outpaint
        inner = (size[0] - pad.left - pad.right, size[1] - pad.top - pad.bottom)
        init, grown = extend_canvas(init.convert("RGB").resize(inner, Image.Resampling.LANCZOS), pad, params.seed)
        if mask is not None:
            from PIL import ImageChops

            drawn = Image.new("L", size, 0)
            drawn.paste(mask.convert("L").resize(inner, Image.Resampling.LANCZOS), (pad.left, pad.top))
            grown = ImageChops.lighter(grown, drawn)
        mask = grown
    keep = init.convert("RGB").resize(size, Image.Resampling.LANCZOS) if init is not None else None
    full_mask = mask.convert("L").resize(size, Image.Resampling.LANCZOS) if mask is not None else None
    box = None
    if keep is not None and full_mask is not None and params.inpaint_area == "masked":
        box = masked_box(full_mask, size[0] / size[1])
    first_steps = max(1, int(params.steps * (params.strength or 1.0))) if init is not None else params.steps
    hires_steps = 0
    if params.hires is not None and native_size(pipe) is None:
        hires_steps = max(1, int((params.hires.steps or params.steps) * params.hires.strength))
    total = first_steps + hires_steps

    def first_progress(done: int, _n: int) -> None:
        if on_step is not None:
            on_step(done, total)

    sample_init, sample_mask = keep, full_mask
    if box is not None:  # "only masked": the crop around the mask, repainted at the full generation size
        sample_init = keep.crop(box).resize(size, Image.Resampling.LANCZOS)  # type: ignore[union-attr]
        sample_mask = full_mask.crop(box).resize(size, Image.Resampling.LANCZOS)  # type: ignore[union-attr]
    latent_hires = params.hires is not None and params.hires.upscaler == "latent" and native_size(pipe) is None
    images = _sample(pipe, params, prompt=prompt, negative_prompt=negative_prompt, size=size,
                     init=sample_init, mask=sample_mask, strength=params.strength, steps=params.steps,
                     controls=addons.controls, on_step=first_progress, on_preview=on_preview,
                     latents_out=latent_hires)
    if latent_hires:
        return _hires(pipe, params, images, prompt, negative_prompt, addons, on_step, on_preview, first_steps, total)
    out = [resize_image(im.convert("RGB"), *size, wrap=params.tile) for im in images]
    if box is not None:
        out = [paste_crop(keep, im, box) for im in out]  # type: ignore[arg-type]
    if keep is not None and full_mask is not None:
        # An outpaint without a mask of the user's still feathers its seam (inside the new area only).
        blur = params.mask_blur if params.mask_blur is not None else (OUTPAINT_SEAM_BLUR if params.outpaint else 0)
        out = [keep_outside_mask(im, keep, full_mask, blur) for im in out]
    if params.hires is not None:
        out = _hires(pipe, params, out, prompt, negative_prompt, addons, on_step, on_preview, first_steps, total)
    return out


def _hires(
    pipe: Any, params: ImageParams, first: Any, prompt: str, negative: str, addons: Addons,
    on_step: ProgressFn | None, on_preview: PreviewFn | None, done: int, total: int,
) -> list[Image.Image]:
    """A1111's hires fix, second half: upscale the first pass (its latents, or its pixels with Lanczos or an
    upscaler model) to `scale` times the size and refine at the hires strength. The built-in model works at
    32 px whatever the output size, so for it the upscale is the whole of the fix (no refine pass)."""
    import torch.nn.functional as F

    from genstudio.image.upscale import upscale

    hires = params.hires
    assert hires is not None
    target = params.out_size()
    if native_size(pipe) is not None:
        return [upscale(im, target, addons.upscaler) for im in first]
    if hires.upscaler == "latent":
        scale_factor = getattr(pipe, "vae_scale_factor", 8)
        start: Any = F.interpolate(first, size=(target[1] // scale_factor, target[0] // scale_factor),
                                   mode="bilinear", antialias=False)
    else:
        start = [upscale(im, target, addons.upscaler) for im in first]

    def progress(k: int, _n: int) -> None:
        if on_step is not None:
            on_step(done + k, total)

    images = _sample(pipe, params, prompt=prompt, negative_prompt=negative, size=target, init=start, mask=None,
                     strength=hires.strength, steps=hires.steps or params.steps, controls=addons.controls,
                     on_step=progress,
                     on_preview=on_preview)
    return [im.convert("RGB").resize(target, Image.Resampling.LANCZOS) if im.size != target else im.convert("RGB")
            for im in images]


def inpainting_unet(pipe: Any) -> bool:
    """A model trained for inpainting: its UNet also takes the mask and the masked picture (9 channels)."""
    unet = getattr(pipe, "unet", None)
    return unet is not None and getattr(unet.config, "in_channels", 4) == 9


def _pipeline_for(base: Any, init: Any, mask: Any, controls: list[Any]) -> Any:
    """The diffusers pipeline of the base model's family for this job's kind, sharing its loaded components:
    img2img, inpainting (a 9-channel inpainting UNet is used as such, any other through diffusers' generic
    path), and the ControlNet variants of each."""
    if native_size(base) is not None:
        return base
    from diffusers import AutoPipelineForImage2Image, AutoPipelineForInpainting, AutoPipelineForText2Image

    kind = "inpaint" if init is not None and mask is not None else "i2i" if init is not None else "t2i"
    auto = {"inpaint": AutoPipelineForInpainting, "i2i": AutoPipelineForImage2Image,
            "t2i": AutoPipelineForText2Image}[kind]
    if controls:
        models = [c[0] for c in controls]
        pipe = auto.from_pipe(base, controlnet=models[0] if len(models) == 1 else models)
        pipe.set_progress_bar_config(disable=True)
        return pipe
    if kind == "t2i":
        return base
    attr = f"_genstudio_{kind}"
    if getattr(base, attr, None) is None:
        derived = auto.from_pipe(base)
        derived.set_progress_bar_config(disable=True)
        setattr(base, attr, derived)
    return getattr(base, attr)


def _sample(
    base: Any, params: ImageParams, *, prompt: str, negative_prompt: str, size: tuple[int, int], init: Any,
    mask: Image.Image | None, strength: float | None, steps: int, controls: list[Any],
    on_step: ProgressFn | None, on_preview: PreviewFn | None, latents_out: bool = False,
) -> Any:
    """One sampling pass at `size` (PIL images out, or latents when `latents_out`)."""
    from genstudio.image.preview import preview_jpeg, preview_steps

    fixed = native_size(base)
    run_size = (fixed, fixed) if fixed else size
    if fixed is None and inpainting_unet(base) and mask is None:
        # An inpainting model (9-channel UNet) is always run as one, as A1111 does: text to image is an
        # inpaint of everything on an empty picture, img2img an inpaint of everything from the start image.
        mask = Image.new("L", run_size, 255)
        if init is None:
            init, strength = Image.new("RGB", run_size, (127, 127, 127)), 1.0
    pipe = _pipeline_for(base, init, mask, controls)
    pipe.scheduler = make_scheduler(params.sampler, base._genstudio_base_scheduler_config)
    # Seeded on the CPU whatever the device: a seed gives the same starting noise on CUDA, MPS or CPU.
    generators = [torch.Generator("cpu").manual_seed(s) for s in params.image_seeds()]
    # img2img runs the last `strength` of the steps (diffusers' rule), and reports progress over those.
    done_steps = max(1, int(steps * (strength or 1.0))) if init is not None else steps
    when = preview_steps(done_steps) if on_preview is not None else set()
    family = getattr(base, "_genstudio_family", "unknown")

    def _callback(_pipe: Any, step: int, _t: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        if step + 1 in when and "latents" in kwargs:
            jpeg = preview_jpeg(base, kwargs["latents"], family, run_size)
            if jpeg is not None:
                on_preview(step + 1, done_steps, jpeg)  # type: ignore[misc]
        if on_step is not None:
            on_step(step + 1, done_steps)
        return kwargs

    kwargs: dict[str, Any] = {
        "prompt": [prompt] * params.batch,
        "num_inference_steps": steps,
        "guidance_scale": params.guidance,
        "generator": generators,
        "callback_on_step_end": _callback,
        "output_type": "latent" if latents_out else "pil",
    }
    if negative_prompt and params.guidance > 1.0:
        kwargs["negative_prompt"] = [negative_prompt] * params.batch
    if family in WEIGHTED_PROMPT_FAMILIES and fixed is None:
        # A1111's prompt syntax ((word:1.3), [word], BREAK) and prompts past 77 tokens, in chunks (compel);
        # a plain prompt gives exactly the embeddings the pipeline would make itself.
        from genstudio.image.prompts import encode

        kwargs.pop("prompt")
        kwargs.pop("negative_prompt", None)
        kwargs.update(encode(base, prompt, negative_prompt if params.guidance > 1.0 else "", params.batch))
    if init is not None:
        kwargs["strength"] = strength if strength is not None else 0.75
        if isinstance(init, torch.Tensor):  # latents (the hires fix's latent upscale)
            kwargs["image"] = init
        elif isinstance(init, list):  # one start per image of the batch (the hires fix's pixel upscale)
            kwargs["image"] = [im.convert("RGB").resize(run_size, Image.Resampling.LANCZOS) for im in init]
        elif fixed is None:
            kwargs["image"] = init.convert("RGB").resize(run_size, Image.Resampling.LANCZOS)
        else:  # the built-in model: its own pixels in [-1, 1] (inpainting: img2img, then the composite)
            start = init.convert("RGB").resize(run_size, Image.Resampling.LANCZOS)
            arr = torch.from_numpy(np.asarray(start, dtype=np.float32) / 127.5 - 1.0).permute(2, 0, 1)[None]
            kwargs["image"] = arr
    elif fixed is None:
        kwargs["width"], kwargs["height"] = run_size
    if mask is not None and fixed is None:
        kwargs["mask_image"] = mask.convert("L").resize(run_size, Image.Resampling.LANCZOS)
        kwargs["width"], kwargs["height"] = run_size
    if controls:
        from genstudio.image.edit import preprocess

        images = [preprocess(img, unit.preprocessor).resize(run_size, Image.Resampling.LANCZOS)
                  for _m, img, unit in controls]
        one = len(controls) == 1
        kwargs["image" if init is None else "control_image"] = images[0] if one else images
        kwargs["controlnet_conditioning_scale"] = controls[0][2].weight if one else [u.weight for *_, u in controls]
        kwargs["control_guidance_start"] = [u.start for *_, u in controls]
        kwargs["control_guidance_end"] = [u.end for *_, u in controls]
    set_tiling(pipe, params.tile)
    try:
        with torch.inference_mode():
            return pipe(**kwargs).images
    except Exception as exc:
        if out_of_memory(exc):
            _free_device_memory()
            raise JobFailed(oom_reason(getattr(base, "_genstudio_placement", CPU_FLOAT32))) from None
        raise
    finally:
        set_tiling(pipe, False)


def keep_outside_mask(made: Image.Image, init: Image.Image, mask: Image.Image, blur: int) -> Image.Image:
    """`made` inside the mask, `init` outside it, exactly: the mask is feathered inward by `blur` pixels
    (never outward), so every pixel the mask leaves black comes back unchanged."""
    from genstudio.image.edit import feather_inward

    base = init.convert("RGB").resize(made.size, Image.Resampling.LANCZOS)
    hard = mask.convert("L").resize(made.size, Image.Resampling.NEAREST)
    return Image.composite(made, base, feather_inward(hard, blur))


def _free_device_memory() -> None:
    import gc

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    mps = getattr(torch, "mps", None)
    if mps is not None and getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        mps.empty_cache()
