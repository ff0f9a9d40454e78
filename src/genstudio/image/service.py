"""The image studio as a job: resolve a request into exact parameters, run it, stamp every PNG."""

from __future__ import annotations

import json
import secrets
import threading
from pathlib import Path
from typing import Any

from genstudio import __version__
from genstudio.config import Settings
from genstudio.image.backend import PipelineCache, generate
from genstudio.image.models import ModelError, ModelRegistry
from genstudio.image.params import ImageParams, ImageRequest, LimitError
from genstudio.image.pngmeta import GENSTUDIO_CHUNK, a1111_text
from genstudio.image.styles import apply_style, get_style
from genstudio.jobs.base import JobContext, JobFailed, OutputFile


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
    def __init__(self, settings: Settings, registry: ModelRegistry, cache: PipelineCache | None = None) -> None:
        self.settings = settings
        self.registry = registry
        self.cache = cache or PipelineCache()
        self._identity: Any = None
        # A pipeline object is not reentrant (its scheduler and tiling are set per run): one run at a time.
        self._run_lock = threading.Lock()

    def identity(self) -> Any:
        if self._identity is None:
            from genstudio.provenance import ensure_identity

            self._identity = ensure_identity(self.settings.keys_dir)
        return self._identity

    def run(self, params: ImageParams, on_progress: Any = None) -> list[OutputFile]:
        """Generate and stamp; `on_progress(fraction)` may raise to cancel between steps."""
        from genstudio.provenance import stamp_png

        report = on_progress or (lambda _f: None)
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
                on_step=lambda done, total: report(0.05 + 0.85 * done / total),
            )
        outputs = []
        for i, (img, seed) in enumerate(zip(images, params.image_seeds(), strict=True)):
            single = params.model_copy(update={"seed": seed, "batch": 1})
            chunks = {
                "parameters": a1111_text(
                    params, final_prompt=prompt, final_negative=negative, seed=seed, model_name=entry.id
                ),
                GENSTUDIO_CHUNK: json.dumps(single.model_dump(), sort_keys=True),
                "Software": f"genstudio {__version__}",
            }
            ai_info = {"model": entry.id, "seed": seed, "params": single.model_dump()}
            data = stamp_png(
                img, identity=self.identity(), text_chunks=chunks, title=f"genstudio image {seed}", ai_info=ai_info
            )
            outputs.append(OutputFile(data=data, mime="image/png", kind="image", seed=seed, params=single.model_dump()))
            report(0.9 + 0.1 * (i + 1) / len(images))
        return outputs

    def handle(self, ctx: JobContext) -> list[OutputFile]:
        params = ImageParams(**ctx.job.params)
        return self.run(params, on_progress=ctx.progress)


def write_png_output(out: OutputFile, dest: Path) -> None:
    import os
    import tempfile

    from genstudio.cli import user_file_mode

    fd, tmp = tempfile.mkstemp(dir=dest.parent, suffix=".part")
    with os.fdopen(fd, "wb") as f:
        f.write(out.data)
    user_file_mode(tmp)
    os.replace(tmp, dest)
