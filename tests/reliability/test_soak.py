"""Soak: a long synthesised program (keywords at known times inside non-keyword speech, noise
and silence) through one Pipeline, faster than real time, against a reference pass that
chunks the same audio differently: identical events, bounded RSS after warm-up.

Short in CI (2 minutes of audio); `--run-slow` runs the 2-hour version (about 10 CPU minutes
per pass on this machine; both passes run in parallel, niced)."""

from __future__ import annotations

import pytest

from .soak_run import soak

RSS_GROWTH_LIMIT_MB = 5.0


def _check(result) -> None:
    s = result["soak"]
    print(f"\nsoak: {s['audio_s']:.0f} s audio, {result['events']} events "
          f"({result['detections']} detections), identical={result['identical']}, "
          f"RSS {s['rss_warm_mb']} -> max {s['rss_max_after_warmup_mb']} MB "
          f"(+{s['rss_growth_after_warmup_mb']} MB), wall {s['wall_s']} s, cpu {s['cpu_s']} s")
    assert result["identical"], result["first_difference"]
    assert result["detections"] > 0, "the low threshold should make random weights fire"
    assert result["keywords_scheduled"] > 0
    assert s["rss_growth_after_warmup_mb"] <= RSS_GROWTH_LIMIT_MB, s["rss"]


def test_soak_short(random_bundle, tmp_path):
    _check(soak(str(random_bundle), 120.0, tmp_path, warmup_s=40.0, rss_every_s=10.0,
                timeout_s=900))


@pytest.mark.slow
def test_soak_two_hours(random_bundle, tmp_path):
    _check(soak(str(random_bundle), 2 * 3600.0, tmp_path, warmup_s=300.0, rss_every_s=60.0,
                timeout_s=6 * 3600))
