"""The image studio: text to image with the built-in model or any Stable Diffusion family (diffusers).

A request is resolved into exact parameters (the style's suggestions, then the model's defaults, every
limit checked); a job runs the pipeline; the provenance stage marks and signs each PNG, which also
carries the parameters (A1111 `parameters` text and a genstudio JSON chunk)."""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
from typing import Any, ClassVar

from genstudio import __version__
from genstudio.config import Settings
from genstudio.errors import LimitError
from genstudio.image.backend import FLOW_FAMILIES, PipelineCache, generate
from genstudio.image.device import Placement, machine, place
from genstudio.image.models import ModelError, ModelRegistry, family_matches, family_of, model_slug, size_of
from genstudio.image.params import (
    ImageParams,
    ImageRequest,
    LoraRef,
    PullParams,
    PullRequest,
    UpscaleParams,
    UpscaleRequest,
)
from genstudio.image.pngmeta import GENSTUDIO_CHUNK, LORA_TAG, a1111_text
from genstudio.image.styles import apply_style, get_style
from genstudio.image.upscale import UpscalerCache
from genstudio.jobs.base import JobContext, JobFailed, OutputFile
from genstudio.provenance.stage import Seal
from genstudio.studio import StudioContext


def resolve(req: ImageRequest, registry: ModelRegistry, settings: Settings) -> ImageParams:
    """Fill unset values (style's suggestion, then the model's default) and check every limit."""
    req.check_limits(settings)
    try:
        entry = registry.get(req.model)
    except ModelError as exc:
        raise LimitError("model", str(exc).removeprefix("model: ")) from exc
    suggested: dict[str, Any] = {}
    if req.style is not None:
        try:
            suggested = get_style(req.style).suggested.model_dump(exclude_none=True)
        except KeyError as exc:
            raise LimitError("style", f"unknown style {req.style!r}; see GET /api/styles") from exc
    defaults = {"width": 512, "height": 512, "steps": 30, "guidance": 7.0, "sampler": "dpmpp_2m"}
    defaults.update(entry.defaults)

    flow = family_of(entry) in FLOW_FAMILIES
    if flow:
        if req.sampler not in (None, "euler"):
            raise LimitError("sampler", f"{entry.id} is a flow-matching model (SD3/FLUX): it samples with euler only")
        defaults["sampler"] = "euler"

    def pick(name: str) -> Any:
        value = getattr(req, name)
        if value is not None:
            return value
        if name == "sampler" and flow:
            return "euler"
        # A fixed-size model keeps its own size even when a style suggests another.
        if name in ("width", "height") and entry.format == "builtin":
            return defaults[name]
        return suggested.get(name, defaults[name])

    params = ImageParams(
        prompt=req.prompt,
        negative_prompt=req.negative_prompt,
        style=req.style,
        model=entry.id,
        seed=req.seed if req.seed is not None else secrets.randbelow(2**32),
        steps=pick("steps"),
        guidance=pick("guidance"),
        width=pick("width"),
        height=pick("height"),
        batch=req.batch,
        sampler=pick("sampler"),
        tile=req.tile or bool(suggested.get("tile", False)),
        init_image=req.init_image,
        strength=(req.strength if req.strength is not None else 0.75) if req.init_image else None,
        mask=req.mask,
        mask_blur=(req.mask_blur if req.mask_blur is not None else 4) if req.mask else None,
        inpaint_area=(req.inpaint_area or "whole") if req.mask else None,
        outpaint=req.outpaint if req.outpaint is not None and any(req.outpaint.model_dump().values()) else None,
        hires=req.hires,
        loras=merge_loras(req.loras, req.prompt),
        controlnets=req.controlnets,
    )
    if params.outpaint is not None and req.strength is None:
        params.strength = 0.85  # the new area starts from a fill of the edge colours: keep a trace of it
    family = family_of(entry)
    if entry.format == "builtin":
        for name in ("loras", "controlnets"):
            if getattr(params, name):
                raise LimitError(name, f"the built-in model takes no {name[:-1]}s: use a Stable Diffusion model")
    for i, lora in enumerate(params.loras):
        found = _addon(registry, lora.id, "lora", f"loras.{i}.id", family)
        params.loras[i] = lora.model_copy(update={"id": found.id})
    for i, unit in enumerate(params.controlnets):
        _addon(registry, unit.model, "controlnet", f"controlnets.{i}.model", family)
    if params.hires is not None:
        if params.hires.upscaler not in ("latent", "lanczos"):
            _addon(registry, params.hires.upscaler, "upscaler", "hires.upscaler", family)
        elif params.hires.upscaler == "latent" and family == "flux":
            raise LimitError("hires.upscaler", "FLUX packs its latents: use lanczos or an upscaler model")
        w, h = params.out_size()
        if max(w, h) > settings.max_size:
            raise LimitError("hires.scale", f"{params.width}x{params.height} x {params.hires.scale:g} = {w}x{h}, "
                             f"past {settings.max_size} (GENSTUDIO_MAX_SIZE)")
        if int((params.hires.steps or params.steps) * params.hires.strength) < 1:
            raise LimitError("hires.strength", "leaves no refine step to run; raise it or hires.steps")
    if params.strength is not None and int(params.steps * params.strength) < 1:
        raise LimitError("strength", f"{params.strength:g} x {params.steps} steps leaves no step to run; raise either")
    # Style suggestions go through the same limits as user values.
    ImageRequest(**params.model_dump()).check_limits(settings)
    return params


