"""Text-to-image parameters: one pydantic model for the API, the CLI, the job row and the PNG."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from genstudio.config import Settings
from genstudio.errors import LimitError  # noqa: F401 - re-exported for older imports

SamplerName = Literal["ddim", "euler", "euler_a", "dpmpp_2m", "lcm"]

# What A1111 writes in its "Sampler:" field, both ways.
A1111_SAMPLER_NAMES: dict[str, str] = {
    "ddim": "DDIM",
    "euler": "Euler",
    "euler_a": "Euler a",
    "dpmpp_2m": "DPM++ 2M",
    "lcm": "LCM",
}


class Outpaint(BaseModel):
    """Pixels to add on each side of the init image; the new area is painted to continue the picture."""

    model_config = ConfigDict(extra="forbid")

    left: int = Field(default=0, ge=0, le=4096)
    right: int = Field(default=0, ge=0, le=4096)
    top: int = Field(default=0, ge=0, le=4096)
    bottom: int = Field(default=0, ge=0, le=4096)


class Hires(BaseModel):
    """A1111's hires fix: generate, upscale by `scale`, then refine at `strength` for `steps` steps."""

    model_config = ConfigDict(extra="forbid")

    scale: float = Field(default=2.0, ge=1.0, le=4.0)
    strength: float = Field(default=0.5, ge=0.0, le=1.0)
    steps: int | None = Field(default=None, ge=1, description="refine steps (default: the first pass's)")
    upscaler: str = Field(default="latent", min_length=1, max_length=80, pattern=r"^[a-z0-9:-]+$",
                          description="latent | lanczos | an upscaler model id")


class LoraRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=80, pattern=r"^[a-z0-9:-]+$", description="a model id of kind lora")
    weight: float = Field(default=1.0, ge=-5.0, le=5.0)


Preprocessor = Literal["none", "canny", "lineart", "scribble"]


class ControlUnit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=80, pattern=r"^[a-z0-9:-]+$", description="a controlnet model id")
    image: str = Field(min_length=1, max_length=4096, description="the control image: an image asset")
    preprocessor: Preprocessor = "none"
    weight: float = Field(default=1.0, ge=0.0, le=2.0)
    start: float = Field(default=0.0, ge=0.0, le=1.0)
    end: float = Field(default=1.0, ge=0.0, le=1.0)


class ImageRequest(BaseModel):
    """What a user asks for; unset values are filled from the style, then the model's defaults."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1, description="What to draw.")
    negative_prompt: str = Field(default="", description="What to avoid.")
    style: str | None = Field(default=None, description="A style preset id from GET /api/styles.")
    model: str | None = Field(default=None, description="A model id from GET /api/models.")
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1, description="Random when absent.")
    steps: int | None = Field(default=None, ge=1)
    guidance: float | None = Field(default=None, ge=0.0)
    width: int | None = Field(default=None, ge=8)
    height: int | None = Field(default=None, ge=8)
    batch: int = Field(default=1, ge=1)
    sampler: SamplerName | None = None
    tile: bool = Field(default=False, description="Seamless tiling: opposite edges match.")
    init_image: str | None = Field(default=None, max_length=4096,
                                   description="img2img: an image asset (upload or result) to start from")
    strength: float | None = Field(default=None, ge=0.0, le=1.0,
                                   description="img2img: how much to change it, 0..1 (default 0.75)")
    mask: str | None = Field(default=None, max_length=4096,
                             description="inpaint: an image asset, white = repaint, black = keep")
    mask_blur: int | None = Field(default=None, ge=0, le=64, description="inpaint: feathering of the mask edge, px")
    inpaint_area: Literal["whole", "masked"] | None = Field(
        default=None, description="inpaint: 'masked' repaints a crop around the mask at full resolution")
    outpaint: Outpaint | None = Field(default=None, description="extend the init image by these pixels")
    hires: Hires | None = Field(default=None, description="hires fix: generate, upscale, refine")
    loras: list[LoraRef] = Field(default_factory=list, max_length=8)
    controlnets: list[ControlUnit] = Field(default_factory=list, max_length=4)

    @field_validator("prompt", "negative_prompt", "style", "model")
    @classmethod
    def _unicode_text(cls, v: str | None) -> str | None:
        # JSON may carry a lone surrogate escape ("\ud800"): not text, and unencodable wherever it goes next.
        if v is not None:
            try:
                v.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise ValueError(f"must be valid Unicode text (lone surrogate at position {exc.start})") from None
            # NUL and other control characters: PostgreSQL refuses NUL in text, PNG chunks garble them.
            bad = next((i for i, ch in enumerate(v) if ord(ch) < 32 and ch not in "\t\n\r"), None)
            if bad is not None:
                raise ValueError(f"must not contain control characters (found {ord(v[bad]):#04x} at position {bad})")
        return v

    def check_limits(self, s: Settings) -> None:
        if self.strength is not None and self.init_image is None:
            raise LimitError("strength", "is for img2img: give init_image too")
        if self.mask is not None and self.init_image is None:
            raise LimitError("mask", "is for inpainting: give init_image (the picture to repaint) too")
        if self.mask_blur is not None and self.mask is None:
            raise LimitError("mask_blur", "is for inpainting: give mask too")
        if self.inpaint_area is not None and self.mask is None:
            raise LimitError("inpaint_area", "is for inpainting: give mask too")
        if self.outpaint is not None and self.init_image is None:
            raise LimitError("outpaint", "extends an image: give init_image too")
        if self.outpaint is not None:
            for side, px in self.outpaint.model_dump().items():
                if px % 8:
                    raise LimitError(f"outpaint.{side}", f"must be a multiple of 8 (got {px})")
        if self.hires is not None and self.init_image is not None:
            raise LimitError("hires", "is for text to image; to enlarge an image use POST /api/images/upscale")
        for i, unit in enumerate(self.controlnets):
            if unit.start >= unit.end:
                raise LimitError(f"controlnets.{i}.end", f"must be after start ({unit.start:g})")
        if len({lo.id for lo in self.loras}) < len(self.loras):
            raise LimitError("loras", "lists a LoRA twice")
        if len(self.prompt) > s.max_prompt_chars:
            raise LimitError("prompt", f"at most {s.max_prompt_chars} characters (got {len(self.prompt)})")
        if not self.prompt.strip():
            raise LimitError("prompt", "must not be blank")
        if len(self.negative_prompt) > s.max_prompt_chars:
            raise LimitError("negative_prompt", f"at most {s.max_prompt_chars} characters")
        if self.steps is not None and self.steps > s.max_steps:
            raise LimitError("steps", f"at most {s.max_steps} (GENSTUDIO_MAX_STEPS)")
        if self.batch > s.max_batch:
            raise LimitError("batch", f"at most {s.max_batch} (GENSTUDIO_MAX_BATCH)")
        if self.guidance is not None and self.guidance > s.max_guidance:
            raise LimitError("guidance", f"at most {s.max_guidance}")
        for name in ("width", "height"):
            v = getattr(self, name)
            if v is None:
                continue
            if v % 8:
                raise LimitError(name, f"must be a multiple of 8 (got {v})")
            if not s.min_size <= v <= s.max_size:
                raise LimitError(name, f"must be between {s.min_size} and {s.max_size} (GENSTUDIO_MAX_SIZE), got {v}")


class ImageParams(BaseModel):
    """A request with every value resolved: what was actually run, stored with each image."""

    model_config = ConfigDict(extra="forbid")

    prompt: str
    negative_prompt: str
    style: str | None
    model: str
    seed: int
    steps: int
    guidance: float
    width: int
    height: int
    batch: int
    sampler: SamplerName
    tile: bool
    init_image: str | None = None  # img2img: the asset id (or "file:PATH" from the CLI) started from
    strength: float | None = None
    mask: str | None = None  # inpaint: white repaints, black keeps (pixels outside come back unchanged)
    mask_blur: int | None = None
    inpaint_area: Literal["whole", "masked"] | None = None
    outpaint: Outpaint | None = None
    hires: Hires | None = None
    loras: list[LoraRef] = Field(default_factory=list)
    controlnets: list[ControlUnit] = Field(default_factory=list)

    def out_size(self) -> tuple[int, int]:
        """The size of the images made: the hires fix multiplies the first pass's size."""
        if self.hires is None:
            return self.width, self.height
        return hires_size(self.width, self.height, self.hires.scale)

    def image_seeds(self) -> list[int]:
        # A1111's convention: image i of a batch uses seed + i, so each image can be re-made alone.
        return [(self.seed + i) % 2**32 for i in range(self.batch)]


