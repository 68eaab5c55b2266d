"""kwsd's plain-torch DistilHuBERT computes what transformers.HubertModel computes."""

from __future__ import annotations

import pytest
import torch
from kwsd.model.config import EncoderConfig
from kwsd.model.distilhubert import DistilHubert

from .hf_reference import config_named, hf_hidden_states, random_hf_model

pytest.importorskip("transformers")

LENGTHS = [16000, 8000 + 123, 401]


@pytest.mark.parametrize("name", ["distilhubert", "demo"])
def test_hidden_states_match_hf(name: str) -> None:
    cfg = config_named(name)
    hf = random_hf_model(cfg)
    ours = DistilHubert(cfg).eval()
    ours.load_state_dict(hf.state_dict(), strict=True)
    assert set(ours.state_dict()) == set(hf.state_dict())
    gen = torch.Generator().manual_seed(1)
    for n in LENGTHS:
        wave = 0.3 * torch.randn(2, n, generator=gen)
        want = hf_hidden_states(hf, wave)
        with torch.inference_mode():
            got = ours(wave)
        assert len(got) == len(want) == cfg.num_hidden_layers + 1
        assert got[0].shape == (2, cfg.num_frames(n), cfg.hidden_size)
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            diff = (g - w).abs().max().item()
            assert diff <= 1e-4, f"{name} length {n} hidden state {i}: max abs diff {diff}"


def test_parts_compose_to_forward() -> None:
    cfg = config_named("demo")
    model = DistilHubert(cfg).eval()
    wave = torch.randn(1, 5000)
    with torch.inference_mode():
        feats = model.extract_conv_features(wave)
        states = model.transform(model.project(feats))
        whole = model(wave)
    assert feats.shape == (1, cfg.num_frames(5000), cfg.conv_dim[-1])
    for a, b in zip(states, whole, strict=True):
        assert torch.equal(a, b)


def test_config_round_trip_through_hf() -> None:
    import transformers

    for name in ("distilhubert", "demo"):
        cfg = config_named(name)
        hf_cfg = transformers.HubertConfig(**cfg.to_hf_dict())
        again = EncoderConfig.from_hf_dict(hf_cfg.to_dict())
        assert again == cfg
    assert config_named("distilhubert").receptive_field == 400
    assert config_named("distilhubert").hop_samples == 320


@pytest.mark.parametrize("field,value,words", [
    ("do_stable_layer_norm", True, "do_stable_layer_norm"),
    ("feat_extract_norm", "batch", "feat_extract_norm"),
    ("hidden_act", "relu", "hidden_act"),
    ("num_attention_heads", 5, "divisible"),
    ("conv_kernel", [10, 3], "same length"),
])
def test_config_refuses_unsupported(field, value, words) -> None:
    data = config_named("distilhubert").to_hf_dict()
    data[field] = value
    with pytest.raises(ValueError, match=words):
        EncoderConfig.from_hf_dict(data)


def test_hf_from_pretrained_reads_our_layout(tmp_path) -> None:
    """config.json from to_hf_dict() + our state dict as safetensors is a valid HF folder."""
    import transformers
    from safetensors.torch import save_file

    cfg = config_named("demo")
    ours = DistilHubert(cfg).eval()
    cfg.to_json_file(tmp_path / "config.json")
    save_file({k: v.contiguous() for k, v in ours.state_dict().items()},
              str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    hf = transformers.HubertModel.from_pretrained(tmp_path).eval()
    wave = torch.randn(1, 7000)
    want = hf_hidden_states(hf, wave)
    with torch.inference_mode():
        got = ours(wave)
    for g, w in zip(got, want, strict=True):
        assert (g - w).abs().max().item() <= 1e-4
