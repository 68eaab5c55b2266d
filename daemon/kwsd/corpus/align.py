"""Word timing of rendered sentences by forced alignment (pocketsphinx, CMU dictionary).

Used for carrier sentences that a TTS engine spoke in one go, where the keyword's position is not
known from the rendering itself. Returns None when pocketsphinx is missing or cannot align, so
the caller falls back to its own estimate.
"""

from __future__ import annotations

import re
import threading

import numpy as np

from kwsd.audio.chunk import SAMPLE_RATE

_FRAME_S = 0.01
_lock = threading.Lock()
_decoder = None


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower().replace("-", " "))


def _get_decoder():
    global _decoder
    with _lock:
        if _decoder is None:
            from pocketsphinx import Decoder

            _decoder = Decoder(samprate=SAMPLE_RATE, logfn="/dev/null")
    return _decoder


def keyword_span(samples: np.ndarray, parts: tuple[str, ...], kw_part: int
                 ) -> tuple[float, float] | None:
    """(start_s, end_s) of parts[kw_part] inside `samples` (16 kHz int16 of " ".join(parts))."""
    words = [_words(p) for p in parts]
    spans = word_spans(samples, [w for ws in words for w in ws])
    if spans is None:
        return None
    first = sum(len(w) for w in words[:kw_part])
    kw = spans[first: first + len(words[kw_part])]
    return kw[0][0], kw[-1][1]


def word_spans(samples: np.ndarray, words: list[str]) -> list[tuple[float, float]] | None:
    """(start_s, end_s) of each of `words` (lower case, said in this order) inside `samples`
    (16 kHz int16); None when pocketsphinx is missing or the alignment drops or adds a word."""
    try:
        decoder = _get_decoder()
    except ImportError:
        return None
    try:
        decoder.set_align_text(" ".join(words))
        decoder.start_utt()
        decoder.process_raw(np.ascontiguousarray(samples, dtype=np.int16).tobytes(),
                            full_utt=True)
        decoder.end_utt()
        segs = [(re.sub(r"\(\d+\)$", "", s.word), s.start_frame, s.end_frame)
                for s in (decoder.seg() or []) if s.word not in ("<s>", "</s>", "<sil>")]
    except (RuntimeError, ValueError, KeyError):
        return None
    if [s[0] for s in segs] != words:
        return None
    return [(a * _FRAME_S, (b + 1) * _FRAME_S) for _, a, b in segs]
