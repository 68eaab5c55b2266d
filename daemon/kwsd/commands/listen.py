"""`kwsd listen`: subscribe to a running daemon; print each event, or run a command per
detection with the event in KWSD_* environment variables.

Per-keyword commands come from the config's [commands] table (keyword = "command args"), so a
spoken keyword can start a program; `--exec` runs one command for every detection. Neither uses
a shell unless `--shell` is given (for --exec; a [commands] entry may name `sh -c` itself).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

HELP = "subscribe to a running daemon and print or act on detections"

log = logging.getLogger("kwsd.listen")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    conn = parser.add_argument_group("connection")
    conn.add_argument("--config", default=None,
                      help="config file ([api] socket/token and [commands]); default: the "
                           "daemon's default config, if present")
    conn.add_argument("--address", default="",
                      help="unix:///path/kwsd.sock, /path/kwsd.sock or host:port (default: the "
                           "config's socket)")
    conn.add_argument("--token-file", default="",
                      help="file holding the bearer token for TCP (else $KWSD_TOKEN, else the "
                           "config's [api] token)")
    conn.add_argument("--tls", action="store_true", help="TCP with TLS using the system CAs")
    conn.add_argument("--tls-ca", default="", help="CA certificate that signed the daemon's")
    conn.add_argument("--tls-cert", default="", help="client certificate (mutual TLS)")
    conn.add_argument("--tls-key", default="", help="client key (mutual TLS)")
    conn.add_argument("--server-name", default="", help="expected name in the daemon's cert")
    conn.add_argument("--insecure-loopback", action="store_true",
                      help="allow plain TCP to a loopback address")
    conn.add_argument("--no-reconnect", action="store_true",
                      help="exit when the connection drops instead of reconnecting")

    what = parser.add_argument_group("events")
    what.add_argument("--keyword", "-k", action="append", default=[],
                      help="only this keyword (repeatable)")
    what.add_argument("--min-confidence", type=float, default=0.0,
                      help="only detections with at least this confidence (0..1)")
    what.add_argument("--source", action="append", default=[],
                      help="only events from this source id (repeatable)")
    what.add_argument("--speech", action="store_true",
                      help="also print speech begin/end events")
    what.add_argument("--count", type=int, default=0,
                      help="exit after this many detections (0: run until stopped)")
    what.add_argument("--name", default="kwsd-listen", help="subscriber name shown in status")

    out = parser.add_argument_group("output and actions")
    out.add_argument("--json", action="store_true", help="one JSON object per line")
    out.add_argument("--quiet", "-q", action="store_true", help="print nothing (with --exec)")
    out.add_argument("--exec", dest="exec_cmd", default="", metavar="CMD",
                     help="run CMD for every detection (event in KWSD_* env vars)")
    out.add_argument("--shell", action="store_true", help="run --exec CMD with /bin/sh -c")
    out.add_argument("--no-commands", action="store_true",
                     help="ignore the config's [commands] table")


def _load_config(path: str | None):
    from kwsd.config import load_config

    return load_config(path)


def _token(args: argparse.Namespace, config) -> str:
    if args.token_file:
        with open(args.token_file, encoding="utf-8") as fh:
            return fh.read().strip()
    return os.environ.get("KWSD_TOKEN", "") or config.api.token


def run(args: argparse.Namespace) -> int:
    import grpc

    from kwsd.api.v1 import kwsd_pb2 as pb
    from kwsd.client.actions import (
        CommandRunner,
        command_argv,
        event_env,
        event_json,
        event_line,
    )
    from kwsd.client.backoff import RETRYABLE
    from kwsd.client.sync import KwsdClient
    from kwsd.config import ConfigError

    try:
        config = _load_config(args.config)
        exec_argv = command_argv(args.exec_cmd, args.shell) if args.exec_cmd else None
        token = _token(args, config)
    except (ConfigError, ValueError, OSError) as exc:
        print(f"kwsd listen: {exc}", file=sys.stderr)
        return 2
    by_keyword = {} if args.no_commands else dict(config.commands.by_keyword)
    address = args.address or "unix:" + config.api.resolved_socket()
    try:
        client = KwsdClient(address, token=token, tls=args.tls, tls_ca=args.tls_ca,
                            tls_cert=args.tls_cert, tls_key=args.tls_key,
                            server_name=args.server_name,
                            insecure_loopback=args.insecure_loopback)
    except ValueError as exc:
        print(f"kwsd listen: {exc}", file=sys.stderr)
        return 2

    def stop(signum, frame) -> None:
        threading.Thread(target=client.close, daemon=True).start()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop)

    runner = CommandRunner()
    detections = 0
    code = 0
    try:
        for event in client.subscribe(keywords=args.keyword, min_confidence=args.min_confidence,
                                      sources=args.source, include_speech_activity=args.speech,
                                      client_name=args.name, reconnect=not args.no_reconnect):
            if not args.quiet:
                print(event_json(event) if args.json else event_line(event), flush=True)
            if event.kind != pb.EVENT_KIND_DETECTION:
                continue
            detections += 1
            env = event_env(event)
            if event.keyword in by_keyword:
                runner.run(by_keyword[event.keyword], env)
            if exec_argv:
                runner.run(exec_argv, env)
            if args.count and detections >= args.count:
                break
    except grpc.RpcError as exc:
        status = exc.code()
        print(f"kwsd listen: {address}: {status.name}: {exc.details()}", file=sys.stderr)
        code = 1 if status in RETRYABLE else 2
    except BrokenPipeError:
        code = 0
    finally:
        client.close()
        runner.close()
    return code
