"""The precision a stream runs: the bundle's kws.json `streaming.precision`, overridden by the
config's `engine.precision`; checked on the modules the pipeline really runs, not the label."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from encoder_precision import running_precision
from kwsd.audio.audiofile import write_wav_16k
from kwsd.config import ConfigError, config_from_dict
from kwsd.engine.pipeline import Pipeline, PipelineSettings
from kwsd.model import precision as P
from kwsd.model.bench import speech_like
from kwsd.model.bundle import META_FILE, load_bundle, write_meta
from kwsd.model.precision import PRECISIONS
from kwsd.model.streaming import StreamingClassifier

REPO = Path(__file__).resolve().parents[2]


def bundle_with_precision(src: Path, dst: Path, precision: str | None) -> Path:
    shutil.copytree(src, dst)
    meta = json.loads((dst / META_FILE).read_text())
    if precision is not None:
        meta["streaming"] = {**meta.get("streaming", {}), "precision": precision}
    write_meta(dst, meta)
    return dst


def _pipeline_posteriors(pipeline: Pipeline, audio: np.ndarray) -> np.ndarray:
    got = []
    update = pipeline.decision.update

    def recording(start, end, probs):
        got.append(np.array(probs))
        return update(start, end, probs)

    pipeline.decision.update = recording
    pipeline.run(audio)
    return np.stack(got)


NO_GATE = config_from_dict({"vad": {"enabled": False}})


@pytest.mark.parametrize("precision", list(PRECISIONS))
def test_the_bundle_precision_is_what_the_pipeline_runs(random_bundle_path, tmp_path,
                                                        precision):
    if precision in P.BF16_FALLBACK and not P.native_bf16():
        pytest.skip("this CPU has no native bfloat16: the bundle's bf16 falls back (tested below)")
    bundle = load_bundle(bundle_with_precision(random_bundle_path, tmp_path / "b", precision))
    pipeline = Pipeline(bundle, "t", PipelineSettings.from_config(NO_GATE))
    assert pipeline.precision == precision
    assert running_precision(pipeline.classifier.encoder) == precision
    if precision == "fp32":
        return
    # The numbers are this precision's, not fp32's.
    audio = speech_like(3.0)
    got = _pipeline_posteriors(pipeline, audio)
    own = np.stack([p.probs for p in StreamingClassifier(bundle, precision=precision)
                    .accept(audio, 0)])
    fp32 = np.stack([p.probs for p in StreamingClassifier(bundle, precision="fp32")
                     .accept(audio, 0)])
    n = len(own)
    assert n >= 5 and np.array_equal(got[:n], own)
    assert not np.array_equal(got[:n], fp32)


def test_a_bf16_bundle_runs_without_bf16_where_the_cpu_has_none(random_bundle_path, tmp_path,
                                                                monkeypatch):
    monkeypatch.setattr(P, "native_bf16", lambda: False)
    for asked, runs in P.BF16_FALLBACK.items():
        bundle = load_bundle(bundle_with_precision(random_bundle_path, tmp_path / asked, asked))
        pipeline = Pipeline(bundle, "t", PipelineSettings.from_config(NO_GATE))
        assert pipeline.precision == runs
        assert running_precision(pipeline.classifier.encoder) == runs
        # an explicit engine.precision is obeyed as given
        assert StreamingClassifier(bundle, precision=asked).precision == asked


def test_engine_precision_overrides_the_bundle(random_bundle_path, tmp_path):
    bundle = load_bundle(bundle_with_precision(random_bundle_path, tmp_path / "b", "int8"))
    assert running_precision(Pipeline(bundle, "t").classifier.encoder) == "int8"
    for override in ("fp32", "bf16-conv"):
        config = config_from_dict({"engine": {"precision": override}})
        pipeline = Pipeline(bundle, "t", PipelineSettings.from_config(config))
        assert pipeline.precision == override
        assert running_precision(pipeline.classifier.encoder) == override
    # "" (the default) means the bundle's; a bundle without one runs fp32.
    assert PipelineSettings.from_config(config_from_dict({})).precision_for(bundle) == "int8"
    plain = load_bundle(random_bundle_path)
    assert "precision" not in plain.meta.get("streaming", {})
    assert running_precision(Pipeline(plain, "t").classifier.encoder) == "fp32"


@pytest.mark.parametrize("value", ["fp16", "INT8", 8, "int4"])
def test_a_bad_precision_is_refused_naming_the_option(value):
    with pytest.raises(ConfigError) as err:
        config_from_dict({"engine": {"precision": value}})
    assert err.value.option == "engine.precision"
    assert str(err.value).startswith("engine.precision: ")
    if isinstance(value, str):
        assert repr(value) in str(err.value) and "int8" in str(err.value)


def _kwsd(*args, timeout=180):
    env = dict(os.environ, PYTHONPATH=str(REPO / "daemon"))
    return subprocess.run([sys.executable, "-m", "kwsd", *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_serve_set_engine_precision(random_bundle_path, tmp_path):
    bundle = bundle_with_precision(random_bundle_path, tmp_path / "b", "int8")
    wav = tmp_path / "speech.wav"
    write_wav_16k(wav, speech_like(1.5))
    common = ["serve", "--model", str(bundle), "--wav", str(wav), "--no-api", "--exit-at-end",
              "--set", "audio.realtime=false"]
    bad = _kwsd(*common, "--set", "engine.precision=fp16", timeout=60)
    assert bad.returncode == 2
    assert "engine.precision" in bad.stderr and "'fp16'" in bad.stderr
    ran = _kwsd(*common, "--set", "engine.precision=fp32")
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert "precision fp32" in ran.stderr
    ran = _kwsd(*common)
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert "precision int8" in ran.stderr
