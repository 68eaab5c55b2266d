"""`kwsd devices`: the audio input devices PyAudio sees, with their default rates."""

from __future__ import annotations

import argparse
import json

HELP = "list audio input devices"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="one JSON object per device")


def run(args: argparse.Namespace) -> int:
    from kwsd.audio.devices import DeviceError, list_input_devices, open_pyaudio

    try:
        pa = open_pyaudio()
    except DeviceError as exc:
        print(f"kwsd devices: {exc}")
        return 1
    try:
        devices = list_input_devices(pa)
    finally:
        pa.terminate()
    if args.json:
        for dev in devices:
            print(json.dumps(dev))
        return 0
    if not devices:
        print("no audio input devices (no sound server or hardware visible to PortAudio)")
        return 1
    print(f"{'idx':>3}  {'rate':>6}  {'ch':>2}  {'api':<8} name")
    for dev in devices:
        mark = " *" if dev["default"] else ""
        print(f"{dev['index']:>3}  {dev['default_rate']:>6}  {dev['channels']:>2}  "
              f"{dev['host_api']:<8} {dev['name']}{mark}")
    print("* = default input; choose with `kwsd serve --device NAME-OR-INDEX` or audio.device")
    return 0
