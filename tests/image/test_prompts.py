"""A1111 prompt syntax: the parser against A1111's own examples, the compel spelling read back by compel's
parser, and the embeddings on tiny SD 1.x / SDXL pipelines (the char-level tokenizer has a 16-token window,
so chunks are 14 tokens there; CLIP's real 49,408-token tokenizer gives the real 77)."""

from __future__ import annotations

import random
import re
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

from genstudio.image.prompts import encode, has_weights, parse, to_compel
from tiny_models import tiny_sd_pipeline, tiny_sdxl_pipeline

KEYS_XL = ("prompt_embeds", "negative_prompt_embeds", "pooled_prompt_embeds", "negative_pooled_prompt_embeds")
MAKERS = {"sd1": tiny_sd_pipeline, "sdxl": tiny_sdxl_pipeline}


# ---- the parser: A1111's parse_prompt_attention doctests, and BREAK ----

@pytest.mark.parametrize(("text", "runs"), [
    ("normal text", [("normal text", 1.0)]),
    ("an (important) word", [("an ", 1.0), ("important", 1.1), (" word", 1.0)]),
    ("(unbalanced", [("unbalanced", 1.1)]),
    ("\\(literal\\]", [("(literal]", 1.0)]),
    ("(unnecessary)(parens)", [("unnecessaryparens", 1.1)]),
    ("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
     [("a ", 1.0), ("house", 1.5730000000000004), (" ", 1.1), ("on", 1.0), (" a ", 1.1), ("hill", 0.55),
      (", sun, ", 1.1), ("sky", 1.4641000000000006), (".", 1.1)]),
])
def test_parser_gives_a1111s_doctest_results(text: str, runs: list[tuple[str, float]]) -> None:
    assert parse(text) == [runs]


@pytest.mark.parametrize(("text", "runs"), [
    ("(word)", [("word", 1.1)]),
    ("((word))", [("word", 1.1 * 1.1)]),
    ("(word:1.3)", [("word", 1.3)]),
    ("( word : 0.7 )", [(" word ", 0.7)]),
    ("[word]", [("word", 1 / 1.1)]),
    ("[[word]]", [("word", 1 / 1.1 / 1.1)]),
    ("[(word:1.5)]", [("word", 1.5 / 1.1)]),
    ("((a) b:2)", [("a", 2.2), (" b", 2.0)]),
    ("[unbalanced", [("unbalanced", 1 / 1.1)]),
    ("stray) and ] and : stay", [("stray) and ] and : stay", 1.0)]),
    ("(a:1.2.3)", [("a", 1.0)]),  # A1111 raises on the number; taken as 1.0
    ("(a:-0.5)", [("a", -0.5)]),
    ("()", [("", 1.0)]),
    ("", [("", 1.0)]),
    ("\\(a\\) \\[b\\] \\\\", [("(a) [b] \\", 1.0)]),
    ("a\\b", [("ab", 1.0)]),  # a lone backslash is dropped, as in A1111
])
def test_parser_weights_nesting_and_escapes(text: str, runs: list[tuple[str, float]]) -> None:
    assert parse(text) == [runs]


@pytest.mark.parametrize(("text", "parts"), [
    ("a BREAK b", [[("a", 1.0)], [("b", 1.0)]]),
    ("a, BREAK\nb", [[("a,", 1.0)], [("b", 1.0)]]),
    ("BREAK a", [[("", 1.0)], [("a", 1.0)]]),  # A1111 emits the empty first chunk
    ("a BREAK", [[("a", 1.0)], [("", 1.0)]]),  # ... and no chunk for an empty last part (see encode's test)
    ("a BREAK BREAK b", [[("a", 1.0)], [("", 1.0)], [("b", 1.0)]]),
    ("(a BREAK b)", [[("a", 1.1)], [("b", 1.1)]]),
    ("aBREAKb break BREAKS", [[("aBREAKb break BREAKS", 1.0)]]),  # only the upper-case word
])
def test_break_splits_the_prompt(text: str, parts: list[list[tuple[str, float]]]) -> None:
    assert parse(text) == parts


def test_textual_inversion_names_pass_through() -> None:
    assert parse("easynegative, (my-style:1.2), bad_prompt_v2") == [
        [("easynegative, ", 1.0), ("my-style", 1.2), (", bad_prompt_v2", 1.0)]]
    assert to_compel("easynegative, (my-style:1.2)") == "easynegative, (my-style)1.2"