def merge_loras(given: list[LoraRef], prompt: str) -> list[LoraRef]:
    """The `loras` field and A1111's `<lora:ID:WEIGHT>` tags in the prompt, as one list (the field wins)."""
    out = list(given)
    seen = {lo.id for lo in out}
    for m in LORA_TAG.finditer(prompt):
        lid = model_slug(m.group(1))
        if lid not in seen:
            try:
                out.append(LoraRef(id=lid, weight=float(m.group(2)) if m.group(2) else 1.0))
            except ValueError as exc:
                raise LimitError("prompt", f"<lora:{m.group(1)}:...>: {exc.errors()[0]['msg']}") from None
            seen.add(lid)
    return out


def strip_lora_tags(prompt: str) -> str:
    """The prompt the text encoder reads: A1111 removes its `<lora:...>` tags before encoding."""
    return re.sub(r"\s{2,}", " ", LORA_TAG.sub("", prompt)).strip(" ,")


def _addon(registry: ModelRegistry, model_id: str, kind: str, field: str, family: str) -> Any:
    try:
        found = registry.get(model_id, kind=kind)
    except ModelError as exc:
        raise LimitError(field, str(exc).removeprefix("model: ")) from exc
    made_for = family_of(found)
    if not family_matches(made_for, family):
        raise LimitError(field, f"{found.id} is a {kind} for {made_for} models; this model is {family}")
    return found


