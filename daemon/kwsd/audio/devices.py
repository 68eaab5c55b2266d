"""PyAudio set-up shared by `kwsd devices` and the microphone source: listing input devices,
choosing one by name substring or index, and keeping ALSA's probe chatter off stderr."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from typing import Any

log = logging.getLogger(__name__)
_ALSA_HANDLER: Any = None


class DeviceError(RuntimeError):
    """No input device matches, or the sound system cannot be opened."""


def _silence_alsa() -> None:
    """PortAudio probes every ALSA plugin and the JACK server at start; libasound and libjack
    print each failure to stderr ("ALSA lib pcm.c: ... Unknown PCM", "jack server is not
    running"). Install no-op error handlers once, so the daemon's log says only what matters."""
    global _ALSA_HANDLER
    if _ALSA_HANDLER is not None:
        return
    handlers: list[Any] = []
    name = ctypes.util.find_library("asound")
    if name:
        try:
            lib = ctypes.cdll.LoadLibrary(name)
            proto = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                                     ctypes.c_int, ctypes.c_char_p)
            handlers.append(proto(lambda *args: None))
            lib.snd_lib_error_set_handler(handlers[-1])
        except (OSError, AttributeError):
            pass
    name = ctypes.util.find_library("jack")
    if name:
        try:
            lib = ctypes.cdll.LoadLibrary(name)
            proto = ctypes.CFUNCTYPE(None, ctypes.c_char_p)
            handlers.append(proto(lambda msg: None))
            lib.jack_set_error_function(handlers[-1])
            lib.jack_set_info_function(handlers[-1])
        except (OSError, AttributeError):
            pass
    _ALSA_HANDLER = handlers     # keep the callbacks alive


def open_pyaudio() -> Any:
    """A fresh PyAudio instance (fresh = devices re-enumerated, e.g. after a server restart)."""
    try:
        import pyaudio
    except ImportError as exc:  # pragma: no cover - a runtime dependency
        raise DeviceError(f"PyAudio is not installed ({exc})") from None
    _silence_alsa()
    return pyaudio.PyAudio()


def list_input_devices(pa: Any) -> list[dict]:
    """Input devices: index, name, channels, default rate, host API, whether default."""
    try:
        default = pa.get_default_input_device_info()["index"]
    except OSError:
        default = None
    out = []
    for i in range(pa.get_device_count()):
        info = pa.get_device_info_by_index(i)
        if int(info.get("maxInputChannels", 0)) < 1:
            continue
        api = pa.get_host_api_info_by_index(info["hostApi"])["name"]
        out.append({"index": i, "name": info["name"], "channels": int(info["maxInputChannels"]),
                    "default_rate": int(info["defaultSampleRate"]), "host_api": api,
                    "default": i == default})
    return out


def find_input_device(pa: Any, spec: str) -> dict:
    """Device info for `spec`: "" = the default input, digits = an index, else a name substring
    (case-insensitive; an exact name wins over substrings)."""
    devices = list_input_devices(pa)
    if not devices:
        raise DeviceError("no audio input device (is a sound server running?)")
    if spec == "":
        for dev in devices:
            if dev["default"]:
                return dev
        raise DeviceError("no default input device; choose one with audio.device "
                          "(see `kwsd devices`)")
    if spec.isdigit():
        for dev in devices:
            if dev["index"] == int(spec):
                return dev
        raise DeviceError(f"audio.device: no input device with index {spec} "
                          "(see `kwsd devices`)")
    exact = [d for d in devices if d["name"].lower() == spec.lower()]
    matches = exact or [d for d in devices if spec.lower() in d["name"].lower()]
    if not matches:
        names = ", ".join(repr(d["name"]) for d in devices)
        raise DeviceError(f"audio.device: no input device name contains {spec!r} (have {names})")
    return matches[0]
