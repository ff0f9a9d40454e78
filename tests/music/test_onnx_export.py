"""ONNX export: the exported encoder and single-graph sampler run in onnxruntime and agree with torch, token
for token, on a tiny seeded model and on the built-in one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from genstudio.music import onnx_export
from genstudio.music.model import CONFIG_MAP, GREEDY_TEMPERATURE, MusicVAE
from genstudio.music.onnx_export import BUILTIN_MELODY_MODEL, export_onnx, sha256_file

ort = pytest.importorskip("onnxruntime")

TINY = CONFIG_MAP["cat-mel_2bar_tiny"]
TEMPERATURES = (0.0, GREEDY_TEMPERATURE / 2, 0.01, 0.5, 1.0, 1.5)


def _session(path: Path) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    opts.log_severity_level = 4  # the failing-input tests would print kernel errors otherwise
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model whose z matters: Magenta's N(0, 0.001) start for the z projections would make every
    sample look alike, so those weights are redrawn larger."""
    torch.manual_seed(0)
    model = MusicVAE(TINY).eval()
    with torch.no_grad():
        for lin in (model.to_mu, model.to_sigma, model.to_state):
            lin.weight.normal_(0.0, 0.5)
        model.out.weight.mul_(8.0)  # peaked distributions: argmax and low temperatures differ from uniform
    folder = tmp_path_factory.mktemp("tiny-melody")
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_export(tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[MusicVAE, Path, dict]:
    out = tmp_path_factory.mktemp("tiny-onnx")
    return MusicVAE.from_pretrained(tiny_dir), out, export_onnx(tiny_dir, out)


@pytest.fixture(scope="module")
def builtin_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[MusicVAE, Path, dict]:
    if not (BUILTIN_MELODY_MODEL / "model.safetensors").is_file():
        pytest.skip("the built-in melody model is not present")
    out = tmp_path_factory.mktemp("builtin-onnx")
    return MusicVAE.from_pretrained(BUILTIN_MELODY_MODEL), out, export_onnx(BUILTIN_MELODY_MODEL, out)


def _inputs(batch: int, z_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, z_size, generator=g), torch.rand(batch, 32, generator=g)


def _run_decoder(sess: ort.InferenceSession, z: torch.Tensor, temperature: float, u: torch.Tensor) -> np.ndarray:
    feed = {"z": z.numpy(), "temperature": np.array(temperature, dtype=np.float32), "u": u.numpy()}
    return sess.run(None, feed)[0]


def _assert_same_tokens(model: MusicVAE, folder: Path, batches: tuple[int, ...]) -> None:
    sess = _session(folder / onnx_export.DECODER_FILE)
    for seed, batch in enumerate(batches):
        z, u = _inputs(batch, model.config.z_size, seed)
        for temperature in TEMPERATURES:
            expected = model.decode_tokens_uniform(z, temperature, u).numpy()
            got = _run_decoder(sess, z, temperature, u)
            assert got.dtype == np.int64 and got.shape == (batch, 32)
            np.testing.assert_array_equal(got, expected, err_msg=f"seed {seed}, batch {batch}, T {temperature}")


def _assert_encoder_close(model: MusicVAE, folder: Path, batch: int) -> None:
    z, u = _inputs(batch, model.config.z_size, 99)
    tokens = model.decode_tokens_uniform(z, 1.0, u)
    with torch.no_grad():
        mu, sigma = model.encode(tokens)
    got_mu, got_sigma = _session(folder / onnx_export.ENCODER_FILE).run(None, {"tokens": tokens.numpy()})
    assert got_mu.shape == got_sigma.shape == (batch, model.config.z_size)
    np.testing.assert_allclose(got_mu, mu.numpy(), atol=1e-4, rtol=0)
    np.testing.assert_allclose(got_sigma, sigma.numpy(), atol=1e-4, rtol=0)


def test_tiny_decoder_matches_torch_token_for_token(tiny_export: tuple[MusicVAE, Path, dict]) -> None:
    model, folder, _ = tiny_export
    _assert_same_tokens(model, folder, batches=(1, 2, 7, 64))


def test_tiny_encoder_matches_torch(tiny_export: tuple[MusicVAE, Path, dict]) -> None:
    model, folder, _ = tiny_export
    for batch in (1, 5, 33):
        _assert_encoder_close(model, folder, batch)


def test_sampler_draws_from_the_uniforms(tiny_export: tuple[MusicVAE, Path, dict]) -> None:
    model, _, _ = tiny_export
    z, u = _inputs(16, model.config.z_size, 3)
    greedy = model.decode_tokens(z, temperature=0.0)
    np.testing.assert_array_equal(model.decode_tokens_uniform(z, 0.0, u), greedy)
    # Below the greedy threshold the uniforms do not matter; at T=1 they do, and the same ones repeat.
    np.testing.assert_array_equal(model.decode_tokens_uniform(z, GREEDY_TEMPERATURE / 2, torch.rand(16, 32)), greedy)
    a = model.decode_tokens_uniform(z, 1.0, u)
    assert torch.equal(a, model.decode_tokens_uniform(z, 1.0, u))
    assert not torch.equal(a, model.decode_tokens_uniform(z, 1.0, torch.rand(16, 32)))
    # u near 0 picks the first class with probability mass, u near 1 the last: the inverse CDF's ends.
    first = model.decode_tokens_uniform(z, 1.0, torch.zeros(16, 32))
    last = model.decode_tokens_uniform(z, 1.0, torch.full((16, 32), 1.0 - 2**-24))
    assert (first == 0).all() and (last == model.num_classes - 1).all()


def test_decode_tokens_uniform_rejects_bad_input(tiny_export: tuple[MusicVAE, Path, dict]) -> None:
    model, _, _ = tiny_export
    z, u = _inputs(2, model.config.z_size, 0)
    for temperature in (float("nan"), float("inf"), torch.tensor([1.0, 2.0])):
        with pytest.raises(ValueError, match="temperature"):
            model.decode_tokens_uniform(z, temperature, u)
    with pytest.raises(ValueError, match=r"u must lie in \[0, 1\)"):
        model.decode_tokens_uniform(z, 1.0, u + 1.0)
    with pytest.raises(ValueError, match="u must be"):
        model.decode_tokens_uniform(z, 1.0, u[:1])
    with pytest.raises(ValueError, match="z must be"):
        model.decode_tokens_uniform(z[:, :3], 1.0, u)


def test_onnx_graphs_have_dynamic_batch_and_fixed_widths(tiny_export: tuple[MusicVAE, Path, dict]) -> None:
    model, folder, _ = tiny_export
    dec = _session(folder / onnx_export.DECODER_FILE)
    shapes = {i.name: (i.shape, i.type) for i in dec.get_inputs()}
    assert shapes == {
        "z": (["batch", model.config.z_size], "tensor(float)"),
        "temperature": ([], "tensor(float)"),
        "u": (["batch", 32], "tensor(float)"),
    }
    assert [(o.name, o.shape, o.type) for o in dec.get_outputs()] == [("tokens", ["batch", 32], "tensor(int64)")]
    enc = _session(folder / onnx_export.ENCODER_FILE)
    assert [(i.name, i.shape, i.type) for i in enc.get_inputs()] == [("tokens", ["batch", 32], "tensor(int64)")]
    assert [o.name for o in enc.get_outputs()] == ["mu", "sigma"]


def test_onnx_runtime_refuses_bad_shapes(tiny_export: tuple[MusicVAE, Path, dict]) -> None:
    model, folder, _ = tiny_export
    dec = _session(folder / onnx_export.DECODER_FILE)
    z, u = _inputs(3, model.config.z_size, 0)
    t = np.array(1.0, dtype=np.float32)
    bad_feeds = [
        {"z": z.numpy(), "temperature": t, "u": u[:, :16].numpy()},  # 16 steps, the graph has 32
        {"z": z[:, :3].numpy(), "temperature": t, "u": u.numpy()},  # wrong z size
        {"z": z.numpy(), "temperature": t, "u": u[:2].numpy()},  # batch of z and u differ
        {"z": z.numpy().astype(np.float64), "temperature": t, "u": u.numpy()},  # wrong dtype
    ]
    for feed in bad_feeds:
        with pytest.raises(Exception, match="INVALID_ARGUMENT|FAIL|Unexpected input data type"):
            dec.run(None, feed)
    with pytest.raises(Exception, match="INVALID_ARGUMENT"):
        _session(folder / onnx_export.ENCODER_FILE).run(None, {"tokens": np.zeros((2, 31), dtype=np.int64)})


def test_onnx_graph_degrades_bad_temperatures_to_defined_outputs(tiny_export: tuple[MusicVAE, Path, dict]) -> None:
    """The graph cannot raise: a NaN or negative temperature samples greedily, like 0."""
    model, folder, _ = tiny_export
    dec = _session(folder / onnx_export.DECODER_FILE)
    z, u = _inputs(4, model.config.z_size, 5)
    greedy = model.decode_tokens(z, 0.0).numpy()
    for temperature in (float("nan"), -1.0, 0.0):
        np.testing.assert_array_equal(_run_decoder(dec, z, temperature, u), greedy)


def test_config_json_and_atomic_files(tiny_export: tuple[MusicVAE, Path, dict], tiny_dir: Path) -> None:
    model, folder, summary = tiny_export
    cfg = json.loads((folder / onnx_export.CONFIG_FILE).read_text())
    assert cfg == summary
    assert cfg["z_size"] == model.config.z_size == 8
    assert (cfg["num_steps"], cfg["classes"], cfg["min_pitch"], cfg["max_pitch"]) == (32, 90, 21, 108)
    assert cfg["steps_per_quarter"] == 4
    assert cfg["source_model"] == tiny_dir.name
    assert cfg["source_sha256"] == sha256_file(tiny_dir / "model.safetensors")
    for name in (onnx_export.ENCODER_FILE, onnx_export.DECODER_FILE):
        assert cfg["files"][name]["sha256"] == sha256_file(folder / name)
        assert cfg["files"][name]["bytes"] == (folder / name).stat().st_size
    assert sorted(p.name for p in folder.iterdir()) == sorted(onnx_export.FILES)  # no temporary files left


def test_cli_main(tiny_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "exported"
    assert onnx_export.main(["--model", str(tiny_dir), "-o", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(onnx_export.FILES)
    assert "melody_decoder.onnx" in capsys.readouterr().out
    assert onnx_export.main(["--model", str(tmp_path / "missing"), "-o", str(out)]) == 2
    assert "not a model folder" in capsys.readouterr().err


@pytest.mark.slow
def test_builtin_model_exports_and_matches_torch(builtin_export: tuple[MusicVAE, Path, dict]) -> None:
    model, folder, summary = builtin_export
    assert summary["z_size"] == model.config.z_size and summary["source_model"] == "melody-2bar"
    _assert_same_tokens(model, folder, batches=(1, 4, 64))
    _assert_encoder_close(model, folder, 64)


def test_export_is_deterministic(tiny_dir: Path, tiny_export: tuple[MusicVAE, Path, dict], tmp_path: Path) -> None:
    """Two exports of the same weights give the same bytes: processes racing to fill a cache agree."""
    _, _, summary = tiny_export
    assert export_onnx(tiny_dir, tmp_path)["files"] == summary["files"]
