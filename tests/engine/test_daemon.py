import gc
import shutil
import threading
import time
import weakref

import numpy as np
import pytest
from audio.speech import espeak, silence
from kwsd.audio.audiofile import write_wav_16k
from kwsd.config import load_config
from kwsd.engine.daemon import Daemon
from kwsd.events import EventKind


@pytest.fixture()
def setup(tmp_path, random_bundle_path):
    model = tmp_path / "model"
    shutil.copytree(random_bundle_path, model)
    wav = tmp_path / "in.wav"
    write_wav_16k(wav, np.concatenate([silence(1.0), espeak("yes please"), silence(1.0)]))
    cfg = tmp_path / "kwsd.toml"
    cfg.write_text(_toml(model, wav, 0.05))
    return tmp_path, model, wav, cfg


def _toml(model, wav, thr, extra=""):
    return (f'[model]\npath = "{model}"\n[audio]\nsource = "wav"\nwav = "{wav}"\n'
            f'realtime = false\nloop = true\n'
            f'[decision]\nthresholds = {{ yes = {thr}, no = {thr} }}\n{extra}')


def test_serves_events_status_and_streams(setup):
    _, _, _, cfg = setup
    daemon = Daemon(load_config(cfg))
    sub = daemon.bus.subscribe("t", queue_size=1000)
    daemon.start()
    try:
        kinds = set()
        for _ in range(200):
            ev = sub.get(timeout=5)
            assert ev is not None
            kinds.add(ev.kind)
            if len(kinds) == 3:
                break
        assert kinds == {EventKind.SPEECH_BEGIN, EventKind.SPEECH_END, EventKind.DETECTION}
        st = daemon.status()
        assert st["sources"][0]["id"] == "wav" and st["sources"][0]["state"] == "running"
        assert 0 < st["vad_duty_cycle"] <= 1 and st["rtf"] > 0
        assert st["subscribers"][0]["name"] == "t"
        stream = daemon.open_stream("client-1")
        assert daemon.status()["streams_open"] == 1
        stream.run(silence(1.0))
        stream.close()
        assert daemon.status()["streams_open"] == 0
        assert daemon.healthy()
    finally:
        daemon.stop()
    assert sub.closed and daemon.bus.closed and not daemon.serving


def test_reload_bad_config_keeps_running_config_then_good_one_applies(setup,
                                                                     random_bundle_path):
    tmp, model, wav, cfg = setup
    daemon = Daemon(load_config(cfg))
    daemon.start()
    try:
        before = daemon.config
        cfg.write_text(_toml(model, wav, 0.05, "[vad]\naggressiveness = 7\n"))
        assert daemon.reload() is False
        assert "vad.aggressiveness" in daemon.last_reload_error
        assert daemon.config is before and daemon.thresholds == {"yes": 0.05, "no": 0.05}
        cfg.write_text(_toml(model, wav, 0.05, '[decision.thresholds]\nmaybe = 0.3\n'))
        assert daemon.reload() is False            # invalid TOML: table defined twice
        cfg.write_text(_toml(model, wav, 0.3).replace("no = 0.3", "no = 0.3, maybe = 0.2"))
        assert daemon.reload() is False
        assert "decision.thresholds.maybe" in daemon.last_reload_error
        # Model replaced with garbage: the old model keeps running.
        old_bundle = daemon.bundle
        (model / "head.safetensors").write_bytes(b"garbage")
        cfg.write_text(_toml(model, wav, 0.3))
        assert daemon.reload() is False
        assert "model.path" in daemon.last_reload_error and daemon.bundle is old_bundle
        shutil.copy(random_bundle_path / "head.safetensors", model)
        # A good change (threshold + VAD + the model files) applies to the running source.
        cfg.write_text(_toml(model, wav, 0.3, "[vad]\naggressiveness = 3\n"))
        assert daemon.reload() is True, daemon.last_reload_error
        assert daemon.thresholds == {"yes": 0.3, "no": 0.3}
        assert daemon.config.vad.aggressiveness == 3 and daemon.reloads == 1
        assert daemon.healthy()
    finally:
        daemon.stop()


def test_reload_switches_source_atomically(setup):
    tmp, model, wav, cfg = setup
    daemon = Daemon(load_config(cfg))
    daemon.start()
    try:
        cfg.write_text(_toml(model, tmp / "missing.wav", 0.05))
        assert daemon.reload() is False and "missing.wav" in daemon.last_reload_error
        assert daemon.status()["sources"][0]["state"] == "running"
        other = tmp / "other.wav"
        write_wav_16k(other, silence(2.0))
        cfg.write_text(_toml(model, other, 0.05).replace('source = "wav"',
                                                       'source = "wav"\nsource_id = "b"'))
        assert daemon.reload() is True
        assert [s["id"] for s in daemon.status()["sources"]] == ["b"]
    finally:
        daemon.stop()


def test_status_is_safe_while_streams_come_and_go(setup):
    """GetStatus, the health poller and Detect streams call into the daemon from different
    threads at once: status() never raises while client pipelines are opened and closed (a
    WeakSet of streams once raised 'Set changed size during iteration' under load, which
    turned health NOT_SERVING for a poll), and closed pipelines are not kept."""
    _, _, _, cfg = setup
    daemon = Daemon(load_config(cfg))
    daemon.load()
    stop = threading.Event()
    errors: list[BaseException] = []
    calls, opened = [0], [0]
    first = daemon.open_stream("first")
    first.close()
    first_ref = weakref.ref(first)
    del first

    def poll():
        while not stop.is_set():
            try:
                daemon.status()
                calls[0] += 1
            except Exception as exc:  # the failure this test is about
                errors.append(exc)

    def churn():
        while not stop.is_set():
            stream = daemon.open_stream("c")
            stream.close()
            opened[0] += 1

    threads = [threading.Thread(target=poll) for _ in range(2)] + [threading.Thread(target=churn)]
    for t in threads:
        t.start()
    time.sleep(3.0)
    stop.set()
    for t in threads:
        t.join()
    try:
        assert calls[0] > 100 and opened[0] > 20
        assert errors == []
        assert daemon.status()["streams_open"] == 0
        gc.collect()
        assert first_ref() is None, "a closed client pipeline is still referenced"
    finally:
        daemon.stop()