def test_has_weights() -> None:
    for plain in ("a red cube", "", "ratio 3:2, a) b ] c", "easynegative, my-style"):
        assert not has_weights(plain), plain
    for syntax in ("a (red) cube", "(red:1.0)", "[red]", "a \\(red\\)", "a BREAK b", "(unbalanced"):
        assert has_weights(syntax), syntax
    tok = tiny_sd_pipeline().tokenizer  # a 16-token window: 14 tokens of text
    assert not has_weights("a" * 14, tok)
    assert has_weights("a" * 15, tok)
    assert not has_weights("a" * 15)  # without the tokenizer only the syntax is looked at


# ---- the compel spelling ----

@pytest.mark.parametrize(("text", "compel"), [
    ("a red cube", "a red cube"),
    ("an (important) word", "an (important)1.1 word"),
    ("(word:1.5)", "(word)1.5"),
    ("((word))", "(word)1.2100000000000002"),
    ("[word]", "(word)0.9090909090909091"),
    ("x(cat)y", "x (cat)1.1 y"),
    ("(cat)5 girls", "(cat)1.1 5 girls"),
    ("a \\(literal\\) b", "a \\(literal\\) b"),
    ('say "hi"', 'say \\"hi\\"'),
    ("a BREAK (b:1.2)", "a BREAK (b)1.2"),
    ("(a:-1)", "(a)0.0"),
    ("(a:0.00001)", "(a)0.00001"),
])
def test_to_compel(text: str, compel: str) -> None:
    assert to_compel(text) == compel


