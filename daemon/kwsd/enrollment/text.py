"""Examples from text when no recording is at hand: the phrase spoken by a few offline voices.

Voices the ENVIRONMENT-NOTES found most recognisable come first (flite, Pico, Piper), then
espeak-ng; each rendering gets a little silence around it, as a recording would have.
"""

from __future__ import annotations

import numpy as np

PREFERRED = ("flite", "pico", "piper", "festival", "mbrola", "espeak")


def synthetic_examples(text: str, count: int = 4) -> list[np.ndarray]:
    from kwsd.corpus.tts import TTSError, render
    from kwsd.corpus.voices import available_voices

    voices = sorted(available_voices(), key=lambda v: (
        PREFERRED.index(v.engine) if v.engine in PREFERRED else len(PREFERRED), v.name))
    pad = np.zeros(4800, dtype=np.int16)
    out, seen = [], set()
    for v in voices:
        if len(out) >= count:
            break
        if (v.speaker or v.name) in seen:
            continue
        try:
            x = render(v, text)
        except (TTSError, OSError, ValueError):
            continue
        seen.add(v.speaker or v.name)
        out.append(np.concatenate([pad, np.asarray(x, dtype=np.int16), pad]))
    if not out:
        raise RuntimeError("no offline voice could render the text (scripts/install-tts.sh "
                           "installs them)")
    return out