def _previewer(job: Any) -> Any:
    """Hands live previews to the job context as the SSE `preview` event's data, where it takes them."""
    send = getattr(job, "preview", None)
    if send is None:
        return None

    def preview(step: int, steps: int, jpeg: bytes) -> None:
        send({"step": step, "steps": steps, "image": "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()})

    return preview


class ImageStudio:
    """The "image" studio. A pipeline object is not reentrant (its scheduler and tiling are set per run):
    one run at a time."""

    name: ClassVar[str] = "image"
    media_kinds: ClassVar[tuple[str, ...]] = ("image",)
    requests: ClassVar[dict[str, type[ImageRequest]]] = {"generate": ImageRequest}
    router: ClassVar[str] = "genstudio.api.routes.images:router"
    cli: ClassVar[str] = "genstudio.cli.image:register"

    def __init__(self, ctx: StudioContext, cache: PipelineCache | None = None) -> None:
        self.ctx = ctx
        self.settings = ctx.settings
        self.registry = ModelRegistry(ctx.settings)
        self.cache = cache or PipelineCache(placer=self.placement, configs=ctx.settings.model_dir / "configs")
        self._run_lock = threading.Lock()
        self.upscalers = UpscalerCache()

    def resolve(self, request: Any, op: str | None = None) -> ImageParams:
        params = resolve(request, self.registry, self.settings)
        if params.init_image is not None:  # img2img: an image the caller may read (asset id, or CLI file)
            params = params.model_copy(update={"init_image": self._image_ref(params.init_image, "init_image")})
        if params.mask is not None:
            params = params.model_copy(update={"mask": self._image_ref(params.mask, "mask", "white = repaint")})
        units = [u.model_copy(update={"image": self._image_ref(u.image, f"controlnets.{i}.image")})
                 for i, u in enumerate(params.controlnets)]
        params = params.model_copy(update={"controlnets": units})
        if params.outpaint is not None:
            params = self._outpaint_size(request, params)
        return params

    def _image_ref(self, ref: str, field: str, what: str = "PNG, JPEG or WebP") -> str:
        found = self.ctx.inputs.get(ref, field)
        if found.kind != "image":
            raise LimitError(field, f"{found.mime} is not an image ({what})")
        return found.ref

    def _outpaint_size(self, request: ImageRequest, params: ImageParams) -> ImageParams:
        """Outpainting's output: the init image (at `width` x `height` when given, else its own size) plus the
        added pixels on each side, within GENSTUDIO_MAX_SIZE."""
        from PIL import Image as PILImage

        pad = params.outpaint
        assert pad is not None and params.init_image is not None
        with PILImage.open(self.ctx.inputs.get(params.init_image, "init_image").path) as im:
            own = im.size
        builtin = self.registry.get(params.model).format == "builtin"  # a fixed size of its own
        inner_w = request.width or (params.width if builtin else max(8, round(own[0] / 8) * 8))
        inner_h = request.height or (params.height if builtin else max(8, round(own[1] / 8) * 8))
        w, h = inner_w + pad.left + pad.right, inner_h + pad.top + pad.bottom
        if max(w, h) > self.settings.max_size:
            raise LimitError("outpaint", f"{inner_w}x{inner_h} grown to {w}x{h} is past {self.settings.max_size} "
                             "(GENSTUDIO_MAX_SIZE): add fewer pixels or give a smaller width/height")
        return params.model_copy(update={"width": w, "height": h})

    def resolve_upscale(self, req: UpscaleRequest) -> UpscaleParams:
        from PIL import Image as PILImage

        ref = self._image_ref(req.image, "image")
        if req.upscaler != "lanczos":
            _addon(self.registry, req.upscaler, "upscaler", "upscaler", "any")
        with PILImage.open(self.ctx.inputs.get(ref, "image").path) as im:
            w, h = im.size
        out_w, out_h = round(w * req.scale), round(h * req.scale)
        cap = 4 * self.settings.max_size
        if max(out_w, out_h) > cap:
            raise LimitError("scale", f"{w}x{h} x {req.scale:g} = {out_w}x{out_h}, past {cap} px "
                             "(4 x GENSTUDIO_MAX_SIZE)")
        return UpscaleParams(image=ref, scale=req.scale, upscaler=req.upscaler, width=out_w, height=out_h)

    def params(self, raw: dict[str, Any]) -> ImageParams | PullParams | UpscaleParams:
        if raw.get("op") == "pull":
            return PullParams(**raw)
        return UpscaleParams(**raw) if raw.get("op") == "upscale" else ImageParams(**raw)

    def resolve_pull(self, req: PullRequest) -> PullParams:
        if not self.settings.allow_hub_downloads:
            raise LimitError("repo", "hub downloads are disabled (GENSTUDIO_ALLOW_HUB_DOWNLOADS=false)")
        model_id = model_slug(req.name or req.repo.replace("/", "-"))
        if model_id.startswith("builtin"):
            raise LimitError("name", f"{model_id!r} is reserved for built-in models")
        return PullParams(repo=req.repo, revision=req.revision, name=req.name, model_id=model_id)

    def _open_image(self, ref: str, field: str, params: ImageParams, mode: str) -> Any:
        from PIL import Image as PILImage

        try:
            found = self.ctx.inputs.get(ref, field)
            with PILImage.open(found.path) as im:
                im.draft("RGB", (params.width * 2, params.height * 2))  # JPEG: decode at about the size used
                return im.convert(mode)
        except (LimitError, OSError) as exc:
            raise JobFailed(f"{field}: {exc}") from exc

    def pull(self, params: PullParams, job: JobContext | None = None) -> list[OutputFile]:
        """A pull job: progress is the fraction of bytes fetched; the job's output is the registered model
        (no asset). A cancel stops the download and removes what was fetched."""

        def bytes_done(done: int, total: int) -> None:
            if job is not None and total:
                job.progress(min(done / total, 0.999), f"{done}/{total} bytes")

        try:
            self.registry.pull(params.repo, revision=params.revision, name=params.model_id, progress=bytes_done)
        except ModelError as exc:
            raise JobFailed(str(exc).removeprefix("repo: ")) from exc
        return []

    def _addons(self, params: ImageParams, pipe: Any, text: str) -> Any:
        """The job's LoRAs, the embeddings its prompts name, its ControlNet units and its upscaler, loaded."""
        from genstudio.image.addons import Addons, controlnet

        addons = Addons()
        addons.loras = [(self.registry.get(lo.id, kind="lora"), lo.weight) for lo in params.loras]
        words = set(re.findall(r"[\w:-]+", text.lower()))
        addons.embeddings = [e for e in self.registry.list("embedding") if e.id in words]
        for i, unit in enumerate(params.controlnets):
            entry = self.registry.get(unit.model, kind="controlnet")
            image = self._open_image(unit.image, f"controlnets.{i}.image", params, "RGB")
            addons.controls.append((controlnet(pipe, entry), image, unit))
        if params.hires is not None and params.hires.upscaler not in ("latent", "lanczos"):
            entry = self.registry.get(params.hires.upscaler, kind="upscaler")
            addons.upscaler = self.upscalers.get(entry.source, self._upscaler_device())
        return addons

    def _hashes(self, params: ImageParams) -> dict[str, str]:
        """Short hashes of the add-ons used, by id (A1111's `Lora hashes` and ControlNet model hashes)."""
        from genstudio.image.addons import short_hash

        ids = [(lo.id, "lora") for lo in params.loras] + [(u.model, "controlnet") for u in params.controlnets]
        out = {}
        for model_id, kind in ids:
            try:
                out[model_id] = short_hash(self.registry.get(model_id, kind=kind))
            except (ModelError, OSError):
                continue
        return out

    def _upscaler_device(self) -> str:
        entry = self.registry.get(None)
        return self.placement(entry).device if entry.format != "builtin" else "cpu"

    def upscale(self, params: UpscaleParams, job: JobContext | None = None) -> list[OutputFile]:
        """An "Upscale" job: the image at `scale` times its size, through Lanczos or an upscaler model."""
        from PIL import Image as PILImage

        from genstudio.image.upscale import upscale

        report = job.progress if job is not None else (lambda _f, _m=None: None)
        report(0.0)
        try:
            with PILImage.open(self.ctx.inputs.get(params.image, "image").path) as im:
                img = im.convert("RGB")
            model = None
            if params.upscaler != "lanczos":
                entry = self.registry.get(params.upscaler, kind="upscaler")
                model = self.upscalers.get(entry.source, self._upscaler_device())
        except (LimitError, ModelError, OSError) as exc:
            raise JobFailed(str(exc)) from exc
        report(0.1)
        with self._run_lock:
            big = upscale(img, (params.width, params.height), model)
        info = params.model_dump()
        chunks = {GENSTUDIO_CHUNK: json.dumps(info, sort_keys=True), "Software": f"genstudio {__version__}",
                  "parameters": f"Upscale: {params.scale:g}, Upscaler: {params.upscaler}, "
                                f"Size: {params.width}x{params.height}"}
        seal = Seal(title="genstudio upscale", ai_info={"model": params.upscaler, "params": info},
                    text_chunks=chunks, image=big)
        return [OutputFile(data=b"", mime="image/png", kind="image", seed=None, params=info, seal=seal)]

    def models(self) -> list[dict[str, Any]]:
        default = self.registry.default_id()
        return [{**e.public(), "default": e.id == default} for e in self.registry.list(None)]

    def placement(self, entry: Any) -> Placement:
        """Where `entry` runs: GENSTUDIO_DEVICE / _DTYPE / _MEMORY on this machine, for its family and size."""
        return place(self.settings.device, self.settings.dtype, self.settings.memory, machine(),
                     family=family_of(entry), model_bytes=size_of(entry))

    def run(self, params: ImageParams | PullParams, job: JobContext | None = None) -> list[OutputFile]:
        """Generate; each output carries its pixels and text chunks for the provenance stage.
        `job.progress(fraction)` may raise to cancel between steps. (Or pull a model: op "pull".)"""
        if isinstance(params, PullParams):
            return self.pull(params, job)
        if isinstance(params, UpscaleParams):
            return self.upscale(params, job)
        report = job.progress if job is not None else (lambda _f, _m=None: None)
        report(0.0)
        try:
            entry = self.registry.get(params.model)
            pipe = self.cache.get(entry)
        except ModelError as exc:
            raise JobFailed(str(exc)) from exc
        report(0.05)
        style = get_style(params.style) if params.style else None
        prompt, negative = apply_style(style, params.prompt, params.negative_prompt)
        init = mask = None
        if params.init_image is not None:
            init = self._open_image(params.init_image, "init_image", params, "RGB")
        if params.mask is not None:
            mask = self._open_image(params.mask, "mask", params, "L")
        with self._run_lock:
            try:
                addons = self._addons(params, pipe, prompt + " " + negative)
                images = generate(
                    pipe,
                    params,
                    prompt=strip_lora_tags(prompt),
                    negative_prompt=strip_lora_tags(negative),
                    on_step=lambda done, total: report(0.05 + 0.9 * done / total),
                    on_preview=_previewer(job),
                    init=init,
                    mask=mask,
                    addons=addons,
                )
            except ModelError as exc:
                raise JobFailed(str(exc)) from exc
        outputs = []
        for img, seed in zip(images, params.image_seeds(), strict=True):
            single = params.model_copy(update={"seed": seed, "batch": 1})
            chunks = {
                "parameters": a1111_text(
                    params, final_prompt=prompt, final_negative=negative, seed=seed, model_name=entry.id,
                    hashes=self._hashes(params),
                ),
                GENSTUDIO_CHUNK: json.dumps(single.model_dump(), sort_keys=True),
                "Software": f"genstudio {__version__}",
            }
            seal = Seal(
                title=f"genstudio image {seed}",
                ai_info={"model": entry.id, "seed": seed, "params": single.model_dump()},
                text_chunks=chunks,
                image=img,
            )
            outputs.append(
                OutputFile(data=b"", mime="image/png", kind="image", seed=seed, params=single.model_dump(), seal=seal)
            )
        return outputs
