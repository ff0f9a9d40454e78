"""The image studio: text to image with the built-in model or any Stable Diffusion family (diffusers).

A request is resolved into exact parameters (the style's suggestions, then the model's defaults, every
limit checked); a job runs the pipeline; the provenance stage marks and signs each PNG, which also
carries the parameters (A1111 `parameters` text and a genstudio JSON chunk)."""

from __future__ import annotations

import base64
import json
import secrets
import threading
from typing import Any, ClassVar

from genstudio import __version__
from genstudio.config import Settings
from genstudio.errors import LimitError
from genstudio.image.backend import FLOW_FAMILIES, PipelineCache, generate
from genstudio.image.device import Placement, machine, place
from genstudio.image.models import ModelError, ModelRegistry, family_of, model_slug, size_of
from genstudio.image.params import ImageParams, ImageRequest, PullParams, PullRequest
from genstudio.image.pngmeta import GENSTUDIO_CHUNK, a1111_text
from genstudio.image.styles import apply_style, get_style
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
    )
    if params.strength is not None and int(params.steps * params.strength) < 1:
        raise LimitError("strength", f"{params.strength:g} x {params.steps} steps leaves no step to run; raise either")
    # Style suggestions go through the same limits as user values.
    ImageRequest(**params.model_dump()).check_limits(settings)
    return params


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

    def resolve(self, request: Any, op: str | None = None) -> ImageParams:
        params = resolve(request, self.registry, self.settings)
        if params.init_image is not None:  # img2img: an image the caller may read (asset id, or CLI file)
            found = self.ctx.inputs.get(params.init_image, "init_image")
            if found.kind != "image":
                raise LimitError("init_image", f"{found.mime} is not an image (PNG, JPEG or WebP)")
            params = params.model_copy(update={"init_image": found.ref})
        if params.mask is not None:
            found = self.ctx.inputs.get(params.mask, "mask")
            if found.kind != "image":
                raise LimitError("mask", f"{found.mime} is not an image (white = repaint, black = keep)")
            params = params.model_copy(update={"mask": found.ref})
        return params

    def params(self, raw: dict[str, Any]) -> ImageParams | PullParams:
        return PullParams(**raw) if raw.get("op") == "pull" else ImageParams(**raw)

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

    def models(self) -> list[dict[str, Any]]:
        default = self.registry.default_id()
        return [{**e.public(), "kind": "image", "default": e.id == default} for e in self.registry.list()]

    def placement(self, entry: Any) -> Placement:
        """Where `entry` runs: GENSTUDIO_DEVICE / _DTYPE / _MEMORY on this machine, for its family and size."""
        return place(self.settings.device, self.settings.dtype, self.settings.memory, machine(),
                     family=family_of(entry), model_bytes=size_of(entry))

    def run(self, params: ImageParams | PullParams, job: JobContext | None = None) -> list[OutputFile]:
        """Generate; each output carries its pixels and text chunks for the provenance stage.
        `job.progress(fraction)` may raise to cancel between steps. (Or pull a model: op "pull".)"""
        if isinstance(params, PullParams):
            return self.pull(params, job)
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
            images = generate(
                pipe,
                params,
                prompt=prompt,
                negative_prompt=negative,
                on_step=lambda done, total: report(0.05 + 0.9 * done / total),
                on_preview=_previewer(job),
                init=init,
                mask=mask,
            )
        outputs = []
        for img, seed in zip(images, params.image_seeds(), strict=True):
            single = params.model_copy(update={"seed": seed, "batch": 1})
            chunks = {
                "parameters": a1111_text(
                    params, final_prompt=prompt, final_negative=negative, seed=seed, model_name=entry.id
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
