"""Bundles load, validate every part, and explain each problem."""

from __future__ import annotations

import json

import pytest
import torch
from kwsd.model.bundle import ModelBundleError, load_bundle, make_random_bundle
from safetensors.torch import save_file


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory):
    return make_random_bundle(tmp_path_factory.mktemp("b") / "bundle", "demo", ["yes", "no"])


def copy_bundle(src, dst):
    dst.mkdir()
    for p in src.iterdir():
        (dst / p.name).write_bytes(p.read_bytes())
    return dst


def edit_meta(path, **changes):
    meta = json.loads((path / "kws.json").read_text())
    meta.update(changes)
    (path / "kws.json").write_text(json.dumps(meta))


def test_round_trip(bundle_dir) -> None:
    b = load_bundle(bundle_dir)
    assert b.labels == ["yes", "no", "_unknown_", "_silence_"]
    assert b.keywords == ["yes", "no"]
    assert b.thresholds == {"yes": 0.5, "no": 0.5}
    assert (b.window_samples, b.hop_samples, b.sample_rate) == (16000, 3200, 16000)
    assert b.model_id == "random-0"
    assert b.meta["labels"] == b.labels
    assert not b.encoder.training and not b.head.training


def test_hf_reads_bundle_encoder(bundle_dir) -> None:
    transformers = pytest.importorskip("transformers")
    hf = transformers.HubertModel.from_pretrained(bundle_dir).eval()
    ours = load_bundle(bundle_dir).encoder
    wave = torch.randn(1, 16000)
    with torch.inference_mode():
        want = hf(wave, output_hidden_states=True).hidden_states
        got = ours(wave)
    assert max((g - w).abs().max().item() for g, w in zip(got, want, strict=True)) <= 1e-4


@pytest.mark.parametrize("breakage,words", [
    (lambda p: (p / "kws.json").unlink(), "kws.json: missing"),
    (lambda p: (p / "kws.json").write_text("{not json"), "not valid JSON"),
    (lambda p: edit_meta(p, format_version=99), "unsupported format_version 99"),
    (lambda p: edit_meta(p, labels=["yes", "no", "maybe", "_unknown_", "_silence_"],
                         thresholds={"yes": .5, "no": .5, "maybe": .5}),
     "head has 4 classes but kws.json lists 5 labels"),
    (lambda p: edit_meta(p, labels=["yes", "no"]), "_unknown_"),
    (lambda p: edit_meta(p, thresholds={"yes": 0.5}), "missing ['no']"),
    (lambda p: edit_meta(p, hop_ms=210), "hop_ms"),
    (lambda p: edit_meta(p, sample_rate=8000), "sample_rate"),
    (lambda p: (p / "model.safetensors").unlink(), "model.safetensors: missing"),
    (lambda p: (p / "head.safetensors").unlink(), "head.safetensors: missing"),
    (lambda p: (p / "head.safetensors").write_bytes(b"garbage"), "not a readable safetensors"),
    (lambda p: save_file({"classifier.weight": torch.zeros(4, 7)}, str(p / "head.safetensors")),
     "mis-shaped tensors"),
    (lambda p: edit_meta(p, head={"type": "weighted-mlp-meanmax", "mlp_dim": 128}),
     "mis-shaped tensors"),
    (lambda p: edit_meta(p, head={"type": "weighted-mlp-meanmax", "mlp_dim": 256,
                                  "temporal_layers": 2}), "missing"),
    (lambda p: edit_meta(p, head={"type": "weighted-mlp-meanmax", "mlp_dim": 256,
                                  "temporal_layers": -1}), "'head.temporal_layers'"),
    (lambda p: edit_meta(p, head={"type": "weighted-mlp-meanmax", "mlp_dim": 256,
                                  "temporal_kernel": 4}), "'head.temporal_kernel'"),
    (lambda p: torch.save({}, p / "extra.pt"), "pickled files"),
    (lambda p: edit_meta(p, streaming={"precision": "fp8"}), "streaming.precision"),
    (lambda p: edit_meta(p, streaming={"cache_conv": "yes"}), "streaming.cache_conv"),
    (lambda p: edit_meta(p, decision={"smoothing_ms": -400}), "'decision.smoothing_ms'"),
    (lambda p: edit_meta(p, decision={"smoothing_ms": "400"}), "'decision.smoothing_ms'"),
    (lambda p: edit_meta(p, decision=[400]), "'decision' must be an object"),
    (lambda p: edit_meta(p, enrollment={"fa_target_per_h": 0}), "'enrollment.fa_target_per_h'"),
    (lambda p: edit_meta(p, enrollment={"fa_target_per_h_one_example": True}),
     "'enrollment.fa_target_per_h_one_example'"),
    (lambda p: edit_meta(p, enrollment={"fa_target_per_h": "1"}),
     "'enrollment.fa_target_per_h'"),
    (lambda p: edit_meta(p, enrollment=0.2), "'enrollment' must be an object"),
    (lambda p: (p / "config.json").write_text('{"do_stable_layer_norm": true}'),
     "do_stable_layer_norm"),
])
def test_validation_errors(bundle_dir, tmp_path, breakage, words) -> None:
    broken = copy_bundle(bundle_dir, tmp_path / "broken")
    breakage(broken)
    with pytest.raises(ModelBundleError) as err:
        load_bundle(broken)
    assert words in str(err.value)


def test_not_a_folder(tmp_path) -> None:
    with pytest.raises(ModelBundleError, match="not a directory"):
        load_bundle(tmp_path / "nope")


def test_temporal_head_round_trips_and_hears_the_order_of_frames(bundle_dir, tmp_path) -> None:
    """Mean+max pooling alone cannot tell frames in reverse order from the original; the
    temporal layers can, and a bundle saved with them loads them back."""
    path = make_random_bundle(tmp_path / "temporal", "demo", ["yes", "no"], temporal_layers=3)
    b = load_bundle(path)
    assert b.meta["head"]["temporal_layers"] == 3 and len(b.head.temporal) == 3
    plain = load_bundle(bundle_dir).head
    states = torch.randn(2, 3, 49, 256)
    with torch.no_grad():
        torch.testing.assert_close(plain(states), plain(states.flip(2)))
        assert (b.head(states) - b.head(states.flip(2))).abs().max() > 1e-3
        torch.testing.assert_close(load_bundle(path).head(states), b.head(states))
