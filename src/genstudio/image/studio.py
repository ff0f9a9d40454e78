"""The image studio: text to image with the built-in model or any Stable Diffusion family (diffusers).

A request is resolved into exact parameters (the style's suggestions, then the model's defaults, every
limit checked); a job runs the pipeline; the provenance stage marks and signs each PNG, which also
carries the parameters (A1111 `parameters` text and a genstudio JSON chunk)."""

from __future__ import annotations

import json
import secrets
import threading
from typing import Any, ClassVar

from genstudio import __version__
from genstudio.config import Settings
from genstudio.errors import LimitError
from genstudio.image.backend import PipelineCache, generate
from genstudio.image.models import ModelError, ModelRegistry
from genstudio.image.params import ImageParams, ImageRequest
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

    def pick(name: str) -> Any:
        value = getattr(req, name)
        if value is not None:
            return value
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
    )
    # Style suggestions go through the same limits as user values.
    ImageRequest(**params.model_dump()).check_limits(settings)
    return params


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
        self.cache = cache or PipelineCache()
        self._run_lock = threading.Lock()

    def resolve(self, request: Any, op: str | None = None) -> ImageParams:
        return resolve(request, self.registry, self.settings)

    def params(self, raw: dict[str, Any]) -> ImageParams:
        return ImageParams(**raw)

    def models(self) -> list[dict[str, Any]]:
        default = self.settings.default_image_model
        return [{**e.public(), "kind": "image", "default": e.id == default} for e in self.registry.list()]

    def run(self, params: ImageParams, job: JobContext | None = None) -> list[OutputFile]:
        """Generate; each output carries its pixels and text chunks for the provenance stage.
        `job.progress(fraction)` may raise to cancel between steps."""
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
        with self._run_lock:
            images = generate(
                pipe,
                params,
                prompt=prompt,
                negative_prompt=negative,
                on_step=lambda done, total: report(0.05 + 0.9 * done / total),
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
