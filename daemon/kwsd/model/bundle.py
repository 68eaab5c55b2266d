"""Keyword model bundle: one folder that holds everything needed to spot keywords.

    config.json        encoder architecture (HF HubertConfig)
    model.safetensors  encoder weights, HF layout (`HubertModel.from_pretrained` reads the folder)
    head.safetensors   keyword head weights
    kws.json           labels, thresholds, window/hop, sample rate, name/version, head shape,
                       training-data summary, measured metrics

Loading validates every part and raises `ModelBundleError` naming the file and the problem.
Only safetensors and JSON are read: a bundle containing a pickle is refused outright.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from kwsd.model.cascade import CascadeError, load_cascade
from kwsd.model.checkpoint import (
    CONFIG_FILE,
    SAFETENSORS_FILE,
    CheckpointError,
    check_state_dict,
    load_encoder,
    save_encoder,
)
from kwsd.model.config import EncoderConfig, demo_config
from kwsd.model.distilhubert import DistilHubert
from kwsd.model.head import HEAD_TYPE, SILENCE, UNKNOWN, HeadConfig, KeywordHead
from kwsd.model.precision import PRECISIONS

FORMAT_VERSION = 1
HEAD_FILE = "head.safetensors"
META_FILE = "kws.json"
SAMPLE_RATE = 16000
FRAME_MS = 20
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")


MAX_SMOOTHING_MS = 5000  # kws.json `decision.smoothing_ms` upper bound (ms)


class ModelBundleError(ValueError):
    """A bundle that cannot be used; the message names the file and what is wrong."""


@dataclass
class ModelBundle:
    path: Path
    labels: list[str]
    keywords: list[str]
    thresholds: dict[str, float]
    window_samples: int
    hop_samples: int
    sample_rate: int
    model_id: str
    encoder: DistilHubert
    head: KeywordHead
    meta: dict[str, Any] = field(repr=False)
    # runtime.shared_inference_encoder: converted encoder copies shared by all streams
    inference_encoders: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    # kws.json streaming.cascade with its stage-one network (kwsd.model.cascade), or None
    cascade: Any = field(default=None, repr=False, compare=False)


def _err(where: Path | str, msg: str) -> ModelBundleError:
    return ModelBundleError(f"{where}: {msg}")


def validate_meta(meta: Any, where: Path | str = META_FILE) -> None:
    """Check a kws.json dict; raise ModelBundleError naming the first bad field."""
    if not isinstance(meta, dict):
        raise _err(where, "must be a JSON object")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise _err(where, f"unsupported format_version {version!r} (this kwsd reads "
                   f"{FORMAT_VERSION})")
    labels = meta.get("labels")
    if not isinstance(labels, list) or not all(isinstance(x, str) and x for x in labels):
        raise _err(where, "'labels' must be a list of non-empty strings")
    if len(set(labels)) != len(labels):
        raise _err(where, f"'labels' has duplicates: {labels}")
    if len(labels) < 3 or labels[-2:] != [UNKNOWN, SILENCE]:
        raise _err(where, f"'labels' must be the keywords followed by {UNKNOWN!r} and "
                   f"{SILENCE!r}, got {labels}")
    keywords = labels[:-2]
    if any(k.startswith("_") for k in keywords):
        raise _err(where, f"keywords may not start with '_': {keywords}")
    thresholds = meta.get("thresholds")
    if not isinstance(thresholds, dict):
        raise _err(where, "'thresholds' must be an object keyword -> probability")
    if set(thresholds) != set(keywords):
        raise _err(where, f"'thresholds' must have exactly the keywords {keywords}; missing "
                   f"{sorted(set(keywords) - set(thresholds))}, extra "
                   f"{sorted(set(thresholds) - set(keywords))}")
    for k, v in thresholds.items():
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0.0 < v <= 1.0:
            raise _err(where, f"threshold for {k!r} must be a number in (0, 1], got {v!r}")
    if meta.get("sample_rate") != SAMPLE_RATE:
        raise _err(where, f"'sample_rate' must be {SAMPLE_RATE}, got {meta.get('sample_rate')!r}")
    for name in ("window_ms", "hop_ms"):
        v = meta.get(name)
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0 or v % FRAME_MS:
            raise _err(where, f"{name!r} must be a positive multiple of {FRAME_MS} ms, got {v!r}")
    if meta["hop_ms"] > meta["window_ms"]:
        raise _err(where, f"'hop_ms' {meta['hop_ms']} exceeds 'window_ms' {meta['window_ms']}")
    model = meta.get("model")
    if not isinstance(model, dict) or not all(isinstance(model.get(k), str) and model.get(k)
                                              for k in ("name", "version")):
        raise _err(where, "'model' must be an object with non-empty strings 'name' and 'version'")
    head = meta.get("head")
    if not isinstance(head, dict) or head.get("type") != HEAD_TYPE:
        raise _err(where, f"'head' must be an object with type {HEAD_TYPE!r}, got {head!r}")
    if isinstance(head.get("mlp_dim"), bool) or not isinstance(head.get("mlp_dim"), int) \
            or head["mlp_dim"] < 1:
        raise _err(where, f"'head.mlp_dim' must be a positive integer, got "
                   f"{head.get('mlp_dim')!r}")
    layers = head.get("temporal_layers", 0)
    if isinstance(layers, bool) or not isinstance(layers, int) or layers < 0:
        raise _err(where, f"'head.temporal_layers' must be an integer >= 0, got {layers!r}")
    kernel = head.get("temporal_kernel")  # absent: HeadConfig's default
    if kernel is not None and (isinstance(kernel, bool) or not isinstance(kernel, int)
                               or kernel < 1 or kernel % 2 == 0):
        raise _err(where, f"'head.temporal_kernel' must be an odd positive integer, got "
                   f"{kernel!r}")
    for name in ("training_data", "metrics", "streaming", "decision", "enrollment"):
        if name in meta and not isinstance(meta[name], dict):
            raise _err(where, f"{name!r} must be an object")
    for key in ("fa_target_per_h", "fa_target_per_h_one_example"):
        target = meta.get("enrollment", {}).get(key)
        if target is not None and (isinstance(target, bool) or not isinstance(target, int | float)
                                   or not 0 < target <= 100):
            raise _err(where, f"'enrollment.{key}' must be a number in (0, 100] (false alarms "
                       f"per hour on the negative bank), got {target!r}")
    streaming = meta.get("streaming", {})
    if "cache_conv" in streaming and not isinstance(streaming["cache_conv"], bool):
        raise _err(where, f"'streaming.cache_conv' must be true or false, got "
                   f"{streaming['cache_conv']!r}")
    if "precision" in streaming and streaming["precision"] not in PRECISIONS:
        raise _err(where, f"'streaming.precision' must be one of {sorted(PRECISIONS)}, got "
                   f"{streaming['precision']!r}")
    if "precision_choice" in streaming and not isinstance(streaming["precision_choice"], dict):
        raise _err(where, "'streaming.precision_choice' must be an object (what `kwsd bench "
                   "--choose` measured)")
    smoothing = meta.get("decision", {}).get("smoothing_ms", 0)
    if isinstance(smoothing, bool) or not isinstance(smoothing, int) \
            or not 0 <= smoothing <= MAX_SMOOTHING_MS:
        raise _err(where, f"'decision.smoothing_ms' must be an integer in [0, "
                   f"{MAX_SMOOTHING_MS}] (ms), got {smoothing!r}")


def make_meta(keywords: list[str], *, name: str, version: str, window_ms: int = 1000,
              hop_ms: int = 200, thresholds: dict[str, float] | None = None,
              mlp_dim: int = 256, temporal_layers: int = 0,
              training_data: dict | None = None,
              metrics: dict | None = None, cache_conv: bool | None = None,
              precision: str | None = None, smoothing_ms: int = 0) -> dict[str, Any]:
    """A valid kws.json dict (thresholds default to 0.5). `cache_conv` / `precision` set how
    streams run the encoder (streaming.py; default: cache when exact, fp32); train the head
    with the same settings (window_states / encode_windows honour them). `smoothing_ms`: the
    decision's averaging span the thresholds are calibrated with (kws.json `decision`)."""
    meta: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "model": {"name": name, "version": version},
        "labels": [*keywords, UNKNOWN, SILENCE],
        "thresholds": {k: 0.5 for k in keywords} if thresholds is None else dict(thresholds),
        "sample_rate": SAMPLE_RATE,
        "window_ms": window_ms,
        "hop_ms": hop_ms,
        "head": {"type": HEAD_TYPE, "mlp_dim": mlp_dim,
                 **({"temporal_layers": temporal_layers} if temporal_layers else {})},
        "training_data": training_data or {},
        "metrics": metrics or {},
    }
    streaming: dict[str, Any] = {}
    if cache_conv is not None:
        streaming["cache_conv"] = cache_conv
    if precision is not None:
        streaming["precision"] = precision
    if streaming:
        meta["streaming"] = streaming
    if smoothing_ms:
        meta["decision"] = {"smoothing_ms": smoothing_ms}
    validate_meta(meta, "kws.json (new)")
    return meta


