"""The `kwsd` command line: one sub-command per module in `kwsd.commands`.

Each command module exposes `HELP` (one line), `add_arguments(parser)` and `run(args) -> int`.
Modules are imported only when their command runs, so `kwsd listen` never pays for torch.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

COMMANDS: dict[str, str] = {
    "serve": "run the daemon (microphone or file sources, gRPC API)",
    "listen": "subscribe to a running daemon and print or act on detections",
    "demo": "serve the bundled demo model on the default microphone or the demo recording",
    "devices": "list audio input devices",
    "enroll": "enroll your own keyword from a few recordings",
    "keywords": "list or remove enrolled keywords",
    "train": "train a keyword model bundle",
    "distill": "distil a small encoder from a pretrained teacher",
    "eval": "evaluate a model bundle on a manifest of WAV files",
    "compare": "compare two evaluations of one manifest at equal false alarms per keyword",
    "bench": "measure real-time factor, memory and load time",
    "cascade": "fit or show a bundle's two-stage cascade (cheap stage one, encoder on demand)",
    "convert-s3prl": "convert an s3prl DistilHuBERT checkpoint to an HF safetensors folder",
}


def _module_name(command: str) -> str:
    return "kwsd.commands." + command.replace("-", "_")


def setup_logging(level: str) -> None:
    """Plain lines under systemd's journal (it adds its own timestamps), timestamps otherwise."""
    fmt = "%(levelname)s %(name)s: %(message)s"
    if not os.environ.get("JOURNAL_STREAM"):
        fmt = "%(asctime)s " + fmt
    logging.basicConfig(level=level.upper(), format=fmt, stream=sys.stderr, force=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kwsd", description="keyword-spotting daemon")
    parser.add_argument("--log-level", default="info",
                        choices=["debug", "info", "warning", "error"])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    # Parse only up to the command name, then let the command's own parser take the rest.
    known, rest = parser.parse_known_args(argv)
    setup_logging(known.log_level)
    module = importlib.import_module(_module_name(known.command))
    cmd_parser = argparse.ArgumentParser(prog=f"kwsd {known.command}",
                                         description=COMMANDS[known.command])
    module.add_arguments(cmd_parser)
    args = cmd_parser.parse_args(rest)
    args.log_level = known.log_level
    return int(module.run(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
