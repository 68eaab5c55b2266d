"""Load: subscribers plus concurrent real-time Detect streams on a real `kwsd serve` (its own
source: speech played in real time, standing in for the microphone), a subscriber that never
reads, a client that sends as fast as it can. Behaviour is asserted (nothing lost, nobody
affected, memory bounded); speed (real time held, latency, CPU) is printed, never asserted.

CI: 20 subscribers, 2 streams, 10 s. `--run-slow`: 100 subscribers and a ramp of streams
until real time no longer holds (scripts/load-test.py prints the same figures)."""

from __future__ import annotations

import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
from kwsd.api.v1 import kwsd_pb2 as pb
from kwsd.api.v1 import kwsd_pb2_grpc as pb_grpc
from running_daemon import LOW_THRESHOLD, start

from .conftest import REPO
from .load import NON_READER_OPTIONS, run_load
from .server import make_config, reference_detections

RSS_BOUND_MB = 200.0  # growth during one step with a few streams (a fast client sending MBs)
RSS_PER_STREAM_MB = 25.0  # measured 10-16 MB per open stream (pipeline state, gRPC buffers)


def rss_bound_mb(streams: int) -> float:
    """Memory may grow with the streams open at once, never with the audio they send."""
    return max(RSS_BOUND_MB, 60.0 + RSS_PER_STREAM_MB * streams)


@pytest.fixture(scope="module")
def load_audio(clip_pool) -> np.ndarray:
    from .synth import Program

    return Program(clip_pool, 30.0, seed=7, keyword_every_s=8.0).samples()


@pytest.fixture(scope="module")
def serve(random_bundle, load_audio, tmp_path_factory):
    from kwsd.audio.audiofile import write_wav_16k

    sys.path.insert(0, str(REPO / "scripts"))
    work = Path(tempfile.mkdtemp(prefix="kwsd-l-", dir="/tmp"))
    wav = work / "speech.wav"
    write_wav_16k(wav, load_audio)
    import importlib.util
    spec = importlib.util.spec_from_file_location("load_test_script",
                                                  REPO / "scripts" / "load-test.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    proc = script.start_daemon(random_bundle, wav, work / "kwsd.sock", LOW_THRESHOLD, 10, 40,
                               work / "serve.log")
    proc.address = f"unix:{work / 'kwsd.sock'}"
    proc.script = script
    proc.log_path = work / "serve.log"
    yield proc
    proc.terminate()
    proc.wait(30)
    shutil.rmtree(work, ignore_errors=True)


def _check_subscribers_agree(lists: list[list[tuple]]) -> None:
    """Every subscriber saw the same events, and none was skipped while it was attached.

    Subscribers attach one after another (in list order) while the daemon's own source already
    publishes, so a later one may start a few events after an earlier one; at the end the last
    one or two may still be in flight when the calls are cancelled."""
    by_seq: dict[int, tuple] = {}
    for events in lists:
        for e in events:
            assert by_seq.setdefault(e[0], e) == e, f"subscribers disagree on event {e[0]}"
    reference = [by_seq[q] for q in sorted(by_seq)]
    last_attached_first = lists[-1][0][0] if lists[-1] else None
    for events in lists:
        assert events, "a subscriber received nothing"
        first, last = events[0][0], events[-1][0]
        assert events == [e for e in reference if first <= e[0] <= last], "events skipped"
        assert sum(e[0] > last for e in reference) <= 2, "a subscriber stopped early"
        if last_attached_first is not None:  # attached no later than the last one
            assert first <= last_attached_first


