"""Cross-stream batching (kwsd.model.scheduler): streams whose windows run in one batch get the
posteriors and detections they get alone, on real recordings; the daemon wires the scheduler
from [engine] and reports it; a stopped scheduler fails what waits instead of hanging it.

Tolerance. Every window of a group has the same length, so nothing is padded: a batched row
is the same arithmetic as the window alone except for the order in which the GEMMs sum their
products (blocking depends on the number of rows). That is float32 rounding, a few ulps per
operation through conv stack, two layers and the head: measured with six streams of the
speech recording, at most 3.6e-7 (fp32) and 4.2e-7 (bf16-conv) on a probability (6.5e-6
int8, whose transformer runs row by row but whose conv and head are batched, not tested here).
The test allows 1e-5, well above the rounding and far below any threshold margin.

When the transformer runs in bfloat16 (precision "bf16", kwsd-demo-6's), its input is rounded
to bfloat16's 8-bit mantissa, and a conv output that differs in the sixth decimal (measured:
6.7e-6 batched vs alone, on a CPU with native bf16 kernels) can round to the neighbouring
bfloat16 value: one step of 2^-8 relative in a few inputs, which moved a probability by 3.7e-3
here (0 on a machine whose conv kernels summed in the same order batched and alone). The
transformer and head alone are batch-invariant to 3.9e-7 there. So bf16 is allowed a few
bfloat16 steps, 2e-2; detections must be identical (keyword, sample offsets) at every precision
and their confidences equal within the precision's tolerance.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from kwsd.audio.audiofile import read_audio_16k
from kwsd.config import ConfigError, config_from_dict, default_model_path
from kwsd.engine.pipeline import Pipeline, PipelineSettings
from kwsd.events import EventKind
from kwsd.model.bundle import load_bundle
from recordings import DATA, SPEECH_WAV

TOLERANCE = 1e-5  # float32 rounding
BF16_TOLERANCE = 2e-2  # a few bfloat16 steps (see the module doc)
STREAMS = 4
CHUNK = 1600  # 100 ms, as a Detect client sends


@pytest.fixture(scope="module")
def demo():
    import torch

    torch.set_num_threads(1)
    return load_bundle(default_model_path())


@pytest.fixture(scope="module")
def recordings() -> list[np.ndarray]:
    """STREAMS streams of equal length, each a different order of the real recordings (the
    demo keywords said by telephone callers, and speech without them) with pauses."""
    clips = [read_audio_16k(SPEECH_WAV)] + [read_audio_16k(p) for p in
                                            sorted((DATA / "wuw-dev").rglob("*.wav"))]
    gap = np.zeros(6000, np.int16)
    out = []
    for s in range(STREAMS):
        order = clips[s:] + clips[:s]
        out.append(np.concatenate([x for clip in order for x in (clip, gap)]))
    n = min(len(x) for x in out)
    return [x[:n] for x in out]


def _tolerance(precision: str) -> float:
    from kwsd.model.precision import PRECISIONS

    return BF16_TOLERANCE if PRECISIONS[precision][1] == "bf16" else TOLERANCE


_OPEN: list = []


@pytest.fixture(autouse=True)
def _close_schedulers():
    """Close every scheduler a test made and let its workers end, so that no worker thread is
    still inside torch when the test process exits."""
    yield
    while _OPEN:
        scheduler = _OPEN.pop()
        scheduler.close()
        deadline = time.monotonic() + 10
        while any(t.name.startswith(f"{scheduler.name}-") for t in threading.enumerate()) \
                and time.monotonic() < deadline:
            time.sleep(0.01)


def _scheduler(bundle, precision: str, max_wait_s: float = 0.5):
    from kwsd.model.runtime import shared_inference_encoder
    from kwsd.model.scheduler import InferenceScheduler

    scheduler = InferenceScheduler(shared_inference_encoder(bundle, precision), bundle.head,
                                   precision, max_batch=32, max_wait_s=max_wait_s)
    _OPEN.append(scheduler)
    return scheduler


def _in_threads(fn, n: int) -> list:
    """fn(i) for i < n, each on its own thread at once (as the daemon's streams run)."""
    out: list = [None] * n
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            out[i] = fn(i)
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return out


@pytest.mark.parametrize("precision,cascade", [("fp32", "off"), ("bf16-conv", "off"),
                                               ("bf16", "off"), ("fp32", "on"), ("bf16", "on")])
def test_batched_posteriors_equal_each_stream_alone(demo, recordings, precision, cascade):
    """With the demo's two-stage cascade on, only the windows stage one passes reach the
    scheduler; the others' "no keyword" posteriors must be the same batched or alone too."""
    from kwsd.model.streaming import StreamingClassifier

    def posteriors(samples, scheduler=None):
        clf = StreamingClassifier(demo, precision=precision, scheduler=scheduler,
                                  cascade=cascade)
        posts = []
        for i in range(0, len(samples), CHUNK):
            posts += clf.accept(samples[i:i + CHUNK], i)
        return np.asarray([p.start_sample for p in posts]), np.stack([p.probs for p in posts])

    alone = [posteriors(x) for x in recordings]
    scheduler = _scheduler(demo, precision)
    batched = _in_threads(lambda i: posteriors(recordings[i], scheduler), STREAMS)
    stats = scheduler.stats()
    assert stats["max_batch_seen"] >= 2, stats          # windows really ran together
    total = sum(len(p) for _, p in alone)
    if cascade == "off":
        assert stats["windows"] == total
    else:  # stage one let some windows through and stopped others
        assert 0 < stats["windows"] < total, (stats["windows"], total)
    assert stats["dropped_windows"] == 0
    worst = 0.0
    for (starts_a, probs_a), (starts_b, probs_b) in zip(alone, batched, strict=True):
        assert np.array_equal(starts_a, starts_b)
        worst = max(worst, float(np.abs(probs_a - probs_b).max()))
    assert worst <= _tolerance(precision), worst


def test_batched_detections_equal_each_stream_alone(demo, recordings):
    """The whole live path (VAD gate, classifier, decision) at the most sensitive level, so the
    real keywords in the recordings give detections to compare."""
    settings = PipelineSettings.from_config(config_from_dict(
        {"decision": {"sensitivity": "high"}}))

    def detections(samples, scheduler=None):
        events = Pipeline(demo, "t", settings, scheduler=scheduler).run(samples, CHUNK, 0.0)
        return [e for e in events if e.kind == EventKind.DETECTION]

    alone = [detections(x) for x in recordings]
    assert sum(len(d) for d in alone) >= STREAMS  # something to compare
    precision = settings.precision_for(demo)
    scheduler = _scheduler(demo, precision)
    batched = _in_threads(lambda i: detections(recordings[i], scheduler), STREAMS)
    assert scheduler.stats()["max_batch_seen"] >= 2
    for a, b in zip(alone, batched, strict=True):
        assert [(e.keyword, e.start_sample, e.end_sample) for e in a] == \
            [(e.keyword, e.start_sample, e.end_sample) for e in b]
        for ea, eb in zip(a, b, strict=True):
            assert abs(ea.confidence - eb.confidence) <= _tolerance(precision)


def test_enrolled_keyword_scores_equal_through_the_scheduler(demo, recordings):
    """An enrolled keyword's score comes from the batched window's own hidden states."""
    from kwsd.enrollment.detector import EnrolledKeyword, EnrolledSet
    from kwsd.enrollment.features import frames_of
    from kwsd.enrollment.streaming import EnrolledClassifier
    from kwsd.model.streaming import StreamingClassifier

    # A template: the frames of one window of a real keyword recording.
    clf = StreamingClassifier(demo)
    _, states = clf.window_states(read_audio_16k(DATA / "wuw-dev" / "00017" /
                                                 "WUWII00017_001.wav"))
    template = frames_of(states)[len(states) // 2][:20]
    enrolled = EnrolledSet([EnrolledKeyword(name="hey op", templates=[template],
                                            threshold=0.5, encoder_id="test")])

    def scores(samples, scheduler=None):
        c = EnrolledClassifier(demo, enrolled, scheduler=scheduler)
        posts = []
        for i in range(0, len(samples), CHUNK):
            posts += c.accept(samples[i:i + CHUNK], i)
        return np.stack([p.probs for p in posts])

    alone = [scores(x) for x in recordings[:2]]
    precision = StreamingClassifier(demo).precision
    scheduler = _scheduler(demo, precision)
    batched = _in_threads(lambda i: scores(recordings[i], scheduler), 2)
    for a, b in zip(alone, batched, strict=True):
        assert a.shape == b.shape and a.shape[1] == len(demo.labels) + 1
        # template distance of batched states (fp32: 1e-4)
        assert float(np.abs(a - b).max()) <= max(1e-4, _tolerance(precision))


def test_closed_scheduler_fails_waiting_and_new_windows(random_bundle):
    import torch
    from kwsd.model.scheduler import SchedulerClosed, WindowJob

    scheduler = _scheduler(random_bundle, "fp32")
    started = threading.Event()
    release = threading.Event()

    def slow_assemble(new):  # holds the worker, so a second window has to queue
        started.set()
        release.wait(10)
        return torch.zeros(1, 49, new.shape[-1])

    wave = torch.zeros(1, 16000)
    first = threading.Thread(target=lambda: _expect_error(
        lambda: scheduler.run(WindowJob(wave, None, slow_assemble, 1, 0.2))))
    first.start()
    assert started.wait(10)
    queued_error: list = []
    second = threading.Thread(target=lambda: queued_error.append(_expect_error(
        lambda: scheduler.run(WindowJob(wave, None, lambda n: n, 2, 0.2)))))
    second.start()
    while scheduler.stats()["queued"] == 0:
        second.join(0.01)
    scheduler.close()
    second.join(10)
    assert isinstance(queued_error[0], SchedulerClosed)
    release.set()
    first.join(10)
    with pytest.raises(SchedulerClosed):
        scheduler.run(WindowJob(wave, None, lambda n: n, 3, 0.2))
    assert scheduler.stats()["dropped_windows"] == 1


def _expect_error(fn):
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - the caller inspects it
        return exc
    return None


def test_one_stream_failing_does_not_fail_the_others(random_bundle):
    from kwsd.model.streaming import StreamingClassifier

    scheduler = _scheduler(random_bundle, "fp32", max_wait_s=0.2)
    good = StreamingClassifier(random_bundle, precision="fp32", scheduler=scheduler)
    bad = StreamingClassifier(random_bundle, precision="fp32", scheduler=scheduler)

    def broken(new):
        raise RuntimeError("broken cache")

    bad._assemble = broken
    audio = (np.random.default_rng(0).standard_normal(32000) * 3000).astype(np.int16)
    results = _in_threads(lambda i: _expect_error(
        lambda: (good, bad)[i].accept(audio, 0)), 2)
    assert results[0] is None
    assert isinstance(results[1], RuntimeError) and "broken cache" in str(results[1])


def test_engine_options_are_checked():
    for option, value in (("max_batch", 0), ("max_wait_ms", -1.0), ("device", "tpu"),
                          ("batch_workers", 0)):
        with pytest.raises(ConfigError) as exc:
            config_from_dict({"engine": {option: value}})
        assert exc.value.option == f"engine.{option}"
    engine = config_from_dict({}).engine
    assert (engine.max_batch, engine.max_wait_ms, engine.device, engine.batch_workers) == \
        (32, 20.0, "cpu", 2)


def test_cuda_without_a_cuda_device_is_a_config_error(random_bundle):
    import torch
    from kwsd.engine.daemon import make_scheduler

    if torch.cuda.is_available():
        pytest.skip("torch sees a CUDA device here")
    config = config_from_dict({"engine": {"device": "cuda"}})
    with pytest.raises(ConfigError) as exc:
        make_scheduler(config, random_bundle, PipelineSettings.from_config(config))
    assert exc.value.option == "engine.device" and "no CUDA device" in str(exc.value)


def test_daemon_shares_one_scheduler_and_reports_it(random_bundle):
    from kwsd.engine.daemon import make_scheduler
    from kwsd.server.messages import status_to_pb

    config = config_from_dict({"engine": {"max_batch": 8, "max_wait_ms": 5}})
    settings = PipelineSettings.from_config(config)
    scheduler = make_scheduler(config, random_bundle, settings)
    assert scheduler.max_batch == 8 and scheduler.max_wait_s == 0.005
    assert make_scheduler(config_from_dict({"engine": {"max_batch": 1}}), random_bundle,
                          settings) is None
    audio = (np.random.default_rng(1).standard_normal(24000) * 3000).astype(np.int16)
    pipes = [Pipeline(random_bundle, f"s{i}", settings, scheduler=scheduler) for i in range(3)]
    _in_threads(lambda i: pipes[i].run(audio), 3)
    stats = scheduler.stats()
    assert stats["windows"] == sum(p.windows for p in pipes) > 0
    msg = status_to_pb({"inference": stats}, streams_open=0, serving=True, stopping=False,
                       model_id="m").inference
    assert msg.batching and msg.max_batch == 8 and msg.windows == stats["windows"]
    assert msg.batches == stats["batches"] and msg.device == "cpu"
    off = status_to_pb({"inference": {"device": "cpu", "max_batch": 1, "batching": False}},
                       streams_open=0, serving=True, stopping=False, model_id="m").inference
    assert not off.batching and off.windows == 0


def test_capacity_bench_runs_streams_through_the_scheduler(random_bundle):
    """`kwsd bench --streams`: the figures are there (their values depend on the machine)."""
    from kwsd.engine.capacity import measure_streams

    r = measure_streams(random_bundle, 2, seconds=1.5, warmup_s=0.0, max_wait_ms=5)
    assert r["streams"] == 2 and r["errors"] == [] and r["max_batch"] == 32
    assert r["windows_per_s"] > 0 and r["latency_p50_ms"] is not None
    assert r["batch"]["dropped_windows"] == 0
    alone = measure_streams(random_bundle, 1, seconds=1.0, warmup_s=0.0, max_batch=1)
    assert "batch" not in alone and alone["max_batch"] == 1


def test_bench_streams_cuda_without_cuda_says_why(capsys):
    import torch
    from kwsd.cli import main

    if torch.cuda.is_available():
        pytest.skip("torch sees a CUDA device here")
    assert main(["bench", "--streams", "2", "--device", "cuda", "--configs", "demo"]) == 2
    assert "engine.device" in capsys.readouterr().err
