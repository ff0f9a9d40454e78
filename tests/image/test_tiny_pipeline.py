"""GenStudioTinyPipeline with a tiny seeded UNet and a tiny random BERT: no weights downloaded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import (
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    LCMScheduler,
)
from transformers import BertConfig, BertModel, BertTokenizer

from genstudio.image.tiny_pipeline import GenStudioTinyPipeline, build_scheduler, build_unet, write_model_folder

SCHEDULERS = [
    DDIMScheduler,
    EulerDiscreteScheduler,
    EulerAncestralDiscreteScheduler,
    DPMSolverMultistepScheduler,
    LCMScheduler,
]


@pytest.fixture(scope="module")
def saved_pipeline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("tiny")
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "red", "apple", "dog", "face", "emoji", ","]
    vocab = tmp / "vocab.txt"
    vocab.write_text("\n".join(words) + "\n")
    tokenizer = BertTokenizer(str(vocab), model_max_length=16)
    torch.manual_seed(0)
    text_encoder = BertModel(
        BertConfig(
            vocab_size=len(words),
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            max_position_embeddings=32,
        )
    ).eval()
    unet = build_unet(
        sample_size=4,
        block_out_channels=(8, 16),
        layers_per_block=1,
        norm_num_groups=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=16,
        attention_head_dim=2,
    )
    pipe = GenStudioTinyPipeline(unet=unet, scheduler=build_scheduler(), text_encoder=text_encoder, tokenizer=tokenizer)
    pipe.set_progress_bar_config(disable=True)
    pipe.save_pretrained(tmp / "pipe")
    return tmp / "pipe"


@pytest.mark.parametrize("scheduler_cls", SCHEDULERS, ids=lambda c: c.__name__)
def test_reload_and_sample(saved_pipeline: Path, scheduler_cls: type) -> None:
    pipe = GenStudioTinyPipeline.from_pretrained(saved_pipeline)
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = scheduler_cls.from_config(pipe.scheduler.config)
    assert pipe.native_size == 8

    calls: list[int] = []

    def on_step(p: GenStudioTinyPipeline, i: int, t: torch.Tensor, kw: dict) -> dict:
        calls.append(i)
        return kw

    def run(seed: int) -> np.ndarray:
        return pipe(
            ["a red apple", "dog face"],
            negative_prompt="",
            num_inference_steps=2,
            guidance_scale=3.0,
            num_images_per_prompt=2,
            generator=torch.Generator().manual_seed(seed),
            output_type="np",
            callback_on_step_end=on_step,
        ).images

    a = run(0)
    assert calls == [0, 1]
    assert a.shape == (4, 8, 8, 3)
    assert np.isfinite(a).all() and a.min() >= 0 and a.max() <= 1
    np.testing.assert_array_equal(a, run(0))
    assert np.abs(a - run(1)).max() > 1e-4


def test_output_types(saved_pipeline: Path) -> None:
    pipe = GenStudioTinyPipeline.from_pretrained(saved_pipeline)
    pipe.set_progress_bar_config(disable=True)
    pil = pipe("a red apple", num_inference_steps=2, generator=torch.Generator().manual_seed(0)).images
    assert pil[0].size == (8, 8) and pil[0].mode == "RGB"
    pt = pipe(
        "a red apple",
        num_inference_steps=2,
        generator=torch.Generator().manual_seed(0),
        output_type="pt",
        height=512,
        width=512,
    ).images
    assert pt.shape == (1, 3, 8, 8) and pt.min() >= -1 and pt.max() <= 1


def test_folder_without_text_encoder(saved_pipeline: Path, tmp_path: Path) -> None:
    """The shipped layout: UNet (fp16) + scheduler only, text encoder and tokenizer passed in."""
    full = GenStudioTinyPipeline.from_pretrained(saved_pipeline)
    full.set_progress_bar_config(disable=True)
    write_model_folder(tmp_path / "model", full.unet, full.scheduler)
    assert not (tmp_path / "model" / "text_encoder").exists()
    pipe = GenStudioTinyPipeline.from_pretrained(
        tmp_path / "model", text_encoder=full.text_encoder, tokenizer=full.tokenizer
    )
    pipe.set_progress_bar_config(disable=True)
    assert pipe.unet.dtype == torch.float32
    out = pipe("a red apple", num_inference_steps=2, generator=torch.Generator().manual_seed(0), output_type="np")
    ref = full("a red apple", num_inference_steps=2, generator=torch.Generator().manual_seed(0), output_type="np")
    np.testing.assert_allclose(out.images, ref.images, atol=2e-2)
