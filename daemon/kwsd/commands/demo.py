"""`kwsd demo`: the bundled demo model on the default microphone, or, on a machine without
one, on the bundled demo recording in real time; each detection is printed as it arrives by a
real gRPC subscriber (the same path `kwsd listen` uses), or by an in-process one when the gRPC
part is not available."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import threading
from pathlib import Path

HELP = "serve the bundled demo model on the default microphone or the demo recording"

log = logging.getLogger("kwsd.demo")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="model bundle (default: the bundled demo model)")
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--wav", help="use this recording instead of the microphone")
    src.add_argument("--recording", action="store_true",
                     help="use the bundled demo recording even if a microphone exists")
    parser.add_argument("--fast", action="store_true",
                        help="with a recording: as fast as possible instead of real time")
    parser.add_argument("--speech", action="store_true", help="also print speech begin/end")
    parser.add_argument("--sensitivity", choices=["low", "medium", "high"], default=None,
                        help="the model's thresholds for this false-alarm target (default: high "
                             "when the model has it, "
                             "so that the weak demo model shows what it catches; it also fires "
                             "more often by mistake: see models/demo/MODEL_CARD.md)")
    parser.add_argument("--in-process", action="store_true",
                        help="print from an in-process subscriber instead of a gRPC client")


def _grpc_printer(socket_path: str, speech: bool, out=sys.stdout):
    """A subscriber over the daemon's real API, started once the daemon serves."""
    from kwsd.client.actions import event_line
    from kwsd.client.sync import KwsdClient

    connected = threading.Event()
    holder: dict = {}

    def on_ready(life) -> None:
        client = KwsdClient("unix:" + socket_path)
        holder["client"] = client

        def run() -> None:
            try:
                for event in client.subscribe(
                        include_speech_activity=speech, client_name="kwsd-demo",
                        on_state=lambda state, _d: connected.set()
                        if state == "connected" else None):
                    print(event_line(event), file=out, flush=True)
            except Exception as exc:   # the daemon is stopping: the stream ends
                log.debug("demo subscriber ended: %s", exc)

        threading.Thread(target=run, name="demo-client", daemon=True).start()
        if not connected.wait(10):
            log.warning("demo subscriber did not connect within 10 s")

    return on_ready, holder


def _demo_sensitivity(model: Path, asked: str | None) -> str:
    """`high` where the bundle was calibrated for it: the demo should show what it catches."""
    if asked is not None:
        return asked
    from kwsd.engine.decision import sensitivity_table

    try:
        meta = json.loads((model / "kws.json").read_text())
    except (OSError, ValueError):
        return ""
    return "high" if "high" in sensitivity_table(meta) else ""


def run(args: argparse.Namespace) -> int:
    from kwsd.audio.microphone import probe_default_input
    from kwsd.config import ConfigError, default_model_path, load_config
    from kwsd.lifecycle import Lifecycle, exit_now

    model = Path(args.model) if args.model else default_model_path()
    if not (model / "kws.json").is_file():
        print(f"kwsd demo: no model bundle at {model} (expected kws.json there)",
              file=sys.stderr)
        return 2
    overrides: dict = {"model.path": str(model), "audio.source_id": "demo",
                       "decision.sensitivity": _demo_sensitivity(model, args.sensitivity)}
    wav = Path(args.wav) if args.wav else None
    if wav is None and not args.recording:
        device = probe_default_input()
        if device is not None:
            overrides.update({"audio.source": "microphone", "audio.device": ""})
            where = f"the microphone ({device['name']})"
        else:
            wav = model / "demo.wav"
            print("kwsd demo: no microphone found; playing the demo recording instead",
                  file=sys.stderr)
    elif wav is None:
        wav = model / "demo.wav"
    if wav is not None:
        if not wav.is_file():
            print(f"kwsd demo: no recording at {wav}", file=sys.stderr)
            return 2
        overrides.update({"audio.source": "wav", "audio.wav": str(wav),
                          "audio.realtime": not args.fast, "audio.loop": False})
        where = f"{wav} ({'as fast as possible' if args.fast else 'in real time'})"
    tmp = tempfile.TemporaryDirectory(prefix="kwsd-demo-")
    socket_path = str(Path(tmp.name) / "kwsd.sock")
    overrides.update({"api.socket": socket_path, "api.tcp": "", "api.metrics": ""})
    try:
        config = load_config(None, overrides, missing_ok=True)
    except ConfigError as exc:
        print(f"kwsd demo: {exc}", file=sys.stderr)
        return 2
    use_grpc = not args.in_process
    if use_grpc:
        try:
            import kwsd.client.sync  # noqa: F401
            import kwsd.server.grpc_server  # noqa: F401
        except ImportError as exc:
            log.warning("gRPC parts not available (%s): printing in-process", exc)
            use_grpc = False
    holder: dict = {}
    on_ready = None
    if use_grpc:
        on_ready, holder = _grpc_printer(socket_path, args.speech)
    import json
    try:
        meta = json.loads((model / "kws.json").read_text())
        keywords = [k for k in meta.get("labels", []) if not k.startswith("_")]
    except (OSError, ValueError):
        keywords = []
    print(f"kwsd demo: listening to {where}", file=sys.stderr)
    if keywords:
        print(f"kwsd demo: say one of: {', '.join(keywords)}  (Ctrl-C to stop)", file=sys.stderr)
    life = Lifecycle(config, api=use_grpc, exit_at_end=wav is not None,
                     console=None if use_grpc else sys.stdout, console_speech=args.speech,
                     on_ready=on_ready)
    try:
        rc = life.run()
    finally:
        client = holder.get("client")
        if client is not None:
            client.close()
        tmp.cleanup()
    exit_now(rc)
    return rc  # not reached
