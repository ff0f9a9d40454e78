"""The shipped emoji-tiny checkpoint loads and samples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from genstudio.image.tiny_pipeline import GenStudioTinyPipeline

FOLDER = Path(__file__).resolve().parents[2] / "src" / "genstudio" / "builtin_models" / "emoji-tiny"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (FOLDER / "model_index.json").is_file(), reason="the built-in model is not shipped"),
]


def test_shipped_folder_samples() -> None:
    weights = FOLDER / "unet" / "diffusion_pytorch_model.safetensors"
    assert weights.stat().st_size <= 10 * 1024 * 1024
    assert not (FOLDER / "text_encoder").exists()
    pipe = GenStudioTinyPipeline.from_folder(FOLDER)
    pipe.set_progress_bar_config(disable=True)
    assert pipe.native_size == 32

    def run(seed: int) -> np.ndarray:
        gen = torch.Generator().manual_seed(seed)
        return pipe("a red apple, glossy emoji", num_inference_steps=10, generator=gen, output_type="np").images

    a = run(0)
    assert a.shape == (1, 32, 32, 3)
    np.testing.assert_array_equal(a, run(0))
    # Emoji sit on white: the corners of a sample are bright.
    assert a[0, :3, :3].mean() > 0.7
