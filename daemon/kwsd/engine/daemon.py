"""The running daemon: one loaded model, its sources, their pipelines, the event bus.

Threads: each source captures on its own thread (or PortAudio's), each source has one
inference thread that reads its chunks and runs its pipeline, and the gRPC server's threads
run client streams (`open_stream`) on the same shared model. Every pipeline hands its windows
to one inference scheduler (kwsd.model.scheduler: one worker thread that runs the windows that
are ready as one batch) unless `engine.max_batch` is 1 on the CPU. Reload builds everything new
first (config, model, pipelines, sources) and swaps only when all of it succeeded, so a bad
reload leaves the running daemon exactly as it was.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from kwsd.audio.source import AudioSource, SourceState
from kwsd.config import Config, ConfigError, load_config
from kwsd.engine.bus import EventBus
from kwsd.engine.decision import resolve_thresholds, sensitivity_thresholds
from kwsd.engine.pipeline import Pipeline, PipelineSettings

if TYPE_CHECKING:  # kwsd.model and kwsd.enrollment import torch: loaded with the model
    from kwsd.enrollment.detector import EnrolledSet
    from kwsd.enrollment.live import KeywordsWatcher
    from kwsd.model.bundle import ModelBundle
    from kwsd.model.scheduler import InferenceScheduler

log = logging.getLogger(__name__)

HEARTBEAT_S = 0.25  # the inference loop wakes at least this often, audio or not
IDLE_BATCH_S = 0.2  # live source, gate closed: take the queued blocks in batches this long


class DaemonError(RuntimeError):
    """The daemon cannot start (model or source unusable); the message says why."""


def make_source(config: Config) -> AudioSource:
    """The configured source (not started)."""
    audio = config.audio
    source_id = audio.source_id or audio.source
    if audio.source == "wav":
        from kwsd.audio.wav_source import WavSource
        return WavSource(audio.wav, source_id, realtime=audio.realtime, chunk_ms=audio.chunk_ms,
                         loop=audio.loop, queue_ms=audio.queue_ms)
    if audio.source == "stdin":
        from kwsd.audio.stdin_source import StdinSource
        return StdinSource(source_id, rate=audio.stdin_rate, channels=audio.stdin_channels,
                           chunk_ms=audio.chunk_ms, queue_ms=audio.queue_ms)
    from kwsd.audio.microphone import MicrophoneSource
    return MicrophoneSource(audio.device, source_id, chunk_ms=audio.chunk_ms,
                            queue_ms=audio.queue_ms, retry_initial_s=audio.retry_initial_s,
                            retry_max_s=audio.retry_max_s,
                            stall_timeout_s=audio.stall_timeout_s)


def _bundle_signature(path: Path) -> tuple:
    """Changes when any file of the bundle changes (reload only reloads a changed model)."""
    try:
        return tuple(sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns)
                            for p in path.iterdir() if p.is_file()))
    except OSError:
        return ()


def load_model(path: Path, warmup: bool = True, precision: str = "") -> ModelBundle:
    """Load a bundle and run one inference (so the first real window is not the slow one) in
    the precision the streams will run (engine.precision, "" = the bundle's)."""
    from kwsd.model.bundle import load_bundle
    from kwsd.model.streaming import StreamingClassifier

    bundle = load_bundle(path)
    if warmup:
        # both stages: a cascade's stage one would reject silence and leave the encoder cold
        for cascade in ("off", "on") if bundle.cascade is not None else ("off",):
            clf = StreamingClassifier(bundle, precision=precision or None, cascade=cascade)
            clf.accept(np.zeros(int(bundle.window_samples) + int(bundle.hop_samples),
                                np.int16), 0)
    return bundle


def make_scheduler(config: Config, bundle: ModelBundle, settings: PipelineSettings
                   ) -> InferenceScheduler | None:
    """The inference scheduler all pipelines of `bundle` share (engine.max_batch,
    engine.max_wait_ms, engine.device); None when every stream should run its windows alone
    (max_batch 1 on the CPU). ConfigError names the option for a device torch cannot use."""
    from kwsd.model.runtime import shared_inference_encoder
    from kwsd.model.scheduler import InferenceScheduler, check_device

    engine = config.engine
    try:
        check_device(engine.device)
    except ValueError as exc:
        raise ConfigError("engine.device", str(exc)) from None
    if engine.max_batch <= 1 and engine.device == "cpu":
        return None
    precision = settings.precision_for(bundle)
    try:
        return InferenceScheduler(shared_inference_encoder(bundle, precision), bundle.head,
                                  precision, max_batch=engine.max_batch,
                                  max_wait_s=engine.max_wait_ms / 1000, device=engine.device,
                                  workers=engine.batch_workers)
    except ValueError as exc:
        raise ConfigError("engine.device", str(exc)) from None


class SourceRunner:
    """One source + its pipeline + the inference thread between them."""

    def __init__(self, source: AudioSource, pipeline: Pipeline, bus: EventBus) -> None:
        self.source = source
        self.pipeline = pipeline
        self.bus = bus
        self.heartbeat = time.monotonic()
        self._next_pipeline: Pipeline | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"infer-{source.source_id}",
                                        daemon=True)
        self.done = threading.Event()

    def start(self) -> None:
        self.source.start()
        self._thread.start()

    def replace_pipeline(self, pipeline: Pipeline) -> None:
        """Takes effect between two chunks (the inference thread swaps it)."""
        self._next_pipeline = pipeline

    def stop(self, timeout: float = 1.0) -> None:
        self._stop.set()
        self.source.stop()
        if self._thread.ident is not None:  # a daemon stopped before its sources started
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self.heartbeat = time.monotonic()
                if self._next_pipeline is not None:
                    self.pipeline, self._next_pipeline = self._next_pipeline, None
                chunk = self.source.read(HEARTBEAT_S)
                if chunk is None:
                    if self.source.finished:
                        for event in self.pipeline.flush():
                            self.bus.publish(event)
                        log.info("%s: %s", self.source.source_id, self.source.detail or "ended")
                        return
                    continue
                for event in self.pipeline.process(chunk):
                    self.bus.publish(event)
                if (self.source.live and not self.pipeline.gate.is_open
                        and self.source.pending() == 0):
                    # Nobody speaks: no need to look at every 50 ms block the moment it
                    # arrives. Sleeping lets blocks queue up and be taken in one go (fewer
                    # wake-ups = less CPU all day); the onset is found at most this much
                    # later, and the pre-roll already covers the audio before it.
                    self.heartbeat = time.monotonic()
                    self._stop.wait(IDLE_BATCH_S)
        except Exception:
            log.exception("%s: inference thread failed", self.source.source_id)
            self.source.state = SourceState.DEGRADED
            self.source.detail = "inference thread failed (see log)"
        finally:
            self.done.set()