def _check(r: dict, random_bundle, load_audio, serve) -> None:
    print(f"\nload: {r['streams']} streams + {r['subscribers']} subscribers for "
          f"{r['duration_s']} s: held={r['held']} latency p50 {r['latency_p50_s']} s p95 "
          f"{r['latency_p95_s']} s ({r['detections']} detections), daemon CPU "
          f"{r['daemon_cpu_percent']} %, RSS {r['rss_start_mb']} -> {r['rss_max_mb']} MB, "
          f"max lag {r['max_lag_s']} s, overflows {r['source_overflows']}, fast client sent "
          f"{r['fast_sent_mb']} MB")
    assert r["stream_errors"] == [] and r["subscriber_errors"] == []
    assert r["fast_error"] == ""
    assert r["subscriber_lost"] == 0
    _check_subscribers_agree([s.events for s in r["_subs"]])
    assert r["rss_max_mb"] - r["rss_start_mb"] < rss_bound_mb(r["streams"]), \
        "memory grew under load"
    if r["source_overflows"] == 0:  # a machine too busy to keep up drops audio, counted
        check = serve.script.source_check(random_bundle, load_audio, r["_subs"],
                                          LOW_THRESHOLD)
        print(f"source: {check}")
        assert check["source_identical"] in (True, None), "the source lost detections"


def test_load_short(serve, random_bundle, load_audio):
    r = run_load(serve.address, load_audio, streams=2, subscribers=20, duration_s=10.0,
                 daemon_pid=serve.pid, fast_chunk_bytes=64 * 1024)
    _check(r, random_bundle, load_audio, serve)
    assert r["fast_sent_mb"] > 0


@pytest.mark.slow
def test_load_ramp_100_subscribers(serve, random_bundle, load_audio):
    held = []
    for n in (1, 2, 3, 4, 6, 8, 10, 12, 16, 20, 24, 32):
        r = run_load(serve.address, load_audio, streams=n, subscribers=100, duration_s=30.0,
                     daemon_pid=serve.pid)
        _check(r, random_bundle, load_audio, serve)
        if not r["held"]:
            break
        held.append(n)
    print(f"real time held up to {max(held, default=0)} streams with 100 subscribers")


def _read_into(call, got: list) -> None:
    try:
        for e in call:
            got.append((e.sequence, e.events_lost))
    except grpc.RpcError:  # cancelled at the end of the test
        pass


def test_non_reader_does_not_affect_others(random_bundle, sock_dir, tmp_path):
    """Bursts of events on the daemon's real bus: five subscribers that read get every event,
    in order, none lost; one that never reads loses the oldest ones (counted in its stream and
    in status); publishing never waited for it."""
    from kwsd.audio.audiofile import write_wav_16k
    from kwsd.events import Event, EventKind

    wav = tmp_path / "silence.wav"
    write_wav_16k(wav, np.zeros(16000, np.int16))
    running = start(make_config(random_bundle, sock_dir / "kwsd.sock", wav))
    total, burst = 3000, 100
    try:
        readers = []
        with grpc.insecure_channel(running.address) as ch, \
                grpc.insecure_channel(running.address, options=NON_READER_OPTIONS) as lazy_ch:
            lazy = pb_grpc.KwsdStub(lazy_ch).Subscribe(pb.SubscribeRequest(
                client_name="never-reads", include_speech_activity=True))
            lazy.initial_metadata()
            for i in range(5):
                call = pb_grpc.KwsdStub(ch).Subscribe(pb.SubscribeRequest(
                    client_name=f"reader{i}", include_speech_activity=True))
                call.initial_metadata()
                got: list = []
                t = threading.Thread(target=_read_into, args=(call, got), daemon=True)
                t.start()
                readers.append((call, got, t))
            publish_s = 0.0
            for start_i in range(0, total, burst):
                t0 = time.perf_counter()
                for i in range(start_i, start_i + burst):
                    running.daemon.bus.publish(Event(
                        kind=EventKind.SPEECH_BEGIN, source_id="burst", start_sample=i,
                        end_sample=i, wall_time=time.time(), model_id="m"))
                publish_s = max(publish_s, time.perf_counter() - t0)
                deadline = time.monotonic() + 60
                while any(len(g) < start_i + burst for _, g, _ in readers):
                    assert time.monotonic() < deadline, "readers stalled"
                    time.sleep(0.01)
            stats = {s.name: s.events_lost for s in pb_grpc.KwsdStub(ch).GetStatus(
                pb.GetStatusRequest()).subscribers}
            for call, _, _ in readers:
                call.cancel()
            lazy.cancel()
    finally:
        running.stop()
    print(f"\nnon-reader lost {stats.get('grpc:never-reads')} of {total}; slowest burst of "
          f"{burst} publishes took {publish_s * 1000:.1f} ms")
    for _, got, _ in readers:
        sequences = [s for s, _ in got]
        assert sequences == sorted(sequences) and len(sequences) == total
        assert sequences[-1] - sequences[0] == total - 1 and all(lost == 0 for _, lost in got)
    assert all(stats[f"grpc:reader{i}"] == 0 for i in range(5))
    assert stats["grpc:never-reads"] > total // 2  # its queue (256) and window hold the rest