def _fragments(runs: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """Runs as CLIP sees them: whitespace ignored, empty runs dropped, neighbours of equal weight merged
    (compel fuses them; CLIP's tokens split at the same places either way)."""
    out: list[tuple[str, float]] = []
    for text, weight in runs:
        text, weight = re.sub(r"\s+", "", text), round(max(weight, 0.0), 6)
        if not text:
            continue
        if out and out[-1][1] == weight:
            out[-1] = (out[-1][0] + text, weight)
        else:
            out.append((text, weight))
    return out


def _assert_reads_back(text: str) -> None:
    """compel's parser reads `to_compel(text)` as the runs A1111 reads from `text` (BREAK aside), but for the
    backslash compel keeps before a `+`, `-` or `=` it has no other spelling for."""
    from compel import PromptParser

    parser = PromptParser()
    parts = re.split(r"\s*\bBREAK\b\s*", to_compel(text))
    assert len(parts) == len(parse(text)), text
    for part, runs in zip(parts, parse(text), strict=True):
        flattened = parser.parse_conjunction(part).prompts
        got = [(re.sub(r"\\([+\-=])", r"\1", f.text), f.weight) for p in flattened for f in p.children]
        assert _fragments(got) == _fragments(runs), (text, part)


@pytest.mark.parametrize("text", [
    "masterpiece, best quality, (1girl:1.2), [[blurry]], ((red hair)), 8k, f/1.8",
    "a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
    "easynegative, (my-style:1.3), lora_trigger-v2, bad_prompt_v2",
    "(photo of a \\(cat\\):1.4), \\[not a tag\\], 50% off, it's 3.5 stars!",
    "a (red:1.2) cube BREAK (blue:0.8) sphere, (x.swap(y):1.1), (withLora(z):1.1)",
    'say "hello" (and "bye":1.2) ratio 16:9 [a:b:0.5]',
    "(unbalanced [also",
    "x.swap(y) withLora(z) a.blend(1,2) useLora(q), C++ (c++:1.2) a - b (x=y:0.8)",
])
def test_to_compel_reads_back_in_compels_parser(text: str) -> None:
    _assert_reads_back(text)


def test_to_compel_reads_back_for_random_prompts() -> None:
    atoms = ["red", "cube", "wow!", ",", ".", "(", ")", "[", "]", ":1.3)", ":0.4)", "\\(", "\\)", "BREAK", "my-style",
             "C++", "a=b", "  ", ":", "8k", '"q"', "((", "))", "x.swap(y)", "withLora(z)", "3.5", "-", "+", "a-",
             "'s", "_", ".and()", ".blend(1,2)"]
    rng = random.Random(0)
    for _ in range(300):
        _assert_reads_back("".join(rng.choice(atoms) + rng.choice(["", " "]) for _ in range(rng.randint(1, 12))))


# ---- embeddings on tiny pipelines ----

@pytest.fixture(scope="module")
def sd1() -> Any:
    return tiny_sd_pipeline()


@pytest.fixture(scope="module")
def sdxl() -> Any:
    return tiny_sdxl_pipeline()


@pytest.fixture(scope="module")
def real_vocab(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """SD 1.x- and SDXL-shaped pipelines with CLIP's real tokenizers (77 tokens; SDXL's second one pads with
    `!`) and toy text encoders of that vocabulary."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    from genstudio.image.single_file import config_folder

    folder = config_folder("sdxl", tmp_path_factory.mktemp("configs"))
    tok, tok2 = (CLIPTokenizer.from_pretrained(folder / name) for name in ("tokenizer", "tokenizer_2"))

    def encoder(cls: Any, pad: int) -> Any:
        torch.manual_seed(0)
        return cls(CLIPTextConfig(vocab_size=len(tok), max_position_embeddings=77, hidden_size=32,
                                  intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
                                  projection_dim=32, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                  pad_token_id=pad))

    sd = tiny_sd_pipeline()
    sd.register_modules(tokenizer=tok, text_encoder=encoder(CLIPTextModel, tok.pad_token_id))
    xl = tiny_sdxl_pipeline()
    xl.register_modules(tokenizer=tok, text_encoder=encoder(CLIPTextModel, tok.pad_token_id),
                        tokenizer_2=tok2, text_encoder_2=encoder(CLIPTextModelWithProjection, tok2.pad_token_id))
    assert (tok.pad_token_id, tok2.pad_token_id) == (tok.eos_token_id, 0)
    return {"sd1": sd, "sdxl": xl}


def reference(pipe: Any, prompt: str, negative: str | None, batch: int = 1) -> dict[str, torch.Tensor]:
    """What the pipeline's own encode_prompt gives (negative None: what the backend passes for "")."""
    out = pipe.encode_prompt(prompt, device="cpu", num_images_per_prompt=batch, do_classifier_free_guidance=True,
                             negative_prompt=negative)
    return dict(zip(KEYS_XL, out, strict=False))


def token_positions(tokenizer: Any, prompt: str, word: str) -> list[int]:
    """Positions (BOS at 0) of `word`'s tokens in `prompt`, counting its last occurrence."""
    ids = tokenizer(prompt)["input_ids"]
    sub = tokenizer(word, add_special_tokens=False)["input_ids"]
    start = max(i for i in range(len(ids)) if ids[i : i + len(sub)] == sub)
    return list(range(start, start + len(sub)))


@pytest.mark.parametrize("family", ["sd1", "sdxl"])
@pytest.mark.parametrize(("prompt", "negative"), [("a red cube", "blurry"), ("a red cube", ""), ("", "")])
def test_plain_prompts_equal_the_pipelines_encoding(family: str, prompt: str, negative: str, request) -> None:  # noqa: ANN001
    pipe = request.getfixturevalue(family)
    got = encode(pipe, prompt, negative, batch=2)
    want = reference(pipe, prompt, negative or None, batch=2)
    assert set(got) == set(want)
    for key, tensor in want.items():
        assert got[key].shape == tensor.shape, key
        assert torch.allclose(got[key], tensor, atol=1e-6), key
    if family == "sdxl" and not negative:  # SDXL's force_zeros_for_empty_prompt, as A1111 does too
        assert not got["negative_prompt_embeds"].any() and not got["negative_pooled_prompt_embeds"].any()


@pytest.mark.parametrize("family", ["sd1", "sdxl"])
def test_real_tokenizer_plain_prompt_equals_the_pipelines_encoding(family: str, real_vocab: dict[str, Any]) -> None:
    pipe = real_vocab[family]
    got = encode(pipe, "masterpiece, a cat on a sofa, wow!", "lowres, bad!", batch=1)
    for key, tensor in reference(pipe, "masterpiece, a cat on a sofa, wow!", "lowres, bad!").items():
        assert torch.allclose(got[key], tensor, atol=1e-6), key


@pytest.mark.parametrize("family", ["sd1", "sdxl"])
def test_an_upweight_changes_only_its_tokens(family: str, request) -> None:  # noqa: ANN001
    pipe = request.getfixturevalue(family)
    plain = encode(pipe, "a red cube", "", 1)["prompt_embeds"][0]
    heavy = encode(pipe, "a (red:1.5) cube", "", 1)["prompt_embeds"][0]
    red = token_positions(pipe.tokenizer, "a red cube", "red")
    moved = (heavy - plain).norm(dim=-1)
    others = [i for i in range(plain.shape[0]) if i not in red]
    assert (moved[red] > 1e-3).all()
    assert moved[others].max() < 1e-6
    # compel's rule: 1.5x as far from the empty prompt's embedding at those positions
    empty = encode(pipe, "", "x", 1)["prompt_embeds"][0]
    assert torch.allclose(heavy[red] - empty[red], 1.5 * (plain[red] - empty[red]), atol=1e-5)


def test_weight_one_equals_plain(sd1: Any) -> None:
    plain = encode(sd1, "a red cube", "", 1)
    for spelled in ("a (red:1.0) cube", "a ([red]:1.1) cube", "(a red cube:1)"):
        got = encode(sd1, spelled, "", 1)
        assert torch.allclose(got["prompt_embeds"], plain["prompt_embeds"], atol=1e-5), spelled


@pytest.mark.parametrize("family", ["sd1", "sdxl"])
def test_round_and_square_brackets_move_opposite_ways(family: str, request) -> None:  # noqa: ANN001
    pipe = request.getfixturevalue(family)
    plain = encode(pipe, "a red cube", "", 1)["prompt_embeds"][0]
    up = encode(pipe, "a (red) cube", "", 1)["prompt_embeds"][0] - plain
    down = encode(pipe, "a [red] cube", "", 1)["prompt_embeds"][0] - plain
    red = token_positions(pipe.tokenizer, "a red cube", "red")
    assert ((up[red] * down[red]).sum(-1) < 0).all()
    # towards / away from the empty prompt
    empty = encode(pipe, "", "x", 1)["prompt_embeds"][0][red]
    base = (plain[red] - empty).norm()
    assert (plain[red] + up[red] - empty).norm() > base > (plain[red] + down[red] - empty).norm()


def test_a_200_token_prompt_gives_3_chunks_of_77(real_vocab: dict[str, Any]) -> None:
    pipe = real_vocab["sd1"]
    prompt = ", ".join(["red"] * 100)  # 199 tokens + BOS/EOS
    assert len(pipe.tokenizer(prompt)["input_ids"]) == 201
    got = encode(pipe, prompt, "", 1)
    assert got["prompt_embeds"].shape == (1, 3 * 77, 32)
    assert got["negative_prompt_embeds"].shape == (1, 3 * 77, 32)
    # the first chunk is what the pipeline sees (it cuts at 75 tokens); the negative is padded with empties
    want = reference(pipe, prompt, None)
    assert torch.allclose(got["prompt_embeds"][:, :77], want["prompt_embeds"], atol=1e-6)
    for k in range(3):
        assert torch.allclose(got["negative_prompt_embeds"][:, 77 * k : 77 * (k + 1)],
                              want["negative_prompt_embeds"], atol=1e-6)
    # the last chunk holds the remaining 49 tokens
    rest = pipe.tokenizer.decode(pipe.tokenizer(prompt)["input_ids"][1 + 150 : -1])
    assert torch.allclose(got["prompt_embeds"][:, 154:], reference(pipe, rest, None)["prompt_embeds"], atol=1e-6)


@pytest.mark.parametrize("family", ["sd1", "sdxl"])
def test_chunk_size_comes_from_the_tokenizer(family: str, request) -> None:  # noqa: ANN001
    pipe = request.getfixturevalue(family)
    window = pipe.tokenizer.model_max_length
    assert window == 16
    text = " ".join("abcdefghijklmnopqrstuvwxyz"[i % 26] for i in range(2 * (window - 2) + 1))  # 29 tokens
    got = encode(pipe, text, "short", 2)
    assert got["prompt_embeds"].shape[:2] == (2, 3 * window)
    assert got["negative_prompt_embeds"].shape == got["prompt_embeds"].shape
    # each chunk is 14 tokens wrapped in BOS/EOS, as the pipeline would encode those 14 tokens alone
    first = " ".join(text.split()[: window - 2])
    assert torch.allclose(got["prompt_embeds"][:1, :window], reference(pipe, first, None)["prompt_embeds"],
                          atol=1e-6)


@pytest.mark.parametrize("family", ["sd1", "sdxl"])
def test_break_starts_a_new_chunk(family: str, request) -> None:  # noqa: ANN001
    pipe = request.getfixturevalue(family)
    got = encode(pipe, "a red cube BREAK blue sky", "", 1)
    assert got["prompt_embeds"].shape[1] == 32
    first, second = reference(pipe, "a red cube", None), reference(pipe, "blue sky", None)
    assert torch.allclose(got["prompt_embeds"][:, :16], first["prompt_embeds"], atol=1e-6)
    assert torch.allclose(got["prompt_embeds"][:, 16:], second["prompt_embeds"], atol=1e-6)
    if family == "sdxl":  # pooled from the first chunk, as A1111
        assert torch.allclose(got["pooled_prompt_embeds"], first["pooled_prompt_embeds"], atol=1e-6)
    # A1111's edges: a leading BREAK gives an empty first chunk, a trailing one adds nothing
    assert encode(pipe, "BREAK a red cube", "", 1)["prompt_embeds"].shape[1] == 32
    assert encode(pipe, "a red cube BREAK", "", 1)["prompt_embeds"].shape[1] == 16
    assert encode(pipe, "a BREAK BREAK b", "", 1)["prompt_embeds"].shape[1] == 48


def test_escaped_parentheses_stay_literal(sd1: Any) -> None:
    got = encode(sd1, "a \\(red\\) cube", "", 1)["prompt_embeds"]
    assert torch.allclose(got, reference(sd1, "a (red) cube", None)["prompt_embeds"], atol=1e-6)
    weighted = encode(sd1, "a (red) cube", "", 1)["prompt_embeds"]
    assert weighted.shape == got.shape and not torch.allclose(weighted, got, atol=1e-3)


def test_sdxl_pooled_embedding_leaves_the_syntax_out(sdxl: Any) -> None:
    got = encode(sdxl, "a (red:1.4) [cube]", "(ugly:1.2)", 1)
    assert torch.allclose(got["pooled_prompt_embeds"], reference(sdxl, "a red cube", None)["pooled_prompt_embeds"],
                          atol=1e-6)
    assert torch.allclose(got["negative_pooled_prompt_embeds"],
                          reference(sdxl, "x", "ugly")["negative_pooled_prompt_embeds"], atol=1e-6)


@pytest.mark.parametrize("family", ["sd1", "sdxl"])
def test_shorter_side_is_padded_with_empty_chunks(family: str, request) -> None:  # noqa: ANN001
    pipe = request.getfixturevalue(family)
    empty = reference(pipe, "", "")["prompt_embeds"]
    got = encode(pipe, "red", "a b c d e f g h i j k l m n o p q r", 1)  # negative: 2 chunks
    assert got["prompt_embeds"].shape == got["negative_prompt_embeds"].shape == (1, 32, empty.shape[-1])
    assert torch.allclose(got["prompt_embeds"][:, 16:], empty, atol=1e-6)


def test_textual_inversion_tokens_pass_through() -> None:
    pipe = tiny_sd_pipeline()
    pipe.load_textual_inversion(torch.randn(2, 32), token="my-style")  # two vectors: my-style, my-style_1
    plain = encode(pipe, "a my-style cube", "", 1)["prompt_embeds"][0]
    assert torch.allclose(plain, reference(pipe, "a my-style cube", None)["prompt_embeds"][0], atol=1e-6)
    heavy = encode(pipe, "a (my-style:1.3) cube", "", 1)["prompt_embeds"][0]
    moved = torch.nonzero((heavy - plain).norm(dim=-1) > 1e-6).flatten().tolist()
    assert moved == [2, 3]  # BOS, "a", then both of the embedding's vectors
    # 14 tokens as written, 15 with the embedding's second vector: over the 16-token window's 14
    longish = "a my-style cube " + "x" * 8
    assert len(pipe.tokenizer(longish, add_special_tokens=False)["input_ids"]) == 14
    assert has_weights(longish, pipe.tokenizer)


@pytest.mark.parametrize("family", ["sd1", "sdxl"])
def test_a_pipeline_runs_with_the_returned_kwargs(family: str, request) -> None:  # noqa: ANN001
    pipe = request.getfixturevalue(family)
    pipe.set_progress_bar_config(disable=True)
    kwargs = encode(pipe, "a (red:1.3) cube, [blurry] BREAK a tall sky over a quiet sea", "(ugly), dull", 2)
    images = pipe(**kwargs, num_inference_steps=2, guidance_scale=5.0, width=32, height=32, output_type="np",
                  generator=[torch.Generator().manual_seed(s) for s in (1, 2)]).images
    assert images.shape == (2, 32, 32, 3) and np.isfinite(images).all()


@pytest.mark.parametrize("family", ["sd1", "sdxl"])
def test_bfloat16_pipeline(family: str) -> None:
    pipe = MAKERS[family]().to(torch.bfloat16)
    pipe.set_progress_bar_config(disable=True)
    got = encode(pipe, "a red cube", "dull", 1)
    for key, tensor in reference(pipe, "a red cube", "dull").items():
        assert got[key].dtype == torch.bfloat16 and torch.equal(got[key], tensor), key
    kwargs = encode(pipe, "a (red:1.4) [cube] BREAK sky", "dull", 1)
    assert all(v.dtype == torch.bfloat16 for v in kwargs.values())
    images = pipe(**kwargs, num_inference_steps=2, width=32, height=32, output_type="np").images
    assert np.isfinite(images).all()


def test_other_pipelines_are_refused() -> None:
    with pytest.raises(ValueError, match="Stable Diffusion"):
        encode(SimpleNamespace(transformer=object()), "a", "", 1)
