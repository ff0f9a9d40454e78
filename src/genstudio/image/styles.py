"""Named style presets for text-to-image: a prompt template, a negative prompt and suggested settings.

The presets live in ``styles.json`` next to this module; ``apply_style`` turns a user's prompt into the
prompt the model sees. A style of ``None`` means "no style".
"""

from __future__ import annotations

import json
from collections import Counter
from functools import cache
from importlib.resources import files
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

PLACEHOLDER = "{prompt}"
MIN_SIZE = 64
MAX_SIZE = 2048

Category = Literal[
    "Photography",
    "Film & Video",
    "Illustration & Art",
    "Games",
    "3D & Architecture",
    "Marketing & Advertising",
    "Fashion & Textile",
    "Design",
]
CATEGORIES: tuple[str, ...] = Category.__args__
Sampler = Literal["ddim", "euler", "euler_a", "dpmpp_2m", "lcm"]


class StyleSuggested(BaseModel):
    """Settings a style works best with; the UI pre-fills them and the user may override any."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    steps: int | None = Field(default=None, ge=1, le=200)
    guidance: float | None = Field(default=None, ge=0.0, le=30.0)
    width: int | None = Field(default=None, ge=MIN_SIZE, le=MAX_SIZE)
    height: int | None = Field(default=None, ge=MIN_SIZE, le=MAX_SIZE)
    sampler: Sampler | None = None
    tile: bool = False

    @field_validator("width", "height")
    @classmethod
    def _multiple_of_8(cls, value: int | None) -> int | None:
        # Latent diffusion models downsample by 8; other sizes get silently cropped.
        if value is not None and value % 8:
            raise ValueError(f"must be a multiple of 8, got {value}")
        return value


class Style(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9]+(?:-[a-z0-9]+)*$", max_length=64)
    name: str = Field(min_length=1, max_length=64)
    category: Category
    description: str = Field(min_length=1, max_length=120)
    prompt: str
    negative_prompt: str = ""
    suggested: StyleSuggested = StyleSuggested()
    # Model families the style is made for ("builtin": what the built-in emoji model can draw; "sd": any
    # Stable Diffusion family). The page lists the ones that suit the selected model first.
    suits: list[Literal["builtin", "sd"]] = Field(default_factory=lambda: ["sd"])

    @field_validator("prompt")
    @classmethod
    def _one_placeholder(cls, value: str) -> str:
        count = value.count(PLACEHOLDER)
        if count != 1:
            raise ValueError(
                f"template must contain {PLACEHOLDER} exactly once, found {count}"
            )
        return value

    @field_validator("description")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if "\n" in value:
            raise ValueError("description must be a single line")
        return value


class StyleCatalog(BaseModel):
    """The shape of ``styles.json``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    styles: list[Style]

    @model_validator(mode="after")
    def _unique_ids(self) -> StyleCatalog:
        counts = Counter(style.id for style in self.styles)
        duplicates = sorted(style_id for style_id, n in counts.items() if n > 1)
        if duplicates:
            raise ValueError(f"duplicate style ids: {', '.join(duplicates)}")
        return self


@cache
def _catalog() -> dict[str, Style]:
    text = files("genstudio.image").joinpath("styles.json").read_text(encoding="utf-8")
    catalog = StyleCatalog.model_validate(json.loads(text))
    return {style.id: style for style in catalog.styles}


def load_styles() -> dict[str, Style]:
    """All presets by id, in file order. Parsed once; callers get their own dict."""
    return dict(_catalog())


def get_style(style_id: str) -> Style:
    try:
        return _catalog()[style_id]
    except KeyError:
        raise KeyError(
            f"unknown style {style_id!r}; known styles: {', '.join(_catalog())}"
        ) from None


def merge_negative_prompts(*parts: str) -> str:
    """Join comma-separated term lists in order, dropping empty terms and repeats (case-insensitive)."""
    seen: set[str] = set()
    terms: list[str] = []
    for part in parts:
        for term in part.split(","):
            term = term.strip()
            key = term.casefold()
            if term and key not in seen:
                seen.add(key)
                terms.append(term)
    return ", ".join(terms)


def apply_style(
    style: Style | None, prompt: str, negative_prompt: str
) -> tuple[str, str]:
    """Return ``(prompt, negative_prompt)`` as the model should see them.

    With no style the inputs are returned unchanged. Otherwise the user's prompt fills the template
    (``str.replace``, not ``str.format``, so braces in either are left alone) and the user's negative
    terms come first, then the style's, without repeats.
    """
    if style is None:
        return prompt, negative_prompt
    styled = style.prompt.replace(PLACEHOLDER, prompt.strip())
    return styled, merge_negative_prompts(negative_prompt, style.negative_prompt)
