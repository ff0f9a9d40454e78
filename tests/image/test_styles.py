import json
from importlib.resources import files

import pytest
from pydantic import ValidationError

from genstudio.image.styles import (
    CATEGORIES,
    Style,
    StyleCatalog,
    StyleSuggested,
    apply_style,
    get_style,
    load_styles,
)

REQUIRED_IDS = {
    "photography",
    "cinematic-film-still",
    "anime",
    "watercolor",
    "oil-painting",
    "pixel-art-sprite",
    "isometric-game-asset",
    "game-environment-concept-art",
    "character-concept-sheet",
    "low-poly-3d",
    "product-advertisement",
    "poster-banner",
    "social-media-post",
    "architectural-render",
    "interior-design",
    "fashion-design-sketch",
    "seamless-textile-pattern",
    "logo-icon",
    "storyboard-frame",
    "comic-book",
    "line-art-coloring-page",
    "clay-3d-render",
    "synthwave",
    "flat-emoji",
    "glossy-emoji",
}


def make_style(**overrides: object) -> Style:
    data: dict[str, object] = {
        "id": "test",
        "name": "Test",
        "category": "Design",
        "description": "A test style.",
        "prompt": "painting of {prompt}, detailed",
        "negative_prompt": "blurry, lowres",
    }
    data.update(overrides)
    return Style.model_validate(data)


def test_catalog_has_enough_presets_and_all_required_uses() -> None:
    styles = load_styles()
    assert len(styles) >= 24
    assert REQUIRED_IDS <= styles.keys()


def test_every_category_is_used() -> None:
    used = {style.category for style in load_styles().values()}
    assert used == set(CATEGORIES)


def test_json_file_validates_and_keys_match_ids() -> None:
    raw = json.loads(
        files("genstudio.image").joinpath("styles.json").read_text(encoding="utf-8")
    )
    catalog = StyleCatalog.model_validate(raw)
    assert [s.id for s in catalog.styles] == list(load_styles())
    for style_id, style in load_styles().items():
        assert style.id == style_id
        assert style.prompt.count("{prompt}") == 1


def test_pattern_presets_tile_and_others_do_not() -> None:
    tiling = {s.id for s in load_styles().values() if s.suggested.tile}
    assert "seamless-textile-pattern" in tiling
    assert all("seamless" in style_id for style_id in tiling)


def test_emoji_presets_end_like_the_emoji_model_captions() -> None:
    assert (
        apply_style(get_style("flat-emoji"), "a red apple", "")[0]
        == "a red apple, flat emoji"
    )
    assert (
        apply_style(get_style("glossy-emoji"), "a red apple", "")[0]
        == "a red apple, glossy emoji"
    )


def test_style_negative_prompts_have_no_repeated_terms() -> None:
    for style in load_styles().values():
        terms = [t.strip().casefold() for t in style.negative_prompt.split(",")]
        assert len(terms) == len(set(terms)), style.id


def test_load_styles_returns_a_copy() -> None:
    load_styles().clear()
    assert len(load_styles()) >= 24


def test_apply_style_fills_template() -> None:
    style = make_style()
    assert apply_style(style, "a red fox", "") == (
        "painting of a red fox, detailed",
        "blurry, lowres",
    )


def test_apply_style_with_real_preset() -> None:
    style = get_style("cinematic-film-still")
    prompt, _ = apply_style(style, "  a lighthouse at dusk ", "")
    assert prompt == (
        "cinematic film still of a lighthouse at dusk, shallow depth of field, anamorphic, "
        "dramatic lighting, film grain, color graded"
    )


def test_apply_style_leaves_braces_in_prompt_alone() -> None:
    style = make_style()
    assert (
        apply_style(style, "a sign saying {hello}", "")[0]
        == "painting of a sign saying {hello}, detailed"
    )


def test_apply_style_none_returns_inputs_unchanged() -> None:
    assert apply_style(None, "a red fox", "ugly") == ("a red fox", "ugly")


def test_negative_prompt_user_first_then_style_without_duplicates() -> None:
    style = make_style(negative_prompt="blurry, lowres, watermark")
    _, negative = apply_style(style, "x", "text, Blurry, , extra fingers")
    assert negative == "text, Blurry, extra fingers, lowres, watermark"


def test_negative_prompt_empty_parts_are_skipped() -> None:
    assert apply_style(make_style(negative_prompt=""), "x", "")[1] == ""
    assert apply_style(make_style(negative_prompt=""), "x", "ugly")[1] == "ugly"
    assert apply_style(make_style(), "x", "  ")[1] == "blurry, lowres"


def test_unknown_style_raises_key_error_naming_it() -> None:
    with pytest.raises(KeyError, match="no-such-style"):
        get_style("no-such-style")


@pytest.mark.parametrize("template", ["painting", "{prompt} and {prompt}"])
def test_template_needs_exactly_one_placeholder(template: str) -> None:
    with pytest.raises(ValidationError, match="exactly once"):
        make_style(prompt=template)


@pytest.mark.parametrize("size", [100, 32, 4096])
def test_sizes_must_be_multiples_of_8_in_range(size: int) -> None:
    with pytest.raises(ValidationError):
        StyleSuggested(width=size)
    with pytest.raises(ValidationError):
        StyleSuggested(height=size)


def test_extra_fields_and_unknown_category_are_rejected() -> None:
    with pytest.raises(ValidationError):
        make_style(colour="red")
    with pytest.raises(ValidationError):
        make_style(category="Cooking")
    with pytest.raises(ValidationError):
        StyleSuggested(sampler="plms")


def test_duplicate_ids_are_rejected() -> None:
    style = make_style().model_dump()
    with pytest.raises(ValidationError, match="duplicate style ids: test"):
        StyleCatalog.model_validate({"styles": [style, style]})
