"""`kwsd serve`: run the daemon (microphone, WAV file or stdin source; gRPC API)."""

from __future__ import annotations

import argparse
import logging
import sys
import tomllib

HELP = "run the daemon (microphone or file sources, gRPC API)"

log = logging.getLogger("kwsd.serve")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="TOML config file (default: /etc/kwsd/kwsd.toml for "
                        "the system service, $XDG_CONFIG_HOME/kwsd/kwsd.toml for a user)")
    parser.add_argument("--model", help="model bundle folder (model.path)")
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--wav", metavar="FILE", help="read a WAV file instead of the microphone")
    src.add_argument("--stdin", action="store_true", help="read raw s16le PCM from stdin")
    src.add_argument("--device", help="microphone: input device name substring or index")
    parser.add_argument("--realtime", action="store_true",
                        help="with --wav: pace the file in real time (default: as fast as "
                        "possible)")
    parser.add_argument("--loop", action="store_true", help="with --wav: repeat the file")
    parser.add_argument("--stdin-rate", type=int, help="with --stdin: sample rate (16000)")
    parser.add_argument("--stdin-channels", type=int, help="with --stdin: channels (1)")
    parser.add_argument("--source-id", help="source id reported with events")
    parser.add_argument("--threshold", action="append", default=[], metavar="KEYWORD=VALUE",
                        help="override a keyword's threshold (repeatable)")
    parser.add_argument("--vad-aggressiveness", type=int, help="webrtcvad 0..3")
    parser.add_argument("--no-vad", action="store_true", help="run the encoder on all audio")
    parser.add_argument("--sensitivity", choices=["low", "medium", "high"], default=None,
                        help="the model's thresholds for this false-alarm target "
                             "(decision.sensitivity)")
    parser.add_argument("--torch-threads", type=int, help="encoder threads")
    parser.add_argument("--socket", help="gRPC Unix socket path (api.socket)")
    parser.add_argument("--tcp", help="gRPC TCP host:port (api.tcp)")
    parser.add_argument("--no-api", action="store_true", help="do not start the gRPC server")
    parser.add_argument("--print", dest="print_events", action="store_true",
                        help="print detections on stdout")
    parser.add_argument("--print-speech", action="store_true",
                        help="with --print: also speech begin/end")
    parser.add_argument("--json", action="store_true",
                        help="with --print: one JSON object per line")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.OPTION=VALUE",
                        help="set any config option (TOML value syntax; repeatable), e.g. "
                        "--set audio.chunk_ms=100")
    parser.add_argument("--log-level", dest="command_log_level",
                        choices=["debug", "info", "warning", "error"],
                        help="same as `kwsd --log-level` (either place works)")
    parser.add_argument("--exit-at-end", action="store_true",
                        help="exit when a --wav/--stdin source ends")


def overrides_from_args(args: argparse.Namespace) -> dict:
    """CLI flags as dotted config overrides (they win over the file, also after reload)."""
    from kwsd.config import ConfigError

    o: dict = {"model.path": args.model, "audio.source_id": args.source_id,
               "vad.aggressiveness": args.vad_aggressiveness,
               "engine.torch_threads": args.torch_threads, "api.socket": args.socket,
               "api.tcp": args.tcp}
    if getattr(args, "wav", None):
        o.update({"audio.source": "wav", "audio.wav": args.wav,
                  "audio.realtime": bool(args.realtime), "audio.loop": bool(args.loop)})
    elif getattr(args, "stdin", False):
        o.update({"audio.source": "stdin", "audio.stdin_rate": args.stdin_rate,
                  "audio.stdin_channels": args.stdin_channels})
    elif getattr(args, "device", None) is not None:
        o.update({"audio.source": "microphone", "audio.device": args.device})
    if getattr(args, "no_vad", False):
        o["vad.enabled"] = False
    if getattr(args, "sensitivity", None):
        o["decision.sensitivity"] = args.sensitivity
    for item in getattr(args, "threshold", []) or []:
        kw, sep, value = item.rpartition("=")
        try:
            o[f"decision.thresholds.{kw}"] = float(value)
        except ValueError:
            raise ConfigError(f"--threshold {item}", "expected KEYWORD=NUMBER") from None
        if not sep or not kw:
            raise ConfigError(f"--threshold {item}", "expected KEYWORD=NUMBER")
    for item in getattr(args, "set", []) or []:
        key, sep, raw = item.partition("=")
        if not sep or "." not in key:
            raise ConfigError(f"--set {item}", "expected SECTION.OPTION=VALUE")
        try:
            o[key.strip()] = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            o[key.strip()] = raw           # a bare word: take it as a string
    level = getattr(args, "command_log_level", None) or (
        args.log_level if getattr(args, "log_level", "info") != "info" else None)
    if level:
        o["logging.level"] = level
    return {k: v for k, v in o.items() if v is not None}


def apply_log_level(config) -> None:
    level = config.logging.level.upper()
    logging.getLogger().setLevel(level)


def run(args: argparse.Namespace) -> int:
    from kwsd.config import ConfigError, load_config
    from kwsd.lifecycle import Lifecycle, exit_now

    try:
        config = load_config(args.config, overrides_from_args(args))
    except ConfigError as exc:
        print(f"kwsd serve: {exc}", file=sys.stderr)
        return 2
    apply_log_level(config)
    exit_at_end = args.exit_at_end or False
    life = Lifecycle(config, api=not args.no_api, exit_at_end=exit_at_end,
                     console=sys.stdout if args.print_events else None,
                     console_speech=args.print_speech, console_json=args.json)
    exit_now(life.run())
    return 0  # not reached
