"""Prompts written in AUTOMATIC1111's syntax turned into the embeddings a diffusers Stable Diffusion pipeline
takes (SD 1.x / 2.x: one CLIP encoder; SDXL: two, plus pooled embeddings), with compel doing the encoding.

The syntax (A1111's `modules/prompt_parser.py`, `parse_prompt_attention`, ported as it is):

- `(words)` multiplies the weight of `words` by 1.1, `((words))` by 1.21, `(words:1.3)` by 1.3 (a space is
  allowed around the number: `(words : 1.3)`), `[words]` divides it by 1.1; brackets nest and multiply.
- `\\(`, `\\)`, `\\[`, `\\]` and `\\\\` are the literal characters; any other `:`, or a closing bracket with no
  opening one, is plain text. A bracket left open weights everything after it (`(unbalanced` is 1.1).
- `BREAK` (upper case, a word of its own) ends the current 75-token chunk: the text after it starts a new one.
- A prompt longer than the encoder's window (77 tokens: BOS + 75 + EOS) is split into 75-token chunks, each
  wrapped in BOS/EOS and encoded on its own; the chunks' embeddings are concatenated along the sequence
  (2 chunks = 154 positions). The window comes from the tokenizer (`model_max_length`), not a fixed 77.
  The negative prompt is padded with empty-prompt chunks to the positive's length, or the other way round.
- Textual-inversion tokens (`easynegative`, `my-style`) are plain text to the parser and reach the tokenizer
  untouched; multi-vector ones are expanded to all their vectors as diffusers' own `encode_prompt` does.
- Prompt editing `[from:to:when]`, alternation `[a|b]` and `AND` are step-schedule / composable-diffusion
  features, not embeddings: they are not interpreted (their text goes through the rules above).

What matches A1111 exactly: the parser (its doctests are our tests), the weight each token gets, BREAK,
chunks of 75 tokens each wrapped in BOS/EOS and concatenated, padding with the tokenizer's pad token (EOS
for SD 1.x, `!` for SD 2.x and SDXL's second encoder), hidden states per family (SD 1.x/2.x last layer,
normalised; SDXL the penultimate layer of both encoders, not normalised), SDXL's pooled embedding taken from
the first chunk with the weights left out, and an empty negative prompt on SDXL being all zeros. A plain
prompt (no syntax, within the window) gives what the pipeline's own `encode_prompt` gives.

What differs from A1111:

- How a weight acts (compel's rule, not A1111's). A1111 multiplies each token's embedding by its weight and
  then rescales the whole tensor so its mean is what it was before. compel moves a token's embedding away
  from (weight > 1) or towards (weight < 1) the embedding of the empty prompt at that position:
  `empty + (z - empty) * w` (ComfyUI's default rule too), and for weight < 1 it also blends in the prompt
  encoded with those words masked out, so `(word:0)` removes the word instead of zeroing its vector.
  Weights below 0 (A1111 flips the vector's sign) are taken as 0. Strengths are therefore close to A1111's
  but not identical, and the global mean is not restored.
- Long prompts are split at exactly 75 tokens. A1111 by default moves the words after the last comma to the
  next chunk when that comma is within the last 20 tokens (`comma_padding_backtrack`), so its chunks can
  end a little earlier; with that setting at 0 the chunks are the same.
- `BREAK` inside brackets still breaks (A1111 would encode the word "break" with a negative weight).
- A malformed number (`(a:1.2.3)`) counts as 1.0 where A1111 raises an error.
- The negative prompt is padded with empty-prompt chunks (A1111's "pad prompt/negative prompt to be same
  length" option); A1111's default instead runs the two at different lengths in separate batches.
"""

from __future__ import annotations

import re
from typing import Any

import torch

Run = tuple[str, float]  # a piece of text and its weight

