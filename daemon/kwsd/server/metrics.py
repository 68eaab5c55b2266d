"""Optional Prometheus endpoint (`[api] metrics = "host:port"`), with prometheus-client.

Gauges are read from `daemon.status()` at scrape time, so nothing runs between scrapes except a
counter thread that reads detections from its own bus subscription (queue-bounded like any
subscriber: if it ever falls behind, the loss shows in kwsd_dropped_events).
"""

from __future__ import annotations

import logging
import threading

from kwsd.address import parse_target
from kwsd.events import EventKind

log = logging.getLogger(__name__)


class Metrics:
    def __init__(self, daemon, address: str) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        self.daemon = daemon
        self.registry = CollectorRegistry()
        self.detections = Counter("kwsd_detections", "Keyword detections, by keyword and source",
                                  ["keyword", "source"], registry=self.registry)
        self.streams_open = Gauge("kwsd_detect_streams_open", "Detect streams open now",
                                  registry=self.registry)
        metrics = self

        class StatusCollector:
            def collect(self):
                status = metrics.daemon.status()
                rtf = GaugeMetricFamily("kwsd_real_time_factor",
                                        "Compute seconds per audio second", labels=["source"])
                over = GaugeMetricFamily("kwsd_input_overflows",
                                         "Input overflows counted per source", labels=["source"])
                for src in status.get("sources", []):
                    rtf.add_metric([str(src.get("id", ""))], float(src.get("rtf", 0) or 0))
                    over.add_metric([str(src.get("id", ""))], float(src.get("overflows", 0) or 0))
                rtf.add_metric(["all"], float(status.get("rtf", 0) or 0))
                yield rtf
                yield over
                yield GaugeMetricFamily("kwsd_vad_duty_cycle",
                                        "Fraction of audio time the VAD gate was open",
                                        value=float(status.get("vad_duty_cycle", 0) or 0))
                dropped = GaugeMetricFamily("kwsd_dropped_events",
                                            "Events lost by slow subscribers",
                                            labels=["subscriber"])
                for sub in status.get("subscribers", []):
                    dropped.add_metric([str(sub.get("name", ""))], float(sub.get("dropped", 0)))
                yield dropped
                yield GaugeMetricFamily("kwsd_uptime_seconds", "Seconds since the daemon started",
                                        value=float(status.get("uptime_s", 0) or 0))
                inf = status.get("inference") or {}
                if "batches" in inf:  # the cross-stream batching scheduler runs
                    yield _histogram(HistogramMetricFamily, "kwsd_inference_batch_size",
                                     "Windows per batch run by the inference scheduler",
                                     inf["batch_size_buckets"], float(inf["windows"]))
                    yield _histogram(HistogramMetricFamily, "kwsd_inference_queue_wait_seconds",
                                     "Time a ready window waited for its batch to start",
                                     inf["queue_wait_buckets"], float(inf["queue_wait_sum_s"]))
                    yield CounterMetricFamily("kwsd_inference_late_windows",
                                              "Windows whose posteriors took longer than a hop",
                                              value=float(inf["late_windows"]))
                    yield CounterMetricFamily("kwsd_inference_dropped_windows",
                                              "Windows that never ran (scheduler stopped or "
                                              "computation failed)",
                                              value=float(inf["dropped_windows"]))

        self.registry.register(StatusCollector())
        target = parse_target(address)
        self._server, self._http_thread = start_http_server(
            target.port, addr=target.host, registry=self.registry)
        self.port = self._server.server_port
        self._sub = daemon.bus.subscribe(
            "metrics", lambda e: e.kind == EventKind.DETECTION, queue_size=1024)
        self._thread = threading.Thread(target=self._count, name="kwsd-metrics", daemon=True)
        self._thread.start()
        log.info("metrics on http://%s:%d/metrics", target.host, self.port)

    def _count(self) -> None:
        for event in self._sub:
            self.detections.labels(event.keyword, event.source_id).inc()

    def streams_changed(self, open_streams: int) -> None:
        self.streams_open.set(open_streams)

    def close(self) -> None:
        self._sub.close()
        self._server.shutdown()
        self._server.server_close()


def _histogram(family, name: str, doc: str, buckets: list, total: float):
    """Per-bucket counts [(upper bound, count)] -> a Prometheus histogram (cumulative)."""
    cumulative, out = 0, []
    for bound, count in buckets:
        cumulative += count
        out.append(("+Inf" if bound == float("inf") else repr(float(bound)), cumulative))
    return family(name, doc, buckets=out, sum_value=total)
