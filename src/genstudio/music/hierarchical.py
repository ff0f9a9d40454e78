"""A hierarchical MusicVAE for long melodies (Roberts et al. 2018, `hierdec-mel_16bar`), built on the
2-bar model.

    16-bar tokens [B, 256] --split--> 8 segments of 2 bars [B*8, 32]
      bar encoder (the 2-bar model's BiLSTM) -> segment codes [B, 8, Zb]
      top encoder (BiLSTM over the 8 codes)   -> mu, sigma [B, Z]  -> z
    z -> conductor (LSTM, initial state from z, one step per segment) -> embeddings c [B, 8, Zb]
      bar decoder (the 2-bar model's LSTM decoder, c in place of its z) -> tokens of each segment

As in MusicVAE's hierarchical decoder, the conductor plans the piece and each bar-level decoder writes
its segment from the conductor's embedding only; unlike Magenta's, the segment level is 2 bars (the
built-in melody model's window) and both bar-level halves start from the trained 2-bar model (its encoder
frozen, its decoder fine-tuned), which is what makes training it on one CPU thread possible. The bar
decoder does not see the previous segment's last token (the 2-bar decoder never did); a note held over a
segment line is a "no event" at the next segment's start, which the fine-tuned decoder learns.

A model is a folder with ``config.json`` (`_class_name: HierarchicalMusicVAE`, the bar model's config
inside) and ``model.safetensors`` holding both levels.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from .encoding import MelodyEncoding, Note
from .model import ModelFolder, MusicVAE, MusicVAEConfig


@dataclass(frozen=True)
class HierConfig:
    bar: MusicVAEConfig = field(default_factory=MusicVAEConfig)
    segments: int = 8  # 2-bar segments: 16 bars
    # Segments planned in one pass when sampling and continuing (0: `segments`); longer pieces go on in
    # blocks, each fitted to the previous half block. Set to 4 (8 bars) for a model whose 16-bar plans do
    # not generalise (see the model card).
    block_segments: int = 0
    z_size: int = 256
    top_enc_size: int = 256
    conductor_size: int = 256
    conductor_layers: int = 2
    free_bits: float = 256.0
    max_beta: float = 0.2
    beta_rate: float = 0.9995
    learning_rate: float = 1e-3
    bar_learning_rate: float = 2e-4
    # Pulls the conductor's embeddings towards the bar encoder's codes of the same segments (squared error
    # in units of the bar posterior's sigma, summed: only the ~20 dimensions the bar model uses count):
    # keeps them in the space the bar encoder writes, so that a melody to continue can be matched against
    # them (`fit_codes`), and is a cheap training signal for the conductor.
    code_weight: float = 0.05
    min_code_sigma: float = 0.05
    description: str = ""

    @property
    def seg_steps(self) -> int:
        return self.bar.max_seq_len

    @property
    def num_steps(self) -> int:
        return self.segments * self.seg_steps

    def beta(self, step: int) -> float:
        return self.max_beta * (1.0 - self.beta_rate**step)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["bar"] = self.bar.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> HierConfig:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        known["bar"] = MusicVAEConfig.from_dict(known.get("bar", {}))
        return cls(**known)


class HierarchicalMusicVAE(ModelFolder, nn.Module):
    config_class = HierConfig

    def __init__(self, config: HierConfig, bar: MusicVAE | None = None) -> None:
        super().__init__()
        self.config = config
        self.bar = bar if bar is not None else MusicVAE(config.bar)
        zb, z = config.bar.z_size, config.z_size
        self.top_encoder = nn.LSTM(zb, config.top_enc_size, batch_first=True, bidirectional=True)
        self.to_mu = nn.Linear(2 * config.top_enc_size, z)
        self.to_sigma = nn.Linear(2 * config.top_enc_size, z)
        self.to_state = nn.Linear(z, 2 * config.conductor_size * config.conductor_layers)
        self.conductor = nn.LSTM(z, config.conductor_size, num_layers=config.conductor_layers, batch_first=True)
        self.to_code = nn.Linear(config.conductor_size, zb)
        for lin in (self.to_mu, self.to_sigma, self.to_state):
            nn.init.normal_(lin.weight, std=0.001)
            nn.init.zeros_(lin.bias)

    @property
    def num_classes(self) -> int:
        return self.bar.num_classes

    def split(self, tokens: torch.Tensor) -> torch.Tensor:
        """[B, S * 32] -> [B * S, 32] (any whole number S of segments: 8-bar and 16-bar windows alike)."""
        return tokens.reshape(-1, self.config.seg_steps)

    def segment_codes(self, tokens: torch.Tensor) -> torch.Tensor:
        """The bar encoder's posterior means of each 2-bar segment: [B, S, Zb] (no gradient: frozen)."""
        return self.segment_posteriors(tokens)[0]

    def segment_posteriors(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The bar encoder's mu and sigma of each 2-bar segment: [B, S, Zb] each (no gradient: frozen)."""
        with torch.no_grad():
            mu, sigma = self.bar.encode(self.split(tokens))
        shape = (tokens.shape[0], -1, mu.shape[-1])
        return mu.view(shape), sigma.view(shape)

    def code_error(self, codes: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """Squared distance of embeddings from the bar posteriors in units of sigma, summed per piece: [B]."""
        return ((codes - mu) / sigma.clamp(min=self.config.min_code_sigma)).square().sum((1, 2))

    def encode(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _, (h, _) = self.top_encoder(self.segment_codes(tokens))
        final = torch.cat([h[-2], h[-1]], dim=-1)
        return self.to_mu(final), F.softplus(self.to_sigma(final))

    def conduct(self, z: torch.Tensor, segments: int | None = None) -> torch.Tensor:
        """z [B, Z] -> segment embeddings [B, S, Zb] (the conductor's input is z at every step)."""
        s = segments or self.config.segments
        layers, size = self.config.conductor_layers, self.config.conductor_size
        st = torch.tanh(self.to_state(z)).view(z.shape[0], layers, 2, size)
        state = (st[:, :, 0].transpose(0, 1).contiguous(), st[:, :, 1].transpose(0, 1).contiguous())
        out, _ = self.conductor(z.unsqueeze(1).expand(-1, s, -1).contiguous(), state)
        return self.to_code(out)

    def forward(self, tokens: torch.Tensor, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        mu, sigma = self.encode(tokens)
        z = mu + sigma * torch.randn(mu.shape, generator=generator)
        codes = self.conduct(z, tokens.shape[1] // self.config.seg_steps)
        logits = self.bar.decode_teacher_forced(self.split(tokens), codes.reshape(-1, codes.shape[-1]))
        return {
            "logits": logits.view(tokens.shape[0], -1, self.num_classes),
            "mu": mu,
            "sigma": sigma,
            "codes": codes,
            "targets": self.segment_posteriors(tokens),
        }

    def loss(self, tokens: torch.Tensor, out: dict[str, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        logits, mu, sigma = out["logits"], out["mu"], out["sigma"]
        ce = F.cross_entropy(logits.transpose(1, 2), tokens.long(), reduction="none").sum(1)
        kl = 0.5 * (sigma.square() + mu.square() - 1.0 - 2.0 * torch.log(sigma + 1e-12)).sum(1)
        kl_cost = torch.clamp(kl - self.config.free_bits * math.log(2.0), min=0.0)
        beta = self.config.beta(step)
        code_err = self.code_error(out["codes"], *out["targets"])
        return {
            "loss": ce.mean() + beta * kl_cost.mean() + self.config.code_weight * code_err.mean(),
            "code_err": code_err.mean(),
            "r_loss": ce.mean(),
            "kl_bits": kl.mean() / math.log(2.0),
            "accuracy": (logits.argmax(-1) == tokens).float().mean(),
        }

    @torch.no_grad()
    def decode_codes(
        self, codes: torch.Tensor, temperature: float, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Segment embeddings [B, S, Zb] -> tokens [B, S * 32], each segment sampled by the bar decoder."""
        b, s, zb = codes.shape
        tok = self.bar.decode_tokens(codes.reshape(b * s, zb), temperature, generator)
        return tok.view(b, s * self.config.seg_steps)


Melody = list[Note]


PRIOR_FILE = "prior.safetensors"


class LongMelodyVAE:
    """User-facing wrapper of the hierarchical model: sample and continue melodies on the 16th grid.

    New pieces draw z from the model's *fitted prior* when the folder has one (``prior.safetensors``: the
    mean and Cholesky factor of a Gaussian fitted to the posterior means of the training windows, made by
    `training/music/fit_prior.py`), else from N(0, I). A VAE trained with a high KL (as this one must be,
    to reconstruct 8 to 16 bars) has posterior means spread far less than the unit prior; z from N(0, I)
    then lands where the conductor never learned to plan (the two-stage VAE's observation, Dai & Wipf 2019).
    """

    def __init__(self, model: HierarchicalMusicVAE, prior: dict[str, torch.Tensor] | None = None) -> None:
        self.model = model.eval()
        cfg = model.config.bar
        self.encoding = MelodyEncoding(cfg.min_pitch, cfg.max_pitch)
        z = model.config.z_size
        self.prior_mean = prior["mean"] if prior else torch.zeros(z)
        self.prior_tril = prior["scale_tril"] if prior else torch.eye(z)
        if self.prior_mean.shape != (z,) or self.prior_tril.shape != (z, z):
            raise ValueError(f"{PRIOR_FILE} does not fit a z of {z} dimensions")

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike[str]) -> LongMelodyVAE:
        folder = Path(folder)
        prior = load_file(folder / PRIOR_FILE) if (folder / PRIOR_FILE).is_file() else None
        return cls(HierarchicalMusicVAE.from_pretrained(folder), prior)

    def prior_sample(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        eps = torch.randn(n, self.model.config.z_size, generator=generator)
        return self.prior_mean + eps @ self.prior_tril.T

    def prior_penalty(self, z: torch.Tensor) -> torch.Tensor:
        """-log p(z) up to a constant, per row: half the squared Mahalanobis distance under the prior."""
        white = torch.linalg.solve_triangular(self.prior_tril, (z - self.prior_mean).T, upper=False).T
        return 0.5 * white.square().sum(1)

    @property
    def seg_steps(self) -> int:
        return self.model.config.seg_steps

    @property
    def segments(self) -> int:
        return self.model.config.segments

    @property
    def block(self) -> int:
        """Segments planned in one pass (see HierConfig.block_segments)."""
        return self.model.config.block_segments or self.model.config.segments

    def melodies(self, tokens: torch.Tensor) -> list[Melody]:
        return [self.encoding.decode(row) for row in tokens.cpu().numpy()]

    def tokens(self, melodies: Sequence[Melody], steps: int) -> torch.Tensor:
        return torch.from_numpy(np.stack([self.encoding.encode(m, steps) for m in melodies]).astype(np.int64))

    @torch.no_grad()
    def sample_codes(self, n: int, segments: int, generator: torch.Generator | None) -> torch.Tensor:
        return self.model.conduct(self.prior_sample(n, generator), segments)

    @torch.no_grad()
    def sample(
        self, n: int, segments: int | None = None, temperature: float = 0.5, seed: int | None = None
    ) -> list[Melody]:
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        codes = self.long_codes(n, segments or self.segments, gen)
        return self.melodies(self.model.decode_codes(codes, temperature, gen))

    def fit_codes(
        self,
        given: torch.Tensor,
        total: int,
        generator: torch.Generator | None,
        iterations: int = 150,
        sigma: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Codes [N, total, Zb] whose first k segments match `given` [N, k, Zb] (codes of the melody to
        continue, from the bar encoder): one z per row, from a random start, fitted by gradient descent so
        that the conductor's first k embeddings come near `given` (squared error) while z stays likely
        under the prior; the conductor then plans the remaining segments from that z. With `sigma` (the bar
        posteriors' sigmas, [N, k, Zb]) the distance is in units of sigma, as in training."""
        given = given.detach()
        k = given.shape[1]
        scale = torch.ones_like(given) if sigma is None else sigma.detach().clamp(min=self.model.config.min_code_sigma)
        z = self.prior_sample(given.shape[0], generator).requires_grad_(True)
        opt = torch.optim.Adam([z], lr=0.05)
        with torch.enable_grad():
            for _ in range(iterations):
                codes = self.model.conduct(z, k)
                loss = (((codes - given) / scale).square().sum((1, 2)) + self.prior_penalty(z)).sum()
                opt.zero_grad()
                loss.backward()
                opt.step()
        with torch.no_grad():
            return self.model.conduct(z.detach(), total)

    @torch.no_grad()
    def long_codes(self, n: int, segments: int, generator: torch.Generator | None) -> torch.Tensor:
        """Codes [n, segments, Zb] of new pieces: the first (up to 16 bars) from the prior; longer pieces go
        on in blocks, each conditioned on the previous half block as `continue_codes` does."""
        block = self.block
        codes = self.sample_codes(n, min(segments, block), generator)
        while codes.shape[1] < segments:
            k = min(block // 2, codes.shape[1])
            new = min(block - k, segments - codes.shape[1])
            codes = torch.cat([codes, self.fit_codes(codes[:, -k:], k + new, generator)[:, k:]], dim=1)
        return codes

    @torch.no_grad()
    def continue_codes(
        self, melody: Melody, given_segments: int, new_segments: int, n: int, generator: torch.Generator | None
    ) -> torch.Tensor:
        """Codes [n, new_segments, Zb] that go on from the last `given_segments` 2-bar segments of
        `melody` (a note list starting at 0, `given_segments` * 2 bars long)."""
        toks = self.tokens([melody], given_segments * self.seg_steps).view(given_segments, self.seg_steps)
        given, given_sigma = self.model.bar.encode(toks)
        codes = given.unsqueeze(0).expand(n, -1, -1)
        sigmas = given_sigma.unsqueeze(0).expand(n, -1, -1)
        block = self.block
        out = []
        made = 0
        while made < new_segments:
            k = min(block // 2, codes.shape[1])
            new = min(block - k, new_segments - made)
            more = self.fit_codes(codes[:, -k:], k + new, generator, sigma=sigmas[:, -k:])[:, k:]
            out.append(more)
            codes = torch.cat([codes, more], dim=1)
            # The model's own segments are as certain as the bar posteriors it was trained to match.
            sigmas = torch.cat([sigmas, sigmas.mean(1, keepdim=True).expand(-1, new, -1)], dim=1)
            made += new
        return torch.cat(out, dim=1)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor, temperature: float, generator: torch.Generator | None) -> list[Melody]:
        """Codes [N, S, Zb] -> N melodies of S * 2 bars (the segments' tokens read as one stream)."""
        return self.melodies(self.model.decode_codes(codes, temperature, generator))