# A1111's tokens: the escapes, brackets, `:number)`, plain text, and a lone `:`.
_ATTENTION = re.compile(
    r"""
\\\(|
\\\)|
\\\[|
\\]|
\\\\|
\\|
\(|
\[|
:\s*([+-]?[.\d]+)\s*\)|
\)|
]|
[^\\()\[\]:]+|
:
""",
    re.X,
)
_BREAK = re.compile(r"\s*\bBREAK\b\s*", re.S)
_ROUND, _SQUARE = 1.1, 1 / 1.1


def parse(text: str) -> list[list[Run]]:
    """A1111's `parse_prompt_attention`, split at BREAK: one list of (text, weight) runs per BREAK-separated
    part, runs of equal weight merged as A1111 merges them, empty runs left out (a part with no text is
    `[("", 1.0)]`)."""
    res: list[list[Any]] = []  # [text, weight, is_break]
    round_open: list[int] = []
    square_open: list[int] = []

    def multiply(start: int, by: float) -> None:
        for item in res[start:]:
            item[1] *= by

    for m in _ATTENTION.finditer(text):
        piece, number = m.group(0), m.group(1)
        if piece.startswith("\\"):
            res.append([piece[1:], 1.0, False])
        elif piece == "(":
            round_open.append(len(res))
        elif piece == "[":
            square_open.append(len(res))
        elif number is not None and round_open:
            try:
                by = float(number)
            except ValueError:  # "1.2.3": A1111 raises
                by = 1.0
            multiply(round_open.pop(), by)
        elif piece == ")" and round_open:
            multiply(round_open.pop(), _ROUND)
        elif piece == "]" and square_open:
            multiply(square_open.pop(), _SQUARE)
        else:
            for i, part in enumerate(_BREAK.split(piece)):
                if i:
                    res.append(["", 1.0, True])
                res.append([part, 1.0, False])
    for start in round_open:
        multiply(start, _ROUND)
    for start in square_open:
        multiply(start, _SQUARE)

    parts: list[list[Run]] = [[]]
    for piece, weight, is_break in res:
        if is_break:
            parts.append([])
        elif parts[-1] and parts[-1][-1][1] == weight:
            parts[-1][-1] = (parts[-1][-1][0] + piece, weight)
        else:
            parts[-1].append((piece, weight))
    return [[r for r in runs if r[0]] or [("", 1.0)] for runs in parts]


def has_weights(text: str, tokenizer: Any = None) -> bool:
    """True if `text` uses any A1111 syntax (brackets, weights, escapes, BREAK), i.e. `encode` reads it
    differently from the pipeline's own plain encoding. Given the pipeline's tokenizer, also True when the
    prompt is longer than the tokenizer's window (the pipeline would cut it; `encode` chunks it)."""
    if parse(text) != [[(text, 1.0)]]:
        return True
    if tokenizer is None:
        return False
    ids = tokenizer(text, truncation=False)["input_ids"]
    return len(_Expander(tokenizer).expand_textual_inversion_token_ids_if_necessary(ids)) > tokenizer.model_max_length


def _compel_weight(weight: float) -> float:
    return max(weight, 0.0)  # compel has no negative weights; near 0 it drops the words, its nearest meaning


def _number(weight: float) -> str:
    text = repr(weight)
    return f"{weight:.10f}".rstrip("0").rstrip(".") if "e" in text else text


def _escape(text: str, grouped: bool) -> str:
    """Text that compel's grammar reads back as `text`: brackets and quotes escaped (compel strips those
    escapes); a `+`/`-` ending a word (compel's up/down-weight) and, inside a group, `=` get a backslash that
    compel keeps, as it has no spelling for them."""
    out = []
    for i, ch in enumerate(text):
        after = text[i + 1] if i + 1 < len(text) else " "
        if ch in '()"':
            out.append("\\" + ch)
        elif ch in "+-" and (after.isspace() or after in '()",.+-='):
            out.append("\\" + ch)
        elif ch == "=" and grouped:
            out.append("\\=")
        else:
            out.append(ch)
    if grouped and text.endswith("\\"):
        out.append(" ")  # a trailing backslash would escape the group's closing bracket
    return "".join(out)


