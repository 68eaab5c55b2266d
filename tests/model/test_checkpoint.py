"""HF folders and s3prl checkpoints load into exactly the reference network (issue 3, item 3)."""

from __future__ import annotations

import pytest
import torch
from kwsd.cli import main as kwsd_main
from kwsd.model.checkpoint import CheckpointError, load_encoder, save_encoder
from kwsd.model.distilhubert import DistilHubert

from .hf_reference import config_named, hf_hidden_states, random_hf_model

pytest.importorskip("transformers")

LENGTHS = [16000, 16000 + 123, 4000 + 7]  # 16123 and 4007 are not multiples of 320
TOL = 1e-4


def assert_same_states(ours: DistilHubert, hf, what: str) -> None:
    gen = torch.Generator().manual_seed(7)
    for n in LENGTHS:
        wave = 0.3 * torch.randn(2, n, generator=gen)
        want = hf_hidden_states(hf, wave)
        with torch.inference_mode():
            got = ours(wave)
        assert len(got) == len(want)
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert g.shape == w.shape
            diff = (g - w).abs().max().item()
            assert diff <= TOL, f"{what}: length {n}, hidden state {i}: max abs diff {diff}"


@pytest.mark.parametrize("name", ["distilhubert", "demo"])
def test_load_hf_save_pretrained_folder(tmp_path, name) -> None:
    hf = random_hf_model(config_named(name), seed=3)
    hf.save_pretrained(tmp_path)
    ours = load_encoder(tmp_path)
    assert_same_states(ours, hf, f"{name} save_pretrained folder")


def test_load_pytorch_model_bin_with_old_weight_norm_keys(tmp_path) -> None:
    cfg = config_named("demo")
    hf = random_hf_model(cfg, seed=4)
    state = {}
    for k, v in hf.state_dict().items():
        k = k.replace("parametrizations.weight.original0", "weight_g")
        k = k.replace("parametrizations.weight.original1", "weight_v")
        state[k] = v.clone()
    assert any(k.endswith("weight_g") for k in state)
    cfg.to_json_file(tmp_path / "config.json")
    torch.save(state, tmp_path / "pytorch_model.bin")
    assert_same_states(load_encoder(tmp_path), hf, "pytorch_model.bin")


def test_save_then_load_round_trip(tmp_path) -> None:
    cfg = config_named("demo")
    hf = random_hf_model(cfg, seed=5)
    ours = DistilHubert(cfg)
    ours.load_state_dict(hf.state_dict())
    save_encoder(ours, tmp_path / "enc")
    assert_same_states(load_encoder(tmp_path / "enc"), hf, "save_encoder round trip")


def test_bad_tensors_are_all_listed(tmp_path) -> None:
    from safetensors.torch import save_file

    cfg = config_named("demo")
    state = {k: v.clone() for k, v in DistilHubert(cfg).state_dict().items()}
    del state["encoder.layer_norm.weight"]
    del state["encoder.layers.1.final_layer_norm.bias"]
    state["encoder.layers.7.extra.weight"] = torch.zeros(3)
    state["feature_projection.projection.weight"] = torch.zeros(5, 5)
    cfg.to_json_file(tmp_path / "config.json")
    save_file(state, str(tmp_path / "model.safetensors"))
    with pytest.raises(CheckpointError) as err:
        load_encoder(tmp_path)
    text = str(err.value)
    for key in ("encoder.layer_norm.weight", "encoder.layers.1.final_layer_norm.bias",
                "encoder.layers.7.extra.weight", "feature_projection.projection.weight"):
        assert key in text
    assert "missing tensors (2)" in text and "unexpected tensors (1)" in text
    assert "mis-shaped tensors (1)" in text


class NotATensor:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_pickled_code_in_bin_is_refused(tmp_path, capsys) -> None:
    cfg = config_named("demo")
    cfg.to_json_file(tmp_path / "config.json")
    state = dict(DistilHubert(cfg).state_dict())
    torch.save({"state": state, "evil": NotATensor()}, tmp_path / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="weights-only"):
        load_encoder(tmp_path)
    assert "this must never run" not in capsys.readouterr().out


def test_missing_files_are_named(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="config.json"):
        load_encoder(tmp_path)
    config_named("demo").to_json_file(tmp_path / "config.json")
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_encoder(tmp_path)


# -- s3prl ------------------------------------------------------------------------------------

_HF_TO_S3PRL_LAYER = {
    "attention.k_proj": "self_attn.k_proj", "attention.v_proj": "self_attn.v_proj",
    "attention.q_proj": "self_attn.q_proj", "attention.out_proj": "self_attn.out_proj",
    "layer_norm": "self_attn_layer_norm", "feed_forward.intermediate_dense": "fc1",
    "feed_forward.output_dense": "fc2", "final_layer_norm": "final_layer_norm",
}


