"""`kwsd enroll NAME --wav A B C`: add your own keyword from a few recordings.

Each example is trimmed and checked (too short, too long, clipped, too quiet, unlike the
others); the keyword's threshold is set for a false-alarm target on the real speech that ships
with kwsd (models/negatives). The keyword is stored in the user's (or the service's) data
directory with the encoder it was made for; a running daemon picks it up without a restart.
`--again` re-enrolls from the kept examples after a model change.
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "enroll your own keyword from a few recordings"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help='the phrase, e.g. "hey kitchen" (a-z, digits, spaces, - \')')
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--wav", nargs="+", type=Path, metavar="FILE",
                     help="example recordings (WAV, FLAC or Ogg; any rate), one phrase each")
    src.add_argument("--record", type=int, metavar="N", nargs="?", const=3,
                     help="say the phrase N times (default 3) into the microphone")
    src.add_argument("--text", metavar="TEXT", nargs="?", const="",
                     help="no recording: synthetic renderings of TEXT (default: the name) by a "
                          "few offline voices")
    src.add_argument("--again", action="store_true",
                     help="re-enroll from the kept examples (after a model change)")
    parser.add_argument("--config", default=None, help="kwsd.toml (for the model path)")
    parser.add_argument("--model", type=Path, default=None, help="model bundle folder")
    parser.add_argument("--fa-target", type=float, default=None, metavar="PER_HOUR",
                        help="false alarms per hour of the negative bank's speech the threshold "
                             "aims at (default: the model's, else 0.2; speech like the "
                             "examples' fires more often: README)")
    parser.add_argument("--no-keep-audio", action="store_true",
                        help="do not keep the examples (no --again after a model change)")
    parser.add_argument("--device", default=None,
                        help="input device for --record (name substring or index; default: "
                             "the config's audio.device)")
    parser.add_argument("--dir", type=Path, default=None,
                        help="keywords directory (default: $XDG_DATA_HOME/kwsd/keywords, "
                             "/var/lib/kwsd/keywords for the service)")


def model_path(args: argparse.Namespace) -> Path:
    if args.model:
        return args.model
    from kwsd.config import load_config

    return load_config(args.config, missing_ok=True).model_path()


def run(args: argparse.Namespace) -> int:
    from kwsd.audio.audiofile import AudioFileError, read_audio_16k
    from kwsd.enrollment import store
    from kwsd.enrollment.enroll import EnrollmentError, enroll
    from kwsd.model.bundle import ModelBundleError, load_bundle

    try:
        bundle = load_bundle(model_path(args))
    except ModelBundleError as exc:
        print(f"kwsd enroll: {exc}")
        return 2
    try:
        name = store.check_name(args.name, bundle.keywords)
        target = args.fa_target or None   # None: the model's default (enroll)
        if args.again:
            examples = store.kept_examples(name, args.dir)
            old = store.load(store._folder(Path(args.dir or store.keywords_dir()), name))
            # a target the user asked for is kept; the model's default is the new model's
            asked = old.info.get("fa_target_from") == "request"
            target = args.fa_target or (old.fa_target_per_h if asked else None)
        elif args.text is not None:
            from kwsd.enrollment.text import synthetic_examples

            examples = synthetic_examples(args.text or name)
        elif args.record:
            examples = _record(args, name, bundle)
            if examples is None:
                return 1
        else:
            examples = [read_audio_16k(p) for p in args.wav]
    except (store.StoreError, AudioFileError, ValueError, RuntimeError) as exc:
        print(f"kwsd enroll: {exc}")
        return 2
    try:
        result = enroll(bundle, name, examples, fa_target_per_h=target,
                        check_alike=args.text is None)  # voices differ by design
    except EnrollmentError as exc:
        print(f"kwsd enroll: {exc}")
        return 2
    for check in result.checks:
        print(check.describe())
    if not result.ok:
        print(f"kwsd enroll: {name!r} not enrolled: replace the examples marked above")
        return 1
    kw = result.keyword
    folder = store.save(kw, None if args.no_keep_audio else examples, args.dir)
    cal = result.calibration
    print(f"enrolled {name!r}: {len(kw.templates)} template(s), threshold {kw.threshold:.3f} "
          f"for {kw.fa_target_per_h:g} false alarm(s)/h on {cal['bank_hours'] * 60:.1f} min of "
          f"real speech ({cal['method']}), encoder {kw.encoder_id}, {result.seconds:.1f} s -> "
          f"{folder}")
    return 0


def _record(args: argparse.Namespace, name: str, bundle, tries: int = 3):
    """Capture N utterances through the VAD; one failing the checks is asked for again."""
    from kwsd.audio.microphone import MicrophoneSource
    from kwsd.config import load_config
    from kwsd.enrollment.capture import CaptureTimeout, capture_utterance
    from kwsd.enrollment.checks import check_audio
    from kwsd.enrollment.trim import trim

    config = load_config(args.config, missing_ok=True)
    device = args.device if args.device is not None else config.audio.device
    source = MicrophoneSource(device, "enroll", chunk_ms=config.audio.chunk_ms)
    source.start()
    examples = []
    max_s = bundle.window_samples / bundle.sample_rate
    try:
        while len(examples) < args.record:
            i = len(examples)
            for _attempt in range(tries):
                print(f"say \u00ab{name}\u00bb ({i + 1}/{args.record})", flush=True)
                try:
                    x = capture_utterance(source, vad=config.vad)
                except CaptureTimeout as exc:
                    print(f"  {exc}")
                    continue
                check = check_audio(i, x, trim(x, int(max_s * bundle.sample_rate)), max_s)
                if check.ok:
                    print(f"  got it ({check.duration_s:.2f} s)", flush=True)
                    examples.append(x)
                    break
                print(f"  {'; '.join(check.problems)}: once more", flush=True)
            else:
                print(f"kwsd enroll: no usable example {i + 1} after {tries} tries")
                return None
    finally:
        source.stop()
    return examples
