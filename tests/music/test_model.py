"""MusicVAE: shapes, loss, save/load, seeded sampling, interpolation and slerp, on the tiny preset."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from genstudio.music.encoding import Note
from genstudio.music.model import CONFIG_MAP, MelodyVAE, MusicVAE, MusicVAEConfig, slerp

TINY = CONFIG_MAP["cat-mel_2bar_tiny"]


def tiny_model(seed: int = 0) -> MusicVAE:
    torch.manual_seed(seed)
    return MusicVAE(TINY).eval()


def melody(shift: int) -> list[Note]:
    return [Note(60 + shift, 0, 4), Note(64 + shift, 4, 8), Note(67 + shift, 8, 12), Note(72 + shift, 16, 30)]


def random_tokens(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, TINY.num_classes, (n, TINY.max_seq_len), generator=g)


def test_magenta_small_preset_size() -> None:
    n = sum(p.numel() for p in MusicVAE(CONFIG_MAP["cat-mel_2bar_small"]).parameters())
    assert 4.3e6 < n < 4.6e6  # Magenta's cat-mel_2bar_small is ~4.4 M parameters


def test_forward_shapes_and_loss_terms() -> None:
    model = tiny_model()
    x = random_tokens(5)
    out = model(x)
    assert out["logits"].shape == (5, 32, 90)
    assert out["mu"].shape == out["sigma"].shape == out["z"].shape == (5, 8)
    assert (out["sigma"] > 0).all()
    terms = model.loss(x, out, step=0)
    assert terms["beta"].item() == 0.0  # beta anneals from 0
    assert torch.isfinite(terms["loss"]) and terms["loss"].item() == pytest.approx(terms["r_loss"].item())
    sampled = model(x, sampling_probability=0.5, generator=torch.Generator().manual_seed(0))
    assert sampled["logits"].shape == (5, 32, 90)


def test_teacher_forced_paths_agree() -> None:
    """The fast (whole-sequence) and the stepwise path give the same logits when nothing is sampled."""
    model = tiny_model()
    x = random_tokens(3)
    z = torch.randn(3, TINY.z_size)
    fast = model.decode_teacher_forced(x, z)
    slow = model.decode_teacher_forced(x, z, sampling_probability=1e-9)
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-5)


def test_free_bits_and_beta() -> None:
    cfg = MusicVAEConfig(max_beta=0.5, beta_rate=0.99, free_bits=4.0, z_size=2, enc_rnn_size=(4,), dec_rnn_size=(4,))
    assert cfg.beta(0) == 0.0 and cfg.beta(10**6) == pytest.approx(0.5)
    model = MusicVAE(cfg)
    x = torch.zeros(1, 32, dtype=torch.long)
    logits = torch.zeros(1, 32, cfg.num_classes)
    mu = torch.tensor([[3.0, 0.0]])  # KL = 4.5 nats = 6.49 bits, 2.49 above the free bits
    out = {"logits": logits, "mu": mu, "sigma": torch.ones(1, 2)}
    terms = model.loss(x, out, step=10**6)
    assert terms["kl_bits"].item() == pytest.approx(4.5 / math.log(2))
    assert terms["loss"].item() - terms["r_loss"].item() == pytest.approx(0.5 * (4.5 - 4 * math.log(2)), rel=1e-5)


def test_loss_decreases_on_tiny_batch() -> None:
    torch.manual_seed(0)
    model = MusicVAE(TINY).train()
    x = random_tokens(8)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    first = None
    for step in range(60):
        terms = model.loss(x, model(x, generator=g), step)
        opt.zero_grad()
        terms["loss"].backward()
        opt.step()
        first = first if first is not None else terms["r_loss"].item()
    assert terms["r_loss"].item() < 0.7 * first


def test_save_load_round_trip(tmp_path) -> None:  # noqa: ANN001
    model = tiny_model()
    model.save_pretrained(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "model.safetensors"]
    loaded = MusicVAE.from_pretrained(tmp_path / "m")
    assert loaded.config == model.config
    x = random_tokens(4)
    torch.testing.assert_close(loaded.encode(x), model.encode(x), rtol=0, atol=0)
    z = torch.randn(4, TINY.z_size)
    a = model.decode_tokens(z, 1.0, torch.Generator().manual_seed(3))
    b = loaded.decode_tokens(z, 1.0, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_from_pretrained_refuses_other_classes(tmp_path) -> None:  # noqa: ANN001
    tiny_model().save_pretrained(tmp_path)
    cfg = (tmp_path / "config.json").read_text().replace('"MusicVAE"', '"UNet2DModel"')
    (tmp_path / "config.json").write_text(cfg)
    with pytest.raises(ValueError, match="UNet2DModel"):
        MusicVAE.from_pretrained(tmp_path)


def test_sample_is_deterministic_by_seed() -> None:
    vae = MelodyVAE(tiny_model())
    a = vae.sample(6, temperature=1.0, seed=7)
    assert a == vae.sample(6, temperature=1.0, seed=7)
    assert a != vae.sample(6, temperature=1.0, seed=8)
    assert len(a) == 6 and all(n.end <= 32 for m in a for n in m)


def test_encode_decode_shapes() -> None:
    vae = MelodyVAE(tiny_model())
    z = vae.encode([melody(0), melody(2), []])
    assert z.shape == (3, TINY.z_size)
    assert len(vae.decode(z, temperature=0.0)) == 3


def test_interpolate_endpoints_are_reconstructions() -> None:
    vae = MelodyVAE(tiny_model())
    a, b = melody(0), melody(5)
    path = vae.interpolate(a, b, steps=5)
    assert len(path) == 5
    recon = vae.decode(vae.encode([a, b]), temperature=0.0)
    assert path[0] == recon[0] and path[-1] == recon[1]
    with pytest.raises(ValueError):
        vae.interpolate(a, b, steps=1)


def test_slerp() -> None:
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 2.0])
    torch.testing.assert_close(slerp(a, b, 0.0), a)
    torch.testing.assert_close(slerp(a, b, 1.0), b)
    mid = slerp(a, b, 0.5)
    s = math.sin(math.pi / 4) / math.sin(math.pi / 2)
    torch.testing.assert_close(mid, torch.tensor([s, 2 * s]))
    torch.testing.assert_close(slerp(a, 3 * a, 0.5), 2 * a)  # parallel: falls back to lerp
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(16, generator=g), torch.randn(16, generator=g)
    y = y / y.norm() * x.norm()  # equal norms: slerp moves at constant angular speed on the sphere
    angles = [
        torch.arccos(torch.dot(slerp(x, y, t) / slerp(x, y, t).norm(), x / x.norm())) for t in np.linspace(0, 1, 5)
    ]
    steps = np.diff([float(v) for v in angles])
    assert np.allclose(steps, steps[0], atol=1e-4)  # constant angular speed
