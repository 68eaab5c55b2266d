"""Keyword detection end to end: TTS keywords through the virtual microphone into `kwsd serve`
with the trained demo model. Needs models/demo (the demo bundle); skipped until it exists."""

from pathlib import Path

import numpy as np
import pytest
from kwsd.audio.chunk import SAMPLE_RATE

from .serve_proc import Serve
from .speech import espeak, silence

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "models" / "demo"
TOLERANCE = int(0.3 * SAMPLE_RATE)
# Keywords as a person would type them to a TTS engine (the demo vocabulary, issue 7).
SPOKEN = {"computer": "computer", "voyager": "voyager", "wildfire": "wildfire",
          "blueberry": "blueberry", "grasshopper": "grasshopper", "terminator": "terminator"}
NON_KEYWORD = ["the weather is nice today", "please pass me the salt and pepper"]

pytestmark = pytest.mark.skipif(not (DEMO / "kws.json").is_file(),
                                reason="needs the trained demo model in models/demo "
                                       "(issue 7); a random-weight model cannot spot keywords")


def _keywords_in_model() -> list[str]:
    from kwsd.model.bundle import load_bundle

    return [k for k in load_bundle(DEMO).keywords if k in SPOKEN]


def test_spoken_keywords_are_reported_with_their_offsets(virtual_mic):
    keywords = _keywords_in_model()
    assert keywords, "the demo model has none of the keywords this test speaks"
    serve = Serve("--model", str(DEMO))
    try:
        serve.wait_log("capturing from", 120)
        serve.wait_log("ready:", 120)
        calib = espeak("hello")
        virtual_mic.feed(silence(1.0))
        i_calib = virtual_mic.feed(calib)
        virtual_mic.feed(silence(2.0))
        truth = []
        for kw in keywords:
            audio = espeak(SPOKEN[kw])
            start = virtual_mic.feed(audio)
            truth.append((kw, start, start + len(audio)))
            virtual_mic.feed(silence(2.5))
        for text in NON_KEYWORD:
            virtual_mic.feed(espeak(text))
            virtual_mic.feed(silence(2.5))
        # quiet noise, then silence: nothing either
        rng = np.random.default_rng(0)
        virtual_mic.feed(np.clip(rng.normal(0, 30, 3 * SAMPLE_RATE), -32768, 32767)
                         .astype(np.int16))
        virtual_mic.feed(silence(1.0))
        assert virtual_mic.wait_drained(120)
        ends = serve.wait_events("speech_end", 1 + len(keywords) + len(NON_KEYWORD), 30)
        assert ends
        begins = [e for e in serve.events if e["kind"] == "speech_begin"]
        offset = begins[0]["start_sample"] - i_calib      # FIFO index -> stream sample
        dets = [e for e in serve.events if e["kind"] == "detection"]
        found = {}
        for kw, start, end in truth:
            s, e = start + offset, end + offset
            hits = [d for d in dets if d["end_sample"] > s - TOLERANCE
                    and d["start_sample"] < e + TOLERANCE]
            found[kw] = [(d["keyword"], abs(d["start_sample"] - s), abs(d["end_sample"] - e))
                         for d in hits]
        # What the live path must get right whatever the model's recall: every detection is
        # the keyword that was spoken there, at most one per keyword, with its start and end
        # within 300 ms of the truth. How many of these synthetic keywords the demo model
        # catches is a property of the model, measured by `kwsd eval` (model card); this test
        # needs at least one, so that the microphone -> gate -> encoder -> event path is shown.
        wrong = {kw: h for kw, h in found.items()
                 if len(h) > 1 or any(r != kw or ds > TOLERANCE or de > TOLERANCE
                                      for r, ds, de in h)}
        assert not wrong, f"keyword -> (reported, |start err|, |end err|) samples: {found}"
        assert any(found.values()), f"no spoken keyword was reported: {found}"
        print("recall on this espeak-ng voice:",
              f"{sum(bool(h) for h in found.values())}/{len(found)}", found)
        stray = [d for d in dets
                 if not any(d["end_sample"] > s + offset - TOLERANCE
                            and d["start_sample"] < e + offset + TOLERANCE for _, s, e in truth)]
        assert not stray, f"detections in non-keyword speech, silence or noise: {stray}"
    finally:
        serve.kill()