def s3prl_state_from_hf(hf_state: dict, norm: str) -> dict:
    """The s3prl DistillerModel layout of the same weights (transformers' script, forwards)."""
    out = {}
    for key, value in hf_state.items():
        value = value.clone()
        parts = key.split(".")
        if key.startswith("feature_extractor.conv_layers."):
            i, kind = parts[2], parts[-1]
            if parts[3] == "conv":
                out[f"feature_extractor.conv_layers.{i}.0.{kind}"] = value
            else:
                mid = "2.1" if norm == "layer" else "2"
                out[f"feature_extractor.conv_layers.{i}.{mid}.{kind}"] = value
        elif key.startswith("feature_projection.projection."):
            out["post_extract_proj." + parts[-1]] = value
        elif key.startswith("encoder.pos_conv_embed.conv."):
            suffix = {"original0": "weight_g", "original1": "weight_v"}.get(parts[-1], parts[-1])
            out["encoder.pos_conv.0." + suffix] = value
        elif key.startswith("encoder.layer_norm."):
            out[key] = value
        elif key.startswith("encoder.layers."):
            i, inner, kind = parts[2], ".".join(parts[3:-1]), parts[-1]
            out[f"encoder.layers.{i}.{_HF_TO_S3PRL_LAYER[inner]}.{kind}"] = value
        elif key == "masked_spec_embed":
            continue  # DistilHuBERT's distiller has no mask embedding
        else:
            raise AssertionError(f"unmapped test key {key}")
    # the distillation prediction heads, which the converter must drop
    out["output_layer.0.weight"] = torch.randn(2304, 768)
    out["output_layer.2.weight"] = torch.randn(3, 768, 768)
    return out


def s3prl_config(name: str) -> dict:
    if name == "distilhubert":
        return {"extractor_mode": "default",
                "extractor_conv_feature_layers":
                    "[(512,10,5)] + [(512,3,2)] * 4 + [(512,2,2)] * 2",
                "encoder_layers": 2, "encoder_embed_dim": 768, "encoder_ffn_embed_dim": 3072,
                "encoder_attention_heads": 12, "conv_pos": 128, "conv_pos_groups": 16,
                "activation_fn": "gelu", "layer_norm_first": False, "n_tasks": 3,
                "task_emb_type": "expand-last", "out_layer_type": "expand-last",
                "pred_layer_id": [4, 8, 12]}
    return {"extractor_mode": "layer_norm",
            "extractor_conv_feature_layers": "[(64,10,5)] + [(128,3,2)] * 4 + [(256,2,2)] * 2",
            "encoder_layers": 2, "encoder_embed_dim": 256, "encoder_ffn_embed_dim": 1024,
            "encoder_attention_heads": 4, "conv_pos": 128, "conv_pos_groups": 16,
            "activation_fn": "gelu", "layer_norm_first": False}


class PickledScheduler:
    """Stands for the optimizer/scheduler objects old s3prl checkpoints pickle."""

    def __init__(self) -> None:
        self.step = 3


@pytest.mark.parametrize("name", ["distilhubert", "demo"])
def test_convert_s3prl_round_trip(tmp_path, capsys, name) -> None:
    cfg = config_named(name)
    hf = random_hf_model(cfg, seed=6)
    ckpt = {"Distiller": s3prl_state_from_hf(hf.state_dict(), cfg.feat_extract_norm),
            "Config": {"distiller": s3prl_config(name)}, "Step": 200000}
    torch.save(ckpt, tmp_path / "distiller.ckpt")
    out = tmp_path / "hf"
    assert kwsd_main(["convert-s3prl", str(tmp_path / "distiller.ckpt"), str(out)]) == 0
    err = capsys.readouterr().err
    assert "UNPICKLE" in err
    assert_same_states(load_encoder(out), hf, f"{name} s3prl conversion")


def test_convert_s3prl_pickled_objects_need_consent(tmp_path, capsys) -> None:
    cfg = config_named("demo")
    hf = random_hf_model(cfg, seed=8)
    ckpt = {"Distiller": s3prl_state_from_hf(hf.state_dict(), "layer"),
            "Config": {"distiller": s3prl_config("demo")}, "Optimizer": PickledScheduler()}
    torch.save(ckpt, tmp_path / "old.ckpt")
    with pytest.raises(SystemExit, match="allow-unknown-objects"):
        kwsd_main(["convert-s3prl", str(tmp_path / "old.ckpt"), str(tmp_path / "a")])
    assert kwsd_main(["convert-s3prl", "--allow-unknown-objects",
                      str(tmp_path / "old.ckpt"), str(tmp_path / "b")]) == 0
    assert_same_states(load_encoder(tmp_path / "b"), hf, "s3prl with pickled objects")


def test_convert_s3prl_refuses_unmapped_tensors(tmp_path, capsys) -> None:
    cfg = config_named("demo")
    state = s3prl_state_from_hf(random_hf_model(cfg).state_dict(), "layer")
    state["encoder.something_new.weight"] = torch.zeros(2)
    torch.save({"Distiller": state, "Config": {"distiller": s3prl_config("demo")}},
               tmp_path / "x.ckpt")
    assert kwsd_main(["convert-s3prl", str(tmp_path / "x.ckpt"), str(tmp_path / "o")]) == 1
    assert "encoder.something_new.weight" in capsys.readouterr().err
