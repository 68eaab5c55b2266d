"""EnrollKeyword, ListKeywords, DeleteKeyword: the daemon's enrolled keywords over gRPC.

Examples arrive as whole utterances in the caller's format and become 16 kHz samples through
kwsd.audio.convert like every other audio the daemon takes. Enrolling writes the keyword to the
daemon's keywords directory and refreshes the running pipelines at once.
"""

from __future__ import annotations

from kwsd.api.v1 import kwsd_pb2 as pb
from kwsd.audio.convert import pcm16_to_mono, resample
from kwsd.server.detect import BadRequest, check_audio_format

MAX_EXAMPLES = 10
MAX_EXAMPLE_S = 5.0


def check_config(cfg: pb.EnrollConfig) -> None:
    check_audio_format(cfg)
    if cfg.fa_target_per_hour < 0:
        raise BadRequest("config.fa_target_per_hour must be >= 0 (0 = default)")


def decode_example(cfg: pb.EnrollConfig, data: bytes, index: int):
    """One example's bytes -> int16 16 kHz mono samples."""
    frame = 2 * cfg.channels
    if not data or len(data) % frame:
        raise BadRequest(f"example {index + 1}: {len(data)} bytes is not a whole number of "
                         f"{frame}-byte frames")
    seconds = len(data) / frame / cfg.sample_rate_hz
    if seconds > MAX_EXAMPLE_S:
        raise BadRequest(f"example {index + 1}: {seconds:.1f} s, at most {MAX_EXAMPLE_S:g} s "
                         "(one utterance of the phrase)")
    return resample(pcm16_to_mono(data, cfg.channels), cfg.sample_rate_hz)


def keyword_pb(kw, usable: bool) -> pb.EnrolledKeyword:
    return pb.EnrolledKeyword(name=kw.name, threshold=float(kw.threshold),
                              templates=len(kw.templates), encoder_id=kw.encoder_id,
                              fa_target_per_hour=float(kw.fa_target_per_h), usable=usable)


def check_pb(c) -> pb.ExampleCheck:
    return pb.ExampleCheck(index=c.index, duration_s=float(c.duration_s),
                           level_dbfs=float(c.level_dbfs), problems=list(c.problems))