def to_compel(text: str) -> str:
    """The A1111 prompt `text` in compel's syntax: each weighted run as `(text)weight`, literal brackets as
    `\\(` `\\)`, BREAK kept as the word `BREAK` between the parts (compel has no BREAK: `encode` splits there).
    `encode` does not go through this string: it hands compel the parsed runs, because compel's grammar has
    no exact spelling for a few characters A1111 treats as text (see `_escape`)."""
    parts = []
    for runs in parse(text):
        rendered, after_group = "", False
        for piece, weight in runs:
            weight = _compel_weight(weight)
            group = weight != 1.0 and bool(piece.strip())
            chunk = f"({_escape(piece, grouped=True)}){_number(weight)}" if group else _escape(piece, grouped=False)
            # A group glued to a word would be read as part of the word, and a digit after `)1.1` as more of
            # the number. CLIP's tokens do not change with the space: A1111 tokenizes each run on its own.
            if (group or after_group) and rendered and not rendered[-1].isspace() and not chunk[:1].isspace():
                rendered += " "
            rendered += chunk
            after_group = group
        parts.append(rendered)
    return " BREAK ".join(parts)


class _Expander:
    """compel's hook for textual inversion: a token loaded with n vectors (`name`, `name_1` ... `name_{n-1}`
    in the tokenizer) stands for all n, as diffusers' `maybe_convert_prompt` makes it for `encode_prompt`."""

    def __init__(self, tokenizer: Any) -> None:
        self.added = dict(tokenizer.added_tokens_encoder)
        self.names = {i: t for t, i in self.added.items()}

    def expand_textual_inversion_token_ids_if_necessary(self, token_ids: list[int]) -> list[int]:
        out: list[int] = []
        for i in token_ids:
            out.append(i)
            name = self.names.get(i)
            n = 1
            while name is not None and f"{name}_{n}" in self.added:
                out.append(self.added[f"{name}_{n}"])
                n += 1
        return out


def _encoders(pipe: Any) -> list[tuple[Any, Any]]:
    if getattr(pipe, "unet", None) is None or getattr(pipe, "text_encoder_3", None) is not None:
        raise ValueError(f"A1111 prompt syntax needs a Stable Diffusion 1.x/2.x/XL pipeline, not {type(pipe).__name__}")
    pairs = [(getattr(pipe, "tokenizer", None), getattr(pipe, "text_encoder", None)),
             (getattr(pipe, "tokenizer_2", None), getattr(pipe, "text_encoder_2", None))]
    pairs = [(tok, te) for tok, te in pairs if tok is not None and te is not None]
    if not pairs:
        raise ValueError(f"{type(pipe).__name__} has no CLIP text encoder")
    return pairs


def _pad(embeds: torch.Tensor, empty: torch.Tensor, length: int) -> torch.Tensor:
    """`embeds` (1, n * window, d) extended with empty-prompt chunks to `length` positions."""
    extra = (length - embeds.shape[1]) // empty.shape[1]
    return torch.cat([embeds] + [empty.to(embeds)] * extra, dim=1) if extra else embeds


