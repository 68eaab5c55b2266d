import dataclasses

import numpy as np
import pytest
from audio.speech import espeak, silence
from kwsd.audio.chunk import SAMPLE_RATE, AudioChunk
from kwsd.config import DecisionConfig, VadConfig
from kwsd.engine.pipeline import Pipeline, PipelineSettings
from kwsd.events import EventKind


@pytest.fixture(scope="module")
def speech_stream():
    return np.concatenate([silence(1.5), espeak("yes"), silence(1.0), espeak("no thanks"),
                           silence(1.5)])


def _low_thresholds():
    # Random weights: low thresholds make detections happen, so the decision path runs.
    return PipelineSettings(decision=DecisionConfig(thresholds={"yes": 0.05, "no": 0.05}))


def _key(events):
    return [(e.kind, e.keyword, e.start_sample, e.end_sample, round(e.confidence, 5))
            for e in events]


def test_whole_file_equals_any_chunking(random_bundle, speech_stream):
    settings = _low_thresholds()
    ref = Pipeline(random_bundle, "t", settings).run(speech_stream, chunk_samples=1600)
    assert any(e.kind == EventKind.DETECTION for e in ref)
    for chunk in (317, 4000):
        got = Pipeline(random_bundle, "t", settings).run(speech_stream, chunk_samples=chunk)
        assert _key(got) == _key(ref), chunk


def test_speech_events_bracket_detections_and_flush_closes(random_bundle, speech_stream):
    events = Pipeline(random_bundle, "src", _low_thresholds()).run(speech_stream)
    kinds = [e.kind for e in events]
    assert kinds.count(EventKind.SPEECH_BEGIN) == kinds.count(EventKind.SPEECH_END) >= 1
    assert kinds[0] == EventKind.SPEECH_BEGIN and kinds[-1] == EventKind.SPEECH_END
    for e in events:
        assert e.source_id == "src" and e.model_id == random_bundle.model_id
        if e.kind == EventKind.DETECTION:
            assert 0 <= e.start_sample < e.end_sample <= len(speech_stream) + SAMPLE_RATE
            assert e.threshold == 0.05


def test_encoder_idle_while_silent(random_bundle):
    p = Pipeline(random_bundle, "t")
    assert p.run(silence(5.0)) == []
    assert p.windows == 0 and p.vad_duty_cycle == 0.0


def test_vad_disabled_runs_every_window(random_bundle):
    p = Pipeline(random_bundle, "t", PipelineSettings(vad=VadConfig(enabled=False)))
    p.run(silence(3.0))
    hop, win = random_bundle.hop_samples, random_bundle.window_samples
    assert p.windows >= (3 * SAMPLE_RATE - win) // hop


def test_a_gap_in_the_stream_restarts_cleanly(random_bundle, speech_stream):
    p = Pipeline(random_bundle, "t", _low_thresholds())
    half = len(speech_stream) // 2
    p.process(AudioChunk(speech_stream[:half], 0, 0.0))
    # Dropped audio: the next chunk starts 2 s later in stream time.
    events = p.process(AudioChunk(speech_stream[half:], half + 2 * SAMPLE_RATE, 2.0))
    events += p.flush()
    assert all(e.start_sample >= 0 for e in events)


def test_unknown_threshold_override_is_refused(random_bundle):
    from kwsd.config import ConfigError

    settings = dataclasses.replace(PipelineSettings(),
                                   decision=DecisionConfig(thresholds={"maybe": 0.5}))
    with pytest.raises(ConfigError, match="decision.thresholds.maybe"):
        Pipeline(random_bundle, "t", settings)


def test_hop_override_changes_the_window_rate(random_bundle):
    settings = PipelineSettings(vad=VadConfig(enabled=False), hop_ms=100)
    p = Pipeline(random_bundle, "t", settings)
    p.run(silence(3.0))
    assert p.hop == 1600
    assert p.windows >= (3 * SAMPLE_RATE - random_bundle.window_samples) // 1600
