"""Prompts written in AUTOMATIC1111's syntax turned into the embeddings a diffusers Stable Diffusion pipeline
takes (SD 1.x / 2.x: one CLIP encoder; SDXL: two, plus pooled embeddings), with compel doing the encoding.

The syntax, as A1111 reads it (its behaviour, checked against the examples in its documentation; the
scanner is our own code):

- `(words)` multiplies the weight of `words` by 1.1, `((words))` by 1.21, `(words:1.3)` by 1.3 (a space is
  allowed around the number: `(words : 1.3)`), `[words]` divides it by 1.1; brackets nest and multiply.
- `\\(`, `\\)`, `\\[`, `\\]` and `\\\\` are the literal characters; any other `:`, or a closing bracket with no
  opening one, is plain text. A bracket left open weights everything after it (`(unbalanced` is 1.1).
- `BREAK` (upper case, a word of its own) ends the current 75-token chunk: the text after it starts a new one
  (a leading BREAK gives an empty first chunk, a trailing one adds nothing, as in A1111).
- A prompt longer than the encoder's window (77 tokens: BOS + 75 + EOS) is split into 75-token chunks, each
  wrapped in BOS/EOS and encoded on its own; the chunks' embeddings are concatenated along the sequence
  (2 chunks = 154 positions). The window comes from the tokenizer (`model_max_length`), not a fixed 77.
  The negative prompt is padded with empty-prompt chunks to the positive's length, or the other way round.
- Textual-inversion tokens (`easynegative`, `my-style`) are plain text to the parser and reach the tokenizer
  untouched; multi-vector ones are expanded to all their vectors as diffusers' own `encode_prompt` does.
- Prompt editing `[from:to:when]`, alternation `[a|b]` and `AND` are step-schedule / composable-diffusion
  features, not embeddings: they are not interpreted (their text goes through the rules above).

What matches A1111 exactly: the parser (A1111's documented examples are among our tests), the weight each
token gets, BREAK, chunks of 75 tokens each wrapped in BOS/EOS and concatenated, padding with the tokenizer's
pad token (EOS for SD 1.x, `!` for SD 2.x and SDXL's second encoder), hidden states per family (SD 1.x/2.x
last layer, normalised; SDXL the penultimate layer of both encoders, not normalised), SDXL's pooled embedding
taken from the first chunk with the weights left out, and an empty negative prompt on SDXL being all zeros. A
plain prompt (no syntax, within the window) gives what the pipeline's own `encode_prompt` gives.

What differs from A1111:

- How a weight acts: compel's rule, not A1111's ("Original" emphasis). A1111 multiplies each token's
  embedding by its weight, then rescales the whole tensor so that its mean is what it was before. compel
  scales the token's offset from the empty prompt's embedding at that position, `empty + (z - empty) * w`
  (ComfyUI's default rule too), so an up-weight changes only the weighted tokens and restores no mean; for
  a weight below 1 it also mixes in the prompt encoded with those words masked out, which moves the tokens
  after them a little as well, and `(word:0)` removes the word rather than zeroing its vector. A weight
  below 0 (A1111 flips the vector) is taken as 0. The same numbers do not give exactly A1111's strength.
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

_WEIGHT_CLOSE = re.compile(r":\s*([+-]?[.\d]+)\s*\)")  # `:1.3)` closing a weighted group
_PLAIN = re.compile(r"[^\\()\[\]:]+")  # text up to the next character with a meaning
_BREAK = re.compile(r"\s*\bBREAK\b\s*", re.S)
_FACTOR = {"(": 1.1, "[": 1 / 1.1}  # a group's weight when it gives no number
_ESCAPABLE = "()[]\\"


def parse(text: str) -> list[list[Run]]:
    """The prompt as A1111 reads it, split at BREAK: one list of (text, weight) runs per BREAK-separated
    part, neighbouring runs of equal weight merged, empty runs left out (a part with no text is
    `[("", 1.0)]`). A scanner of our own over the syntax described above."""
    pieces: list[list[Any]] = []  # [text, weight, starts a new part]
    open_at: dict[str, list[int]] = {"(": [], "[": []}  # where each open group's text starts in `pieces`

    def close(bracket: str, factor: float) -> None:
        for piece in pieces[open_at[bracket].pop():]:
            piece[1] *= factor

    def text_run(chunk: str) -> None:
        for n, part in enumerate(_BREAK.split(chunk)):
            if n:
                pieces.append(["", 1.0, True])
            pieces.append([part, 1.0, False])

    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":  # an escaped bracket or backslash is that character; a lone backslash is dropped
            nxt = text[i + 1:i + 2]
            if nxt and nxt in _ESCAPABLE:
                pieces.append([nxt, 1.0, False])
                i += 1
            i += 1
        elif ch in "([":
            open_at[ch].append(len(pieces))
            i += 1
        elif ch == ":" and (m := _WEIGHT_CLOSE.match(text, i)):
            if open_at["("]:
                try:
                    close("(", float(m.group(1)))
                except ValueError:  # "1.2.3": A1111 raises; taken as 1.0
                    close("(", 1.0)
            else:
                text_run(m.group(0))
            i = m.end()
        elif ch in ")]":
            opener = "(" if ch == ")" else "["
            if open_at[opener]:
                close(opener, _FACTOR[opener])
            else:
                text_run(ch)
            i += 1
        elif ch == ":":
            text_run(ch)
            i += 1
        else:
            m = _PLAIN.match(text, i)
            assert m is not None
            text_run(m.group(0))
            i = m.end()
    for opener, starts in open_at.items():  # groups never closed weigh what they would have when closed
        while starts:
            close(opener, _FACTOR[opener])

    parts: list[list[Run]] = [[]]
    for piece, weight, new_part in pieces:
        if new_part:
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


# Words that compel reads as an operator or a LoRA call when a bracket follows them, even after a space.
_OPERATOR = re.compile(r"(\.(swap|blend|and|add|attend)|withLora|useLora)\s*$")


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
    """The A1111 prompt `text` in compel's syntax: each weighted run as `(text)weight` (`"text"weight` right
    after a word compel takes for an operator, like `x.swap`), literal brackets and quotes as `\\(` `\\)`
    `\\"`, BREAK kept as the word `BREAK` between the parts (compel has no BREAK: `encode` splits there).
    `encode` does not go through this string: it hands compel the parsed runs, because compel's grammar has
    no exact spelling for a few characters A1111 treats as text (see `_escape`)."""
    parts = []
    for runs in parse(text):
        rendered, after_group = "", False
        for piece, weight in runs:
            weight = _compel_weight(weight)
            group = weight != 1.0 and bool(piece.strip())
            if not group:
                chunk = _escape(piece, grouped=False)
            elif _OPERATOR.search(rendered):  # `x.swap (y)1.1` would be compel's swap: quote the group
                chunk = f'"{_escape(piece, grouped=True)}"{_number(weight)}'
            else:
                chunk = f"({_escape(piece, grouped=True)}){_number(weight)}"
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
        Compel(tokenizer=tok, text_encoder=te, textual_inversion_manager=_Expander(tok),
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