@torch.no_grad()
def encode(pipe: Any, prompt: str, negative: str, batch: int) -> dict[str, torch.Tensor]:
    """The keyword arguments to call `pipe` (an SD 1.x/2.x or SDXL diffusers pipeline) with, for `batch`
    images of `prompt` with `negative`, both in A1111's syntax:

    - `prompt_embeds`, `negative_prompt_embeds`: (batch, n * window, d), n chunks (the longer prompt's count),
      d = 768 / 1024 for SD 1.x / 2.x, 2048 for SDXL (both encoders side by side);
    - SDXL only: `pooled_prompt_embeds`, `negative_pooled_prompt_embeds`: (batch, 1280).

    Runs the text encoders where the pipeline runs them (`pipe._execution_device`, CPU offload included) and
    returns tensors in their dtype on that device."""
    from compel import Compel, ReturnedEmbeddingsType, SplitLongTextMode
    from compel.prompt_parser import Conjunction, FlattenedPrompt, Fragment

    pairs = _encoders(pipe)
    xl = hasattr(pipe, "text_encoder_2")  # SDXL's pipelines, refiner included
    kind = (ReturnedEmbeddingsType.PENULTIMATE_HIDDEN_STATES_NON_NORMALIZED if xl
            else ReturnedEmbeddingsType.LAST_HIDDEN_STATES_NORMALIZED)
    device = pipe._execution_device
    dtype = pairs[-1][1].dtype
    compels = [
        Compel(tokenizer=tok, text_encoder=te, textual_inversion_manager=_Expander(tok),  # compel calls only its one method
               truncate_long_prompts=False, returned_embeddings_type=kind,
               split_long_text_mode=SplitLongTextMode.BRUTAL, device=device)
        for tok, te in pairs
    ]

    def embed(compel: Any, text: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(embeddings (1, n * window, d), token ids of the first chunk (1, window)) of `text`."""
        provider = compel.conditioning_provider
        chunks, first = [], None
        parts = parse(text)
        for n, runs in enumerate(parts):
            ids = provider.get_token_ids([r[0] for r in runs], include_start_and_end_markers=False)
            # A run with no tokens (only spaces, say) changes nothing in A1111; compel cannot place it.
            runs = [r for r, i in zip(runs, ids, strict=True) if i]
            if not runs and 0 < n == len(parts) - 1:
                break  # A1111: an empty part after the last BREAK adds no chunk (an empty one before it does)
            runs = runs or [("", 1.0)]
            fragments = []
            for piece, weight in runs:
                fragment = Fragment("", _compel_weight(weight))
                fragment.text = piece  # set after: Fragment() would turn a literal `\(` into `(`
                fragments.append(fragment)
            conjunction = Conjunction([FlattenedPrompt(fragments)])
            embeds, tokens, _ = compel.build_conditioning_tensor_for_conjunction(conjunction, return_tokenization=True)
            chunks.append(embeds)
            if first is None:
                first = tokens.reshape(1, -1)[:, : provider.max_token_count]
        assert first is not None
        return torch.cat(chunks, dim=1), first

    positive = [embed(c, prompt) for c in compels]
    zero_negative = negative == "" and bool(pipe.config.get("force_zeros_for_empty_prompt", False))
    negatives = None if zero_negative else [embed(c, negative) for c in compels]
    length = max(e.shape[1] for e, _ in positive + (negatives or []))
    empties = [c.conditioning_provider.empty_z for c in compels]
    prompt_embeds = torch.cat([_pad(e, z, length) for (e, _), z in zip(positive, empties, strict=True)], dim=-1)
    if negatives is None:  # diffusers' and A1111's SDXL: an empty negative prompt is all zeros
        negative_embeds = torch.zeros_like(prompt_embeds)
    else:
        negative_embeds = torch.cat([_pad(e, z, length) for (e, _), z in zip(negatives, empties, strict=True)],
                                    dim=-1)

    out = {"prompt_embeds": prompt_embeds, "negative_prompt_embeds": negative_embeds}
    if xl:
        encoder = pipe.text_encoder_2

        def pooled(ids: torch.Tensor) -> torch.Tensor:
            # The pooled (projected EOS) output of the first chunk, unweighted, as A1111 takes it. (compel's
            # own `requires_pooled` would encode the raw prompt string, brackets and numbers included.)
            return encoder(ids.to(device), output_hidden_states=False).text_embeds

        out["pooled_prompt_embeds"] = pooled(positive[-1][1])
        out["negative_pooled_prompt_embeds"] = (torch.zeros_like(out["pooled_prompt_embeds"]) if negatives is None
                                                else pooled(negatives[-1][1]))
    return {k: v.to(device=device, dtype=dtype).repeat(batch, *([1] * (v.ndim - 1))) for k, v in out.items()}
