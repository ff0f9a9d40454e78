"""MusicVAE for 2-bar monophonic melodies (Roberts et al. 2018, Magenta's ``cat-mel_2bar``) in PyTorch.

BiLSTM encoder -> (mu, sigma) -> z; an LSTM decoder whose initial state comes from z and whose every
input is [previous token one-hot, z]. `CONFIG_MAP` holds the named presets; a model is a folder with
``config.json`` and ``model.safetensors``. `MelodyVAE` is the user-facing wrapper (sample, encode,
decode, interpolate) working on note lists.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from genstudio.storage.files import atomic_write

from .encoding import MelodyEncoding, Note

FORMAT_VERSION = 1
# Below this temperature `decode_tokens_uniform` takes the argmax: 1 / T would overflow the softmax.
GREEDY_TEMPERATURE = 1e-3


@dataclass(frozen=True)
class MusicVAEConfig:
    """Architecture plus the loss/training hyper-parameters Magenta keeps in the same HParams."""

    min_pitch: int = 21
    max_pitch: int = 108
    max_seq_len: int = 32
    steps_per_quarter: int = 4
    z_size: int = 256
    enc_rnn_size: tuple[int, ...] = (512,)
    dec_rnn_size: tuple[int, ...] = (256, 256)
    # KL term: beta(step) = max_beta * (1 - beta_rate**step); no KL cost below free_bits (bits, per example).
    free_bits: float = 0.0
    max_beta: float = 0.2
    beta_rate: float = 0.99999
    # Scheduled sampling: probability of feeding the model's own sample instead of the true token.
    # "inverse_sigmoid": 1 - k / (k + exp(step / k)) with k = sampling_rate; "constant": sampling_rate.
    sampling_schedule: str = "constant"
    sampling_rate: float = 0.0
    learning_rate: float = 1e-3
    decay_rate: float = 0.9999
    min_learning_rate: float = 1e-5
    batch_size: int = 512
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return MelodyEncoding(self.min_pitch, self.max_pitch).num_classes

    def beta(self, step: int) -> float:
        return self.max_beta * (1.0 - self.beta_rate**step)

    def sampling_probability(self, step: int) -> float:
        if self.sampling_schedule == "constant":
            return float(self.sampling_rate)
        if self.sampling_schedule == "inverse_sigmoid":
            k = self.sampling_rate
            return 1.0 - k / (k + math.exp(min(step / k, 700.0)))
        raise ValueError(f"unknown sampling_schedule {self.sampling_schedule!r}")

    def learning_rate_at(self, step: int) -> float:
        # Magenta: (lr - min_lr) * decay_rate**step + min_lr
        return (self.learning_rate - self.min_learning_rate) * self.decay_rate**step + self.min_learning_rate

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["enc_rnn_size"], d["dec_rnn_size"] = list(self.enc_rnn_size), list(self.dec_rnn_size)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MusicVAEConfig:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        for k in ("enc_rnn_size", "dec_rnn_size"):
            if k in known:
                known[k] = tuple(known[k])
        return cls(**known)


_MAGENTA_SMALL = MusicVAEConfig(
    z_size=256,
    enc_rnn_size=(512,),
    dec_rnn_size=(256, 256),
    free_bits=0.0,
    max_beta=0.2,
    beta_rate=0.99999,
    sampling_schedule="inverse_sigmoid",
    sampling_rate=1000.0,
    batch_size=512,
    description="Magenta's cat-mel_2bar_small hyper-parameters (4.4 M parameters).",
)

CONFIG_MAP: dict[str, MusicVAEConfig] = {
    "cat-mel_2bar_small": _MAGENTA_SMALL,
    "cat-mel_2bar_big": replace(
        _MAGENTA_SMALL,
        z_size=512,
        enc_rnn_size=(2048,),
        dec_rnn_size=(2048, 2048, 2048),
        max_beta=0.5,
        description="Magenta's cat-mel_2bar_big hyper-parameters (GPU-sized).",
    ),
    # What fits hours on one CPU thread: 2.0 M parameters, 0.3-0.5 s a batch-128 step. Free bits let z carry
    # 32 bits before any KL cost; beta ramps up within ~10 k steps; scheduled sampling feeds 1% own samples
    # at 10 k steps, 5% at 15 k, 50% at 24 k.
    "cat-mel_2bar_lite": replace(
        _MAGENTA_SMALL,
        z_size=128,
        enc_rnn_size=(256,),
        dec_rnn_size=(256, 256),
        free_bits=32.0,
        max_beta=0.2,
        beta_rate=0.9997,
        sampling_schedule="inverse_sigmoid",
        sampling_rate=3000.0,
        batch_size=128,
        description="Smaller cat-mel_2bar for CPU training (genstudio's built-in melody model).",
    ),
    "cat-mel_2bar_tiny": replace(
        _MAGENTA_SMALL,
        z_size=8,
        enc_rnn_size=(16,),
        dec_rnn_size=(16, 16),
        sampling_schedule="constant",
        sampling_rate=0.0,
        batch_size=8,
        description="For tests only.",
    ),
}


class ModelFolder:
    """`save_pretrained` (each file written to a temporary name, then renamed) / `from_pretrained` (the model
    comes back in eval mode) for an nn.Module with a `config` (to_dict / from_dict) whose
    folder holds ``config.json`` (with ``_class_name``, which loading checks) and ``model.safetensors``."""

    config_class: Any
    accepts_unnamed = False  # a config.json without `_class_name` (folders written before it was recorded)

    def save_pretrained(self, folder: str | os.PathLike[str]) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        cfg = {"_class_name": type(self).__name__, "format_version": FORMAT_VERSION, **self.config.to_dict()}  # type: ignore[attr-defined]
        tensors = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}  # type: ignore[attr-defined]
        atomic_write(folder / "model.safetensors", lambda tmp: save_file(tensors, tmp))
        atomic_write(folder / "config.json", (json.dumps(cfg, indent=2) + "\n").encode())

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike[str]) -> Any:
        folder = Path(folder)
        cfg = json.loads((folder / "config.json").read_text())
        if cfg.get("_class_name", cls.__name__ if cls.accepts_unnamed else None) != cls.__name__:
            raise ValueError(f"{folder} holds a {cfg.get('_class_name')!r}, not a {cls.__name__}")
        model = cls(cls.config_class.from_dict(cfg))  # type: ignore[call-arg]
        model.load_state_dict(load_file(folder / "model.safetensors"))
        return model.eval()


def _uniform(sizes: Sequence[int], what: str) -> int:
    if not sizes or len(set(sizes)) != 1:
        raise ValueError(f"{what} must be a non-empty list of equal sizes, got {list(sizes)}")
    return int(sizes[0])


class MusicVAE(ModelFolder, nn.Module):
    """The network. B = batch, T = steps (config.max_seq_len), C = num_classes, Z = z_size."""

    config_class = MusicVAEConfig
    accepts_unnamed = True

    def __init__(self, config: MusicVAEConfig) -> None:
        super().__init__()
        self.config = config
        c, z = config.num_classes, config.z_size
        enc = _uniform(config.enc_rnn_size, "enc_rnn_size")
        dec = _uniform(config.dec_rnn_size, "dec_rnn_size")
        self.dec_layers = len(config.dec_rnn_size)
        self.encoder = nn.LSTM(c, enc, num_layers=len(config.enc_rnn_size), batch_first=True, bidirectional=True)
        self.to_mu = nn.Linear(2 * enc, z)
        self.to_sigma = nn.Linear(2 * enc, z)
        self.to_state = nn.Linear(z, 2 * dec * self.dec_layers)
        self.decoder = nn.LSTM(c + z, dec, num_layers=self.dec_layers, batch_first=True)
        self.out = nn.Linear(dec, c)
        # Magenta initialises these projections with N(0, 0.001): z starts near the prior's mean.
        for lin in (self.to_mu, self.to_sigma, self.to_state):
            nn.init.normal_(lin.weight, std=0.001)
            nn.init.zeros_(lin.bias)

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    def encode(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """tokens [B, T] int -> mu [B, Z], sigma [B, Z] (softplus, as in Magenta)."""
        x = F.one_hot(tokens.long(), self.num_classes).float()
        _, (h, _) = self.encoder(x)
        final = torch.cat([h[-2], h[-1]], dim=-1)  # top layer: forward and backward final states
        return self.to_mu(final), F.softplus(self.to_sigma(final))

    def initial_state(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z [B, Z] -> (h, c), each [layers, B, H]."""
        s = torch.tanh(self.to_state(z)).view(z.shape[0], self.dec_layers, 2, -1)
        return s[:, :, 0].transpose(0, 1).contiguous(), s[:, :, 1].transpose(0, 1).contiguous()

    def decoder_inputs(self, tokens: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Shifted one-hot targets (zeros at step 0) with z appended: [B, T, C + Z]."""
        prev = F.one_hot(tokens.long(), self.num_classes).float()
        prev = torch.cat([torch.zeros_like(prev[:, :1]), prev[:, :-1]], dim=1)
        return torch.cat([prev, z.unsqueeze(1).expand(-1, tokens.shape[1], -1)], dim=-1)

    def decode_teacher_forced(
        self,
        tokens: torch.Tensor,
        z: torch.Tensor,
        sampling_probability: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Logits [B, T, C] for target tokens [B, T] given z [B, Z].

        With `sampling_probability` > 0 (scheduled sampling), each step's input is, with that
        probability, a token sampled from the previous step's output instead of the true one; that path
        steps the LSTM from Python and costs about twice as much.
        """
        state = self.initial_state(z)
        if sampling_probability <= 0.0:
            out, _ = self.decoder(self.decoder_inputs(tokens, z), state)
            return self.out(out)
        b, t = tokens.shape
        prev = torch.zeros(b, self.num_classes, device=z.device)
        logits = []
        for i in range(t):
            out, state = self.decoder(torch.cat([prev, z], dim=-1).unsqueeze(1), state)
            step_logits = self.out(out[:, 0])
            logits.append(step_logits)
            true = tokens[:, i].long()
            with torch.no_grad():
                sampled = torch.multinomial(F.softmax(step_logits, -1), 1, generator=generator)[:, 0]
                use = torch.rand(b, generator=generator, device=z.device) < sampling_probability
            prev = F.one_hot(torch.where(use, sampled, true), self.num_classes).float()
        return torch.stack(logits, dim=1)

    def forward(
        self,
        tokens: torch.Tensor,
        sampling_probability: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """tokens [B, T] -> logits [B, T, C], mu/sigma/z [B, Z] (z drawn from the posterior)."""
        mu, sigma = self.encode(tokens)
        eps = torch.randn(mu.shape, generator=generator, device=mu.device)
        z = mu + sigma * eps
        logits = self.decode_teacher_forced(tokens, z, sampling_probability, generator)
        return {"logits": logits, "mu": mu, "sigma": sigma, "z": z}

    def loss(self, tokens: torch.Tensor, out: dict[str, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        """Magenta's MusicVAE loss: mean over the batch of [sum over steps of cross-entropy] +
        beta(step) * mean of max(KL - free_nats, 0); KL in nats against N(0, I), summed over Z."""
        logits, mu, sigma = out["logits"], out["mu"], out["sigma"]
        ce = F.cross_entropy(logits.transpose(1, 2), tokens.long(), reduction="none")  # [B, T]
        r_loss = ce.sum(dim=1)
        kl = 0.5 * (sigma.square() + mu.square() - 1.0 - 2.0 * torch.log(sigma + 1e-12)).sum(dim=1)  # [B]
        free_nats = self.config.free_bits * math.log(2.0)
        kl_cost = torch.clamp(kl - free_nats, min=0.0)
        beta = self.config.beta(step)
        loss = r_loss.mean() + beta * kl_cost.mean()
        acc = (logits.argmax(-1) == tokens).float().mean()
        return {
            "loss": loss,
            "r_loss": r_loss.mean(),
            "kl_bits": kl.mean() / math.log(2.0),
            "beta": torch.tensor(beta),
            "accuracy": acc,
        }

    @torch.no_grad()
    def decode_tokens(
        self,
        z: torch.Tensor,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        num_steps: int | None = None,
    ) -> torch.Tensor:
        """z [B, Z] -> tokens [B, T], sampled autoregressively at `temperature` (0 = argmax)."""
        steps = num_steps or self.config.max_seq_len
        state = self.initial_state(z)
        prev = torch.zeros(z.shape[0], self.num_classes, device=z.device)
        tokens = []
        for _ in range(steps):
            out, state = self.decoder(torch.cat([prev, z], dim=-1).unsqueeze(1), state)
            logits = self.out(out[:, 0])
            if temperature <= 0:
                tok = logits.argmax(-1)
            else:
                tok = torch.multinomial(F.softmax(logits / temperature, -1), 1, generator=generator)[:, 0]
            tokens.append(tok)
            prev = F.one_hot(tok, self.num_classes).float()
        return torch.stack(tokens, dim=1)

    @torch.no_grad()
    def decode_tokens_uniform(
        self, z: torch.Tensor, temperature: float | torch.Tensor, u: torch.Tensor
    ) -> torch.Tensor:
        """z [B, Z], uniforms u [B, T] in [0, 1) -> tokens [B, T], sampled autoregressively.

        Every random choice comes from `u` (inverse CDF on softmax(logits / temperature)), so torch and the
        exported ONNX graph (`onnx_export`) give the same tokens for the same inputs. A temperature below
        `GREEDY_TEMPERATURE` (0 included) takes the argmax. The LSTM is stepped by hand, with the z part of
        the first layer's input projected once and the previous token's part gathered: the same maths as
        `self.decoder`, written so that the traced graph shares one copy of each weight.
        """
        if z.dim() != 2 or z.shape[1] != self.config.z_size:
            raise ValueError(f"z must be [batch, {self.config.z_size}], got {list(z.shape)}")
        if u.dim() != 2 or u.shape[0] != z.shape[0]:
            raise ValueError(f"u must be [batch={z.shape[0]}, steps], got {list(u.shape)}")
        t = torch.as_tensor(temperature, dtype=z.dtype)
        if not torch.jit.is_tracing():
            if t.dim() != 0 or not torch.isfinite(t):
                raise ValueError(f"temperature must be a finite number, got {temperature!r}")
            if u.numel() and (u.min() < 0 or u.max() >= 1):
                raise ValueError("u must lie in [0, 1)")
        greedy = ~(t >= GREEDY_TEMPERATURE)  # written so that a NaN reaching the exported graph is greedy
        inv_t = 1.0 / torch.where(greedy, torch.ones_like(t), t)
        c = self.num_classes
        h, cell = (list(s.unbind(0)) for s in self.initial_state(z))
        w = [
            (getattr(self.decoder, f"weight_ih_l{i}"), getattr(self.decoder, f"weight_hh_l{i}"))
            for i in range(self.dec_layers)
        ]
        b = [
            getattr(self.decoder, f"bias_ih_l{i}") + getattr(self.decoder, f"bias_hh_l{i}")
            for i in range(self.dec_layers)
        ]
        z_in = z @ w[0][0][:, c:].t() + b[0]  # [B, 4H]: the z half of layer 0's input, fixed over steps
        tok_in = w[0][0][:, :c].t()  # [C, 4H]: a one-hot input selects a row
        tokens = []
        for step in range(u.shape[1]):
            x = z_in if step == 0 else z_in + tok_in[tokens[-1]]
            for layer in range(self.dec_layers):
                if layer > 0:
                    x = h[layer - 1] @ w[layer][0].t() + b[layer]
                gates = x + h[layer] @ w[layer][1].t()
                i_g, f_g, g_g, o_g = gates.chunk(4, dim=-1)  # PyTorch's gate order
                cell[layer] = torch.sigmoid(f_g) * cell[layer] + torch.sigmoid(i_g) * torch.tanh(g_g)
                h[layer] = torch.sigmoid(o_g) * torch.tanh(cell[layer])
            logits = self.out(h[-1])
            cdf = torch.cumsum(torch.softmax(logits * inv_t, dim=-1), dim=-1)
            # The first class whose CDF passes u * total (scaled, so rounding never runs past the last class).
            sampled = (cdf <= u[:, step : step + 1] * cdf[:, -1:]).sum(-1).clamp(max=c - 1)
            tokens.append(torch.where(greedy, logits.argmax(-1), sampled))
        return torch.stack(tokens, dim=1) if tokens else torch.zeros(z.shape[0], 0, dtype=torch.long)


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation between vectors a, b [..., Z] at t in [0, 1] (linear if nearly parallel)."""
    a_n = a / a.norm(dim=-1, keepdim=True)
    b_n = b / b.norm(dim=-1, keepdim=True)
    cos = (a_n * b_n).sum(-1, keepdim=True).clamp(-1.0, 1.0)
    omega = torch.arccos(cos)
    so = torch.sin(omega)
    lin = (1 - t) * a + t * b
    sph = torch.sin((1 - t) * omega) / so * a + torch.sin(t * omega) / so * b
    return torch.where(so.abs() < 1e-6, lin, sph)


Melody = list[Note]


class MelodyVAE:
    """User-facing wrapper: melodies are lists of `Note` on the 16th grid, max_seq_len steps long."""

    def __init__(self, model: MusicVAE) -> None:
        self.model = model.eval()
        self.encoding = MelodyEncoding(model.config.min_pitch, model.config.max_pitch)

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike[str]) -> MelodyVAE:
        return cls(MusicVAE.from_pretrained(folder))

    def save_pretrained(self, folder: str | os.PathLike[str]) -> None:
        self.model.save_pretrained(folder)

    @property
    def num_steps(self) -> int:
        return self.model.config.max_seq_len

    def tokens(self, melodies: Sequence[Melody]) -> torch.Tensor:
        """Melodies -> tokens [N, T]; notes beyond the window are clipped."""
        return torch.from_numpy(np.stack([self.encoding.encode(m, self.num_steps) for m in melodies]))

    def melodies(self, tokens: torch.Tensor) -> list[Melody]:
        return [self.encoding.decode(row) for row in tokens.cpu().numpy()]

    @torch.no_grad()
    def encode(self, melodies: Sequence[Melody]) -> torch.Tensor:
        """Melodies -> posterior means mu [N, Z] (deterministic; Magenta's encode also returns sigma)."""
        mu, _ = self.model.encode(self.tokens(melodies))
        return mu

    @torch.no_grad()
    def decode(self, z: torch.Tensor, temperature: float = 0.5, seed: int | None = None) -> list[Melody]:
        """z [N, Z] -> N melodies sampled at `temperature` (0 = greedy, fully deterministic)."""
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        return self.melodies(self.model.decode_tokens(z, temperature, gen))

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 0.5, seed: int | None = None) -> list[Melody]:
        """N new melodies: z ~ N(0, I) [N, Z], then `decode`. The same seed gives the same melodies."""
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        z = torch.randn(n, self.model.config.z_size, generator=gen)
        return self.melodies(self.model.decode_tokens(z, temperature, gen))

    @torch.no_grad()
    def interpolate(
        self, a: Melody, b: Melody, steps: int, temperature: float = 0.0, seed: int | None = None
    ) -> list[Melody]:
        """`steps` melodies along the slerp from mu(a) to mu(b), endpoints included: z [steps, Z]."""
        if steps < 2:
            raise ValueError("steps must be at least 2")
        mu = self.encode([a, b])
        z = torch.stack([slerp(mu[0], mu[1], i / (steps - 1)) for i in range(steps)])
        return self.decode(z, temperature, seed)