class Daemon:
    """See TEAM-NOTES: `.bundle`, `.bus`, `.config`, `.status()`, `.open_stream()`, `.reload()`,
    `.stop()`, `.serving`, `.stopping`."""

    def __init__(self, config: Config, bus: EventBus | None = None) -> None:
        self.config = config
        self.bus = bus or EventBus()
        self.bundle: ModelBundle | None = None
        self.settings = PipelineSettings.from_config(config)
        self.thresholds: dict[str, float] = {}
        self.serving = False
        self.stopping = False
        self.started_at = time.monotonic()
        self.reloads = 0
        self.last_reload_error = ""
        self._runners: list[SourceRunner] = []
        # Open client pipelines. A plain set under `_lock`, pruned of closed ones, because a
        # WeakSet raises 'changed size during iteration' when threads add and read it at once.
        self._streams: set[Pipeline] = set()
        self._lock = threading.RLock()
        self._bundle_sig: tuple = ()
        self._closed_stats = {"audio_s": 0.0, "busy_s": 0.0, "open_s": 0.0}
        self.enrolled: EnrolledSet | None = None  # kwsd.enrollment: keywords a user enrolled
        self._keywords_watcher: KeywordsWatcher | None = None
        self.scheduler: InferenceScheduler | None = None  # shared by every pipeline

    # --- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        """Load the model (with warm-up), then start sources and inference threads."""
        self.load()
        self.start_sources()

    def load(self) -> None:
        """Load the model and build the sources, starting nothing (so subscribers can attach
        before the first event)."""
        import torch

        from kwsd.model.bundle import ModelBundleError

        torch.set_num_threads(self.config.engine.torch_threads)
        path = self.config.model_path()
        t0 = time.monotonic()
        try:
            self.bundle = load_model(path, self.config.engine.warmup,
                                     self.config.engine.precision)
        except ModelBundleError as exc:
            raise DaemonError(f"model.path: {exc}") from None
        self._bundle_sig = _bundle_signature(path)
        self.scheduler = make_scheduler(self.config, self.bundle, self.settings)
        from kwsd.enrollment.live import KeywordsWatcher, load_enrolled

        self.enrolled = load_enrolled(self.bundle)
        if self._keywords_watcher is None:
            self._keywords_watcher = KeywordsWatcher(self.refresh_enrolled)
            self._keywords_watcher.start()
        self.thresholds = resolve_thresholds(
            self.bundle.keywords,
            sensitivity_thresholds(self.bundle, self.settings.decision.sensitivity),
            self.settings.decision)
        log.info("model %s loaded from %s in %.2f s (keywords: %s; precision %s)",
                 self.bundle.model_id, path, time.monotonic() - t0,
                 ", ".join(self.bundle.keywords), self.settings.precision_for(self.bundle))
        runners = self._make_runners(self.config, self.bundle, self.settings, self.scheduler)
        with self._lock:
            self._runners = runners

    def start_sources(self) -> None:
        with self._lock:
            runners = list(self._runners)
        for runner in runners:
            runner.start()
        self.started_at = time.monotonic()
        self.serving = True

    def _make_runners(self, config: Config, bundle: ModelBundle, settings: PipelineSettings,
                      scheduler: InferenceScheduler | None) -> list[SourceRunner]:
        """The configured source's runner; none for `audio.source = "none"` (a fleet member
        that only serves clients' Detect streams has no microphone to lose)."""
        from kwsd.audio.source import SourceError

        if config.audio.source == "none":
            return []
        try:
            source = make_source(config)
        except SourceError as exc:
            raise DaemonError(f"audio: {exc}") from None
        pipeline = Pipeline(bundle, source.source_id, settings, enrolled=self.enrolled,
                            scheduler=scheduler)
        return [SourceRunner(source, pipeline, self.bus)]

    def stop(self, timeout: float = 1.5) -> None:
        """Stop sources and threads, then close the bus (every subscriber's stream ends)."""
        self.stopping = True
        self.serving = False
        if self._keywords_watcher is not None:
            self._keywords_watcher.stop()
        deadline = time.monotonic() + timeout
        with self._lock:
            runners = list(self._runners)
        for runner in runners:
            runner.stop(max(0.05, deadline - time.monotonic()))
        if self.scheduler is not None:
            self.scheduler.close()
        self.bus.close()

    def wait_sources(self, timeout: float | None = None) -> bool:
        """Block until every source has ended (files); True if they have."""
        with self._lock:
            runners = list(self._runners)
        deadline = None if timeout is None else time.monotonic() + timeout
        for runner in runners:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not runner.done.wait(left):
                return False
        return True

    @property
    def sources_finished(self) -> bool:
        with self._lock:
            return all(r.done.is_set() for r in self._runners)

    # --- client streams ------------------------------------------------------------------------
    def open_stream(self, source_id: str) -> Pipeline:
        """A fresh pipeline for a client's audio, sharing the loaded model."""
        if self.bundle is None or self.stopping:
            raise DaemonError("not serving")
        pipeline = Pipeline(self.bundle, source_id, self.settings, enrolled=self.enrolled,
                            scheduler=self.scheduler)
        with self._lock:
            self._open_streams()
            self._streams.add(pipeline)
        return pipeline

    def _open_streams(self) -> list[Pipeline]:
        """Forget closed client pipelines; the open ones. Caller holds `_lock`."""
        self._streams = {s for s in self._streams if not s.closed}
        return list(self._streams)

    # --- health and status ---------------------------------------------------------------------
    def healthy(self, max_age_s: float = 5.0) -> bool:
        """True while every inference loop keeps turning (audio or not): the watchdog's test."""
        now = time.monotonic()
        with self._lock:
            runners = list(self._runners)
        for r in runners:
            if r.done.is_set():
                continue  # a file that ended is not a stuck pipeline
            if not r.alive or now - r.heartbeat > max_age_s:
                return False
        return True

    def status(self) -> dict:
        with self._lock:
            runners = list(self._runners)
        sources = []
        audio = busy = opened = 0.0
        for r in runners:
            p = r.pipeline
            info = r.source.info()
            info["rtf"] = round(p.rtf, 4)
            info["vad_duty_cycle"] = round(p.vad_duty_cycle, 4)
            info["detections"] = p.detections
            info["gate_open"] = bool(p.gate.is_open)
            sources.append(info)
            audio += p.audio_s
            busy += p.busy_s
            opened += p.vad_duty_cycle * p.audio_s
        with self._lock:
            streams = self._open_streams()
        return {
            "uptime_s": round(time.monotonic() - self.started_at, 3),
            "sources": sources,
            "vad_duty_cycle": round(opened / audio, 4) if audio else 0.0,
            "rtf": round(busy / audio, 4) if audio else 0.0,
            "overflows": sum(s["overflows"] for s in sources),
            "streams_open": len(streams),
            "subscribers": self.bus.stats(),
            "serving": self.serving,
            "stopping": self.stopping,
            "model_id": getattr(self.bundle, "model_id", ""),
            "reloads": self.reloads,
            "last_reload_error": self.last_reload_error,
            "inference": (self.scheduler.stats() if self.scheduler is not None else
                          {"device": "cpu", "max_batch": 1, "batching": False}),
        }

    def status_line(self) -> str:
        """One line for systemd's STATUS= (what `systemctl status` shows)."""
        st = self.status()
        parts = []
        for s in st["sources"]:
            parts.append(f"{s['id']} {s['state']}" + (f" ({s['detail']})" if s["state"] !=
                                                        "running" else ""))
        det = sum(s["detections"] for s in st["sources"])
        return (f"{'; '.join(parts) or 'no source'}; speech {st['vad_duty_cycle'] * 100:.1f}% "
                f"of audio; rtf {st['rtf']:.3f}; {det} detections; "
                f"{len(st['subscribers'])} subscribers")

    def refresh_enrolled(self) -> None:
        """Enrolled keywords changed on disk: the sources' pipelines switch between two chunks
        (like a reload); client streams opened from now on get them too."""
        from kwsd.enrollment.live import load_enrolled

        if self.bundle is None or self.stopping:
            return
        self.enrolled = load_enrolled(self.bundle)
        with self._lock:
            runners = list(self._runners)
        for r in runners:
            r.replace_pipeline(Pipeline(self.bundle, r.source.source_id, self.settings,
                                        enrolled=self.enrolled, scheduler=self.scheduler))

    # --- reload --------------------------------------------------------------------------------
    def reload(self, config: Config | None = None) -> bool:
        """Re-read the config file (same CLI overrides) and apply thresholds, VAD, model and
        source atomically. On any error: log why, keep everything running as it was, False."""
        from kwsd.model.bundle import ModelBundleError

        try:
            new = config or load_config(self.config.path or None, self.config.overrides,
                                        missing_ok=not self.config.path)
            path = new.model_path()
            sig = _bundle_signature(path)
            bundle = self.bundle
            if path != self.config.model_path() or sig != self._bundle_sig:
                try:
                    bundle = load_model(path, new.engine.warmup, new.engine.precision)
                except ModelBundleError as exc:
                    raise ConfigError("model.path", str(exc)) from None
            settings = PipelineSettings.from_config(new)
            scheduler = self.scheduler
            if (bundle is not self.bundle or new.engine != self.config.engine
                    or settings.precision_for(bundle) != self.settings.precision_for(bundle)):
                # Streams opened before the reload keep the old one; its worker ends when
                # they do (idle exit).
                scheduler = make_scheduler(new, bundle, settings)
            thresholds = resolve_thresholds(
                bundle.keywords,
                sensitivity_thresholds(bundle, settings.decision.sensitivity),
                settings.decision)
            enrolled = self.enrolled
            if bundle is not self.bundle:
                from kwsd.enrollment.live import load_enrolled

                enrolled = self.enrolled = load_enrolled(bundle)
            source_changed = new.audio != self.config.audio
            with self._lock:
                old_runners = list(self._runners)
            if source_changed:
                new_runners = self._make_runners(new, bundle, settings, scheduler)
            else:
                new_pipelines = [Pipeline(bundle, r.source.source_id, settings,
                                          enrolled=enrolled, scheduler=scheduler)
                                 for r in old_runners]
        except (ConfigError, DaemonError, ValueError, OSError) as exc:
            self.last_reload_error = str(exc)
            log.error("reload failed, keeping the running configuration: %s", exc)
            return False
        # Everything is built: swap.
        if source_changed:
            for r in old_runners:
                r.stop(0.5)
            with self._lock:
                self._runners = new_runners
            for r in new_runners:
                r.start()
        else:
            for r, p in zip(old_runners, new_pipelines, strict=True):
                r.replace_pipeline(p)
        import torch
        torch.set_num_threads(new.engine.torch_threads)
        model_changed = bundle is not self.bundle
        self.bundle, self.settings, self.thresholds, self.config = bundle, settings, thresholds, new
        self.scheduler = scheduler
        self._bundle_sig = _bundle_signature(path)
        self.reloads += 1
        self.last_reload_error = ""
        log.info("reloaded %s%s%s", new.path or "(defaults)",
                 f"; model {bundle.model_id}" if model_changed else "",
                 "; source restarted" if source_changed else "")
        return True
