"""The optional Prometheus endpoint serves the daemon's figures."""

from __future__ import annotations

import urllib.request

from kwsd.client import KwsdClient
from running_daemon import start

from .conftest import make_config
from .test_tcp_tls import free_port


def test_metrics_endpoint(random_bundle, padded_wav, speech_wav, sock_dir):
    port = free_port()
    running = start(make_config(random_bundle, padded_wav, sock_dir / "kwsd.sock",
                                realtime=False, api={"metrics": f"127.0.0.1:{port}"}))
    try:
        assert running.daemon.wait_sources(60)
        with KwsdClient(running.address) as client:
            client.detect_wav(speech_wav)
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
        text = text.decode()
    finally:
        running.stop()
    for name in ("kwsd_real_time_factor{source=\"file\"}", "kwsd_real_time_factor{source=\"all\"}",
                 "kwsd_vad_duty_cycle", "kwsd_input_overflows{source=\"file\"}",
                 "kwsd_detect_streams_open 0.0", "kwsd_uptime_seconds",
                 "kwsd_dropped_events{subscriber=\"metrics\"} 0.0"):
        assert name in text, name
    assert "# TYPE kwsd_detections_total counter" in text
    # The batching scheduler (on by default) ran the file's and the Detect stream's windows.
    assert "# TYPE kwsd_inference_batch_size histogram" in text
    assert 'kwsd_inference_batch_size_bucket{le="+Inf"}' in text
    assert "kwsd_inference_queue_wait_seconds_count" in text
    assert "kwsd_inference_dropped_windows_total 0.0" in text
    assert "kwsd_inference_late_windows_total" in text