def test_hundred_subscribers_then_the_limit(random_bundle, sock_dir, tmp_path):
    """100 subscribers fit the default limit; with `max_subscribers = 100` the 101st is refused
    with RESOURCE_EXHAUSTED and the others stay open."""
    from kwsd.audio.audiofile import write_wav_16k

    wav = tmp_path / "silence.wav"
    write_wav_16k(wav, np.zeros(16000, np.int16))
    for limit in (None, 100):
        api = {} if limit is None else {"max_subscribers": limit}
        running = start(make_config(random_bundle, sock_dir / f"k{limit}.sock", wav, api=api))
        try:
            with grpc.insecure_channel(running.address) as ch:
                stub = pb_grpc.KwsdStub(ch)
                calls = [stub.Subscribe(pb.SubscribeRequest(client_name=f"s{i}"))
                         for i in range(100)]
                for c in calls:
                    c.initial_metadata()
                assert len(stub.GetStatus(pb.GetStatusRequest()).subscribers) == 100
                extra = stub.Subscribe(pb.SubscribeRequest(client_name="extra"), timeout=30)
                if limit is None:
                    extra.initial_metadata()
                    extra.cancel()
                    assert extra.code() == grpc.StatusCode.CANCELLED  # it was open
                else:
                    with pytest.raises(grpc.RpcError) as info:
                        list(extra)
                    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                for c in calls:
                    c.cancel()
        finally:
            running.stop()


def test_fast_client_memory_bounded_and_stream_unchanged(serve, random_bundle, load_audio):
    """A client pushing 64 KiB chunks as fast as it can for 8 s next to a real-time stream:
    the daemon's RSS stays bounded, the real-time stream's detections are unchanged, and the
    cancelled fast stream frees its slot. (That flow control holds such a client back is
    tests/api/test_flow_control.py.)"""
    from kwsd.config import config_from_dict

    from .load import FastStream, RealtimeStream, proc_rss_mb

    with grpc.insecure_channel(serve.address) as ch, grpc.insecure_channel(serve.address) as fc:
        fast = FastStream(fc, 64 * 1024)
        rss0 = proc_rss_mb(serve.pid)
        fast.start()
        rt = RealtimeStream(ch, "witness", load_audio[: 16000 * 8], 8.0)
        rt.start()
        rss_max = rss0
        while rt.is_alive():
            rss_max = max(rss_max, proc_rss_mb(serve.pid))
            time.sleep(0.25)
        fast.end()
        stub = pb_grpc.KwsdStub(ch)
        deadline = time.monotonic() + 120
        while stub.GetStatus(pb.GetStatusRequest()).streams_open and \
                time.monotonic() < deadline:
            time.sleep(0.2)
        assert stub.GetStatus(pb.GetStatusRequest()).streams_open == 0
    print(f"\nfast client sent {fast.sent_bytes / 2**20:.1f} MB in 8 s; daemon RSS "
          f"{rss0:.0f} -> max {rss_max:.0f} MB; witness lag {rt.stats.max_lag_s:.3f} s")
    assert fast.error == "" and rt.stats.error == ""
    assert rss_max - rss0 < RSS_BOUND_MB
    config = config_from_dict({"decision": {"thresholds": {"yes": LOW_THRESHOLD,
                                                           "no": LOW_THRESHOLD}}})
    want = reference_detections(random_bundle, load_audio[: 16000 * 8], config)
    assert rt.stats.detections == len(want)