def hires_size(width: int, height: int, scale: float) -> tuple[int, int]:
    return round(width * scale / 8) * 8, round(height * scale / 8) * 8


class UpscaleRequest(BaseModel):
    """POST /api/images/upscale: an image made bigger (Lanczos or an upscaler model), as a job."""

    model_config = ConfigDict(extra="forbid")

    image: str = Field(min_length=1, max_length=4096, description="an image asset")
    scale: float = Field(default=2.0, ge=1.0, le=4.0)
    upscaler: str = Field(default="lanczos", min_length=1, max_length=80, pattern=r"^[a-z0-9:-]+$",
                          description="lanczos | an upscaler model id")


class UpscaleParams(UpscaleRequest):
    op: Literal["upscale"] = "upscale"
    width: int
    height: int


class PreprocessRequest(BaseModel):
    """POST /api/images/preprocess: what a ControlNet preprocessor makes of an image (a preview)."""

    model_config = ConfigDict(extra="forbid")

    image: str = Field(min_length=1, max_length=4096)
    preprocessor: Preprocessor = "canny"


class PullRequest(BaseModel):
    """POST /api/models/pull: download a diffusers repo (safetensors and configs only) and register it; or,
    with kind "faceswap", one face-swap ONNX file of a repo (`file`)."""

    model_config = ConfigDict(extra="forbid")

    repo: str = Field(pattern=r"^[A-Za-z0-9][\w.-]{0,95}/[\w.-]{1,96}$", description="hub id: stabilityai/sd-turbo")
    kind: Literal["image", "faceswap"] = Field(
        default="image", description="what to fetch: an image pipeline (the repo), or a face-swap model (`file`)")
    file: str | None = Field(default=None, pattern=r"^[\w.-]+(/[\w.-]+)*\.onnx$", max_length=200,
                             description='kind "faceswap": the .onnx file in the repo, e.g. inswapper_128.onnx')
    revision: str | None = Field(default=None, pattern=r"^[\w./-]{1,100}$", description="branch, tag or commit")
    name: str | None = Field(default=None, min_length=1, max_length=64, description="the model id to register as")

    @model_validator(mode="after")
    def _file_for_faceswap(self) -> PullRequest:
        if self.kind == "faceswap" and not self.file:
            raise ValueError('file: kind "faceswap" pulls one .onnx file of the repo: name it')
        if self.kind == "image" and self.file:
            raise ValueError('file: only for kind "faceswap" (an image pull fetches the whole pipeline)')
        return self


class PullParams(BaseModel):
    """A pull job's params (op "pull"); `model_id` is the id the model will be registered under."""

    op: Literal["pull"] = "pull"
    repo: str
    revision: str | None = None
    name: str | None = None
    model_id: str