def head_config_for(meta: dict[str, Any], encoder_cfg: EncoderConfig) -> HeadConfig:
    return HeadConfig(num_states=encoder_cfg.num_hidden_layers + 1,
                      hidden_size=encoder_cfg.hidden_size, num_labels=len(meta["labels"]),
                      mlp_dim=int(meta["head"]["mlp_dim"]),
                      dropout=float(meta["head"].get("dropout", 0.1)),
                      **{k: int(meta["head"][k]) for k in ("temporal_layers", "temporal_kernel")
                         if k in meta["head"]})


def _read_meta(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise _err(path, "missing (every bundle needs kws.json)")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _err(path, f"not valid JSON: {exc}") from exc
    validate_meta(meta, path)
    return meta


def _load_head(path: Path, cfg: HeadConfig) -> KeywordHead:
    if not path.is_file():
        raise _err(path, "missing")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise _err(path, f"not a readable safetensors file: {exc}") from exc
    head = KeywordHead(cfg)
    cls = state.get("classifier.weight")
    if cls is not None and cls.dim() == 2 and cls.shape[0] != cfg.num_labels:
        raise _err(path, f"head has {cls.shape[0]} classes but kws.json lists "
                   f"{cfg.num_labels} labels")
    try:
        check_state_dict(head, state, str(path))
    except CheckpointError as exc:
        raise ModelBundleError(str(exc)) from exc
    head.load_state_dict({k: v.to(torch.float32) for k, v in state.items()})
    return head.eval()


def load_bundle(path: str | Path, *, with_cascade: bool = True) -> ModelBundle:
    """Load and validate a bundle folder (no pickles, every shape checked). `with_cascade`
    False: leave kws.json streaming.cascade and its stage one out (`kwsd cascade fit` making
    a new one)."""
    path = Path(path)
    if not path.is_dir():
        raise _err(path, "not a directory (a model bundle is a folder)")
    pickles = sorted(p.name for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise _err(path, f"contains pickled files {pickles}; bundles hold safetensors and JSON "
                   "only (pickles can run code) - convert them first")
    meta = _read_meta(path / META_FILE)
    for name in (CONFIG_FILE, SAFETENSORS_FILE):
        if not (path / name).is_file():
            raise _err(path / name, "missing (the encoder in HF layout)")
    try:
        encoder = load_encoder(path)
    except CheckpointError as exc:
        raise ModelBundleError(f"encoder: {exc}") from exc
    head = _load_head(path / HEAD_FILE, head_config_for(meta, encoder.config))
    labels = list(meta["labels"])
    model = meta["model"]
    rate = meta["sample_rate"]
    try:
        cascade = load_cascade(path, meta, labels) if with_cascade else None
    except CascadeError as exc:
        raise ModelBundleError(f"cascade: {exc}") from exc
    return ModelBundle(
        path=path, labels=labels, keywords=labels[:-2],
        thresholds={k: float(v) for k, v in meta["thresholds"].items()},
        window_samples=meta["window_ms"] * rate // 1000, hop_samples=meta["hop_ms"] * rate // 1000,
        sample_rate=rate, model_id=f"{model['name']}-{model['version']}",
        encoder=encoder, head=head, meta=meta, cascade=cascade)


def save_bundle(path: str | Path, encoder: DistilHubert, head: KeywordHead,
                meta: dict[str, Any]) -> Path:
    """Write a bundle folder (validated first); returns its path."""
    path = Path(path)
    validate_meta(meta, "kws.json (to save)")
    want = head_config_for(meta, encoder.config)
    got = head.config
    if replace(got, dropout=want.dropout) != want:  # all but dropout must agree
        raise ModelBundleError(f"head {got} does not fit kws.json/encoder (expects {want})")
    meta = dict(meta)
    meta["head"] = {**meta["head"], "dropout": got.dropout}
    for k, v in meta["thresholds"].items():
        if not math.isfinite(v):
            raise ModelBundleError(f"threshold for {k!r} is not finite")
    save_encoder(encoder, path)
    state = {k: v.detach().to(torch.float32).contiguous() for k, v in head.state_dict().items()}
    save_file(state, str(path / HEAD_FILE), metadata={"format": "pt"})
    write_meta(path, meta)
    return path


def write_meta(path: str | Path, meta: dict[str, Any]) -> Path:
    """Write a bundle's kws.json (validated first; replaced atomically, so a daemon reloading
    the bundle never reads half a file)."""
    path = Path(path)
    validate_meta(meta, path / META_FILE)
    tmp = path / (META_FILE + ".tmp")
    tmp.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path / META_FILE)
    return path / META_FILE


def make_random_bundle(path: str | Path, config: EncoderConfig | str = "demo",
                       keywords: list[str] | tuple[str, ...] = ("yes", "no"), *, seed: int = 0,
                       window_ms: int = 1000, hop_ms: int = 200,
                       temporal_layers: int = 0) -> Path:
    """A valid bundle with random weights, for tests of the engine and API before a trained
    model exists. `config`: an EncoderConfig, "demo" or "distilhubert"."""
    if isinstance(config, str):
        if config not in ("demo", "distilhubert"):
            raise ValueError(f"config must be 'demo', 'distilhubert' or an EncoderConfig, "
                             f"got {config!r}")
        config = demo_config() if config == "demo" else EncoderConfig()
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
        encoder = DistilHubert(config).eval()
        meta = make_meta(list(keywords), name="random", version=str(seed), window_ms=window_ms,
                         hop_ms=hop_ms, temporal_layers=temporal_layers,
                         training_data={"note": "random weights, untrained"})
        head = KeywordHead(head_config_for(meta, config)).eval()
        with torch.no_grad():
            head.layer_weights.normal_()
    return save_bundle(path, encoder, head, meta)
