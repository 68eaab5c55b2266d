"""kwsd's configuration: one TOML file, every option with a default, every bad value named.

The file is parsed into a nested dict, CLI overrides are merged into that dict ("audio.source" =
"wav"), and only then is the whole thing validated into frozen dataclasses. Reload repeats the
same steps with the same overrides, so a flag given on the command line still wins after SIGHUP,
and a bad file never produces a half-applied config.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import shlex
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SECTIONS = ("model", "audio", "vad", "decision", "engine", "api", "commands", "logging")


class ConfigError(ValueError):
    """A configuration value kwsd refuses; `option` is the dotted name, e.g. `vad.frame_ms`."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(f"{option}: {message}")
        self.option = option
        self.message = message


@dataclass(frozen=True)
class ModelConfig:
    path: str = ""
    """Bundle folder; "" = the bundled demo model (models/demo next to the package)."""


@dataclass(frozen=True)
class AudioConfig:
    source: str = "microphone"          # microphone | wav | stdin | none (Detect streams only)
    source_id: str = ""                 # "" = the source kind ("microphone", "wav", "stdin")
    device: str = ""                    # microphone: name substring or index; "" = default input
    wav: str = ""                       # wav: file path
    realtime: bool = True               # wav: pace in real time (else as fast as possible)
    loop: bool = False                  # wav: start again at the end
    stdin_rate: int = 16000             # stdin: sample rate of the raw s16le PCM
    stdin_channels: int = 1
    chunk_ms: int = 50                  # capture block length
    queue_ms: int = 4000                # bound of the capture queue; beyond it blocks are dropped
    retry_initial_s: float = 0.5        # lost device: first retry delay, doubled up to retry_max_s
    retry_max_s: float = 10.0
    stall_timeout_s: float = 2.0        # no audio for this long from a running device = lost


@dataclass(frozen=True)
class VadConfig:
    enabled: bool = True                # false: every sample goes to the encoder
    aggressiveness: int = 2             # webrtcvad 0..3 (3 = most eager to call audio non-speech)
    frame_ms: int = 30                  # 10, 20 or 30
    pre_roll_ms: int = 0                # 0 = the model's window; else >= 300
    hangover_ms: int = 600              # gate stays open this long after the last speech frame
    min_speech_ms: int = 90             # speech frames needed (within 2x this span) to open
    energy_floor_dbfs: float = -60.0    # quieter frames count as silence whatever webrtcvad says


@dataclass(frozen=True)
class DecisionConfig:
    thresholds: dict[str, float] = field(default_factory=dict)  # per keyword; else the bundle's
    default_threshold: float = 0.5      # for a keyword the bundle gives no threshold
    sensitivity: str = ""               # "" = the model's default; low, medium or high
    smoothing_ms: int = -1              # average posteriors whose windows end within this span;
                                        # -1 = the model's (kws.json decision.smoothing_ms, else 0)
    release_ratio: float = 0.5          # re-arm a keyword once its score < threshold * ratio
    refractory_ms: int = 1000           # no second event of a keyword within this span


@dataclass(frozen=True)
class EngineConfig:
    torch_threads: int = 1              # intra-op threads for the encoder (all streams share them)
    hop_ms: int = 0                     # window hop; 0 = the model's (kws.json); multiple of 20
    warmup: bool = True                 # run one inference before READY=1
    precision: str = ""                 # encoder precision; "" = the model's (kws.json)
    cascade: str = ""                   # two-stage cascade: "on", "off", "" = the model's
    max_batch: int = 32                 # windows of all streams run as one batch; 1 = alone
    max_wait_ms: float = 20.0           # longest a ready window waits for others to join it
    batch_workers: int = 2              # scheduler threads: one gathers while another computes
    device: str = "cpu"                 # "cpu" or "cuda" (where the batches run)
    status_interval_s: float = 10.0     # STATUS= line period


@dataclass(frozen=True)
class ApiConfig:
    socket: str = ""                    # "" = user or system default (resolved_socket)
    socket_mode: int = 0o660
    socket_group: str = ""
    tcp: str = ""                       # host:port; "" = no TCP
    tls_cert: str = ""
    tls_key: str = ""
    tls_client_ca: str = ""
    tls_client_names: tuple[str, ...] = ()  # mutual TLS: allowed client cert names; () = any
    token: str = ""
    insecure_loopback: bool = False
    enroll_over_tcp: bool = False       # EnrollKeyword/DeleteKeyword from TCP callers too
    max_streams: int = 16
    max_subscribers: int = 128          # Subscribe calls at once (each holds a server thread)
    max_chunk_bytes: int = 256 * 1024
    metrics: str = ""                   # "" or host:port for Prometheus

    def resolved_socket(self) -> str:
        """The Unix socket path to use, applying the user/system default when unset."""
        if self.socket:
            return self.socket
        runtime = os.environ.get("RUNTIME_DIRECTORY")  # systemd RuntimeDirectory=kwsd
        if runtime:
            return str(Path(runtime.split(":")[0]) / "kwsd.sock")
        if is_system_service():
            return "/run/kwsd/kwsd.sock"
        xdg = os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/kwsd-{os.getuid()}"
        return str(Path(xdg) / "kwsd" / "kwsd.sock")


@dataclass(frozen=True)
class CommandsConfig:
    """Per-keyword command for `kwsd listen --exec` style voice commands: keyword -> argv."""

    by_keyword: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class LoggingConfig:
    level: str = "info"


@dataclass(frozen=True)
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    vad: VadConfig = field(default_factory=VadConfig)
    decision: DecisionConfig = field(default_factory=DecisionConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    api: ApiConfig = field(default_factory=ApiConfig)
    commands: CommandsConfig = field(default_factory=CommandsConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    path: str = ""                      # the file it came from ("" = defaults only)
    overrides: dict[str, Any] = field(default_factory=dict, compare=False)

    def model_path(self) -> Path:
        return Path(self.model.path) if self.model.path else default_model_path()

    def replace(self, **overrides: Any) -> Config:
        """A new validated Config with dotted overrides applied ({"vad.aggressiveness": 3})."""
        return load_config(self.path or None, {**self.overrides, **overrides},
                           missing_ok=not self.path)


# --- defaults and paths ------------------------------------------------------------------------

def is_system_service() -> bool:
    return os.environ.get("KWSD_SYSTEM_SERVICE") == "1" or os.geteuid() == 0


def default_config_path() -> Path:
    """/etc/kwsd/kwsd.toml for the system service, $XDG_CONFIG_HOME/kwsd/kwsd.toml for a user."""
    conf_dir = os.environ.get("CONFIGURATION_DIRECTORY")  # systemd ConfigurationDirectory=kwsd
    if conf_dir:
        return Path(conf_dir.split(":")[0]) / "kwsd.toml"
    if is_system_service():
        return Path("/etc/kwsd/kwsd.toml")
    xdg = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(xdg) / "kwsd" / "kwsd.toml"


def default_model_path() -> Path:
    """The bundled demo model: models/demo in the source tree, or share/kwsd/models/demo."""
    here = Path(__file__).resolve()
    for candidate in (here.parents[2] / "models" / "demo",
                      Path(sys.prefix) / "share" / "kwsd" / "models" / "demo"):
        if candidate.is_dir():
            return candidate
    return here.parents[2] / "models" / "demo"


# --- validation --------------------------------------------------------------------------------

def _check_int(option: str, value: Any, lo: int | None = None, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(option, f"must be an integer, got {value!r}")
    if lo is not None and value < lo or hi is not None and value > hi:
        raise ConfigError(option, f"must be in {lo}..{hi}, got {value}")
    return value


def _check_float(option: str, value: Any, lo: float | None = None,
                 hi: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(option, f"must be a number, got {value!r}")
    value = float(value)
    if value != value or (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ConfigError(option, f"must be in {lo}..{hi}, got {value}")
    return value


def _check_bool(option: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(option, f"must be true or false, got {value!r}")
    return value


def _check_str(option: str, value: Any, choices: tuple[str, ...] | None = None) -> str:
    if not isinstance(value, str):
        raise ConfigError(option, f"must be a string, got {value!r}")
    if choices is not None and value not in choices:
        raise ConfigError(option, f"must be one of {', '.join(choices)}; got {value!r}")
    return value


MIN_TOKEN_CHARS = 16


def _token(option: str, value: Any) -> str:
    """A bearer token short enough to guess (or a template's placeholder left in) is refused."""
    value = _check_str(option, value)
    if value and len(value) < MIN_TOKEN_CHARS:
        raise ConfigError(option, f"must be empty or at least {MIN_TOKEN_CHARS} characters "
                                  f"(e.g. from `openssl rand -hex 24`), got {len(value)}")
    return value


def _check_hostport(option: str, value: Any) -> str:
    value = _check_str(option, value)
    if value:
        host, sep, port = value.rpartition(":")
        if not sep or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(option, f"must be host:port with a port in 1..65535, got {value!r}")
    return value


def _build(cls: type, section: str, data: dict[str, Any], checks: dict[str, Any]) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(section, f"must be a table, got {data!r}")
    names = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in names:
            raise ConfigError(f"{section}.{key}",
                              f"unknown option (known: {', '.join(sorted(names))})")
    kwargs = {}
    for key, value in data.items():
        option = f"{section}.{key}"
        kwargs[key] = checks[key](option, value)
    return cls(**kwargs)


def _names(option: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(option, f"must be a list of non-empty strings, got {value!r}")
    return tuple(value)


def _thresholds(option: str, value: Any) -> dict[str, float]:
    if not isinstance(value, dict):
        raise ConfigError(option, f"must be a table of keyword = threshold, got {value!r}")
    return {str(k): _check_float(f"{option}.{k}", v, 0.0, 1.0) for k, v in value.items()}


def _mode(option: str, value: Any) -> int:
    if isinstance(value, str):
        try:
            value = int(value, 8)
        except ValueError:
            raise ConfigError(option, f"must be an octal mode such as \"0660\", got {value!r}") \
                from None
    return _check_int(option, value, 0, 0o777)


def _commands(data: Any) -> CommandsConfig:
    if not isinstance(data, dict):
        raise ConfigError("commands", f"must be a table of keyword = command, got {data!r}")
    out: dict[str, list[str]] = {}
    for keyword, cmd in data.items():
        option = f"commands.{keyword}"
        if isinstance(cmd, str) and cmd.strip():
            try:
                out[str(keyword)] = shlex.split(cmd)
            except ValueError as exc:
                raise ConfigError(option, f"cannot split command: {exc}") from None
        elif isinstance(cmd, list) and cmd and all(isinstance(a, str) for a in cmd):
            out[str(keyword)] = list(cmd)
        else:
            raise ConfigError(option, f"must be a command string or a list of strings, got {cmd!r}")
    return CommandsConfig(by_keyword=out)


def _model(o: str, v: Any) -> str:
    return _check_str(o, v)


_CHECKS: dict[str, tuple[type, dict[str, Any]]] = {
    "model": (ModelConfig, {"path": _model}),
    "audio": (AudioConfig, {
        "source": lambda o, v: _check_str(o, v, ("microphone", "wav", "stdin", "none")),
        "source_id": lambda o, v: _check_str(o, v),
        "device": lambda o, v: str(_check_int(o, v, 0)) if isinstance(v, int) else _check_str(o, v),
        "wav": lambda o, v: _check_str(o, v),
        "realtime": _check_bool,
        "loop": _check_bool,
        "stdin_rate": lambda o, v: _check_int(o, v, 4000, 384000),
        "stdin_channels": lambda o, v: _check_int(o, v, 1, 32),
        "chunk_ms": lambda o, v: _check_int(o, v, 5, 1000),
        "queue_ms": lambda o, v: _check_int(o, v, 100, 60000),
        "retry_initial_s": lambda o, v: _check_float(o, v, 0.01, 60.0),
        "retry_max_s": lambda o, v: _check_float(o, v, 0.01, 3600.0),
        "stall_timeout_s": lambda o, v: _check_float(o, v, 0.2, 60.0),
    }),
    "vad": (VadConfig, {
        "enabled": _check_bool,
        "aggressiveness": lambda o, v: _check_int(o, v, 0, 3),
        "frame_ms": lambda o, v: _frame_ms(o, v),
        "pre_roll_ms": lambda o, v: _pre_roll(o, v),
        "hangover_ms": lambda o, v: _check_int(o, v, 0, 10000),
        "min_speech_ms": lambda o, v: _check_int(o, v, 10, 2000),
        "energy_floor_dbfs": lambda o, v: _check_float(o, v, -120.0, 0.0),
    }),
    "decision": (DecisionConfig, {
        "thresholds": _thresholds,
        "default_threshold": lambda o, v: _check_float(o, v, 0.0, 1.0),
        "smoothing_ms": lambda o, v: _check_int(o, v, -1, 5000),
        "sensitivity": lambda o, v: _check_str(o, v, ("", "low", "medium", "high")),
        "release_ratio": lambda o, v: _check_float(o, v, 0.0, 1.0),
        "refractory_ms": lambda o, v: _check_int(o, v, 0, 60000),
    }),
    "engine": (EngineConfig, {
        "torch_threads": lambda o, v: _check_int(o, v, 1, 256),
        "hop_ms": lambda o, v: _hop(o, v),
        "warmup": _check_bool,
        "precision": lambda o, v: _precision(o, v),
        "cascade": lambda o, v: _check_str(o, v, ("", "on", "off")),
        "max_batch": lambda o, v: _check_int(o, v, 1, 1024),
        "max_wait_ms": lambda o, v: _check_float(o, v, 0.0, 1000.0),
        "batch_workers": lambda o, v: _check_int(o, v, 1, 64),
        "device": lambda o, v: _check_str(o, v, ("cpu", "cuda")),
        "status_interval_s": lambda o, v: _check_float(o, v, 0.5, 3600.0),
    }),
    "api": (ApiConfig, {
        "socket": lambda o, v: _check_str(o, v),
        "socket_mode": _mode,
        "socket_group": lambda o, v: _check_str(o, v),
        "tcp": _check_hostport,
        "tls_cert": lambda o, v: _check_str(o, v),
        "tls_key": lambda o, v: _check_str(o, v),
        "tls_client_ca": lambda o, v: _check_str(o, v),
        "tls_client_names": _names,
        "token": _token,
        "insecure_loopback": _check_bool,
        "enroll_over_tcp": _check_bool,
        "max_streams": lambda o, v: _check_int(o, v, 1, 10000),
        "max_subscribers": lambda o, v: _check_int(o, v, 1, 10000),
        "max_chunk_bytes": lambda o, v: _check_int(o, v, 320, 64 * 1024 * 1024),
        "metrics": _check_hostport,
    }),
    "logging": (LoggingConfig, {
        "level": lambda o, v: _check_str(o, v.lower() if isinstance(v, str) else v,
                                         ("debug", "info", "warning", "error")),
    }),
}


def _frame_ms(option: str, value: Any) -> int:
    value = _check_int(option, value)
    if value not in (10, 20, 30):
        raise ConfigError(option, f"webrtcvad takes 10, 20 or 30 ms frames, got {value}")
    return value


def _hop(option: str, value: Any) -> int:
    value = _check_int(option, value, 0, 5000)
    if value % 20:
        raise ConfigError(option, f"must be 0 (the model's hop) or a multiple of 20 ms, "
                                  f"got {value}")
    return value


def _precision(option: str, value: Any) -> str:
    from kwsd.model.precision import PRECISIONS  # names only: no torch

    value = _check_str(option, value)
    if value and value not in PRECISIONS:
        raise ConfigError(option, f"must be \"\" (the model's, kws.json streaming.precision) or "
                                  f"one of {', '.join(PRECISIONS)}; got {value!r}")
    return value


def _pre_roll(option: str, value: Any) -> int:
    value = _check_int(option, value, 0, 10000)
    if 0 < value < 300:
        raise ConfigError(option, f"must be 0 (the model's window) or at least 300 ms, got {value}")
    return value


def config_from_dict(data: dict[str, Any], path: str = "",
                     overrides: dict[str, Any] | None = None) -> Config:
    """Validate a nested dict (as parsed from TOML) into a Config; ConfigError names the option."""
    if not isinstance(data, dict):
        raise ConfigError("(file)", "must be a TOML table")
    for section in data:
        if section not in SECTIONS:
            raise ConfigError(section, f"unknown section (known: {', '.join(SECTIONS)})")
    parts: dict[str, Any] = {}
    for section, (cls, checks) in _CHECKS.items():
        parts[section] = _build(cls, section, data.get(section, {}), checks)
    parts["commands"] = _commands(data.get("commands", {}))
    audio: AudioConfig = parts["audio"]
    if audio.source == "wav" and not audio.wav:
        raise ConfigError("audio.wav", "audio.source is \"wav\" but no file is given")
    if audio.retry_max_s < audio.retry_initial_s:
        raise ConfigError("audio.retry_max_s", "must be >= audio.retry_initial_s")
    api: ApiConfig = parts["api"]
    if api.tls_client_names and not api.tls_client_ca:
        raise ConfigError("api.tls_client_names", "needs api.tls_client_ca (mutual TLS)")
    if bool(api.tls_cert) != bool(api.tls_key):
        raise ConfigError("api.tls_key" if api.tls_cert else "api.tls_cert",
                          "api.tls_cert and api.tls_key go together")
    return Config(**parts, path=path, overrides=dict(overrides or {}))


def merge_overrides(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Apply dotted overrides ({"audio.source": "wav"}) to a nested dict (copied)."""
    data = copy.deepcopy(data)
    for dotted, value in overrides.items():
        if value is None:
            continue
        section, _, key = dotted.partition(".")
        if not key:
            raise ConfigError(dotted, "override must name section.option")
        table = data.setdefault(section, {})
        if not isinstance(table, dict):
            raise ConfigError(section, f"must be a table, got {table!r}")
        *inner, last = key.split(".")
        for part in inner:
            table = table.setdefault(part, {})
        table[last] = value
    return data


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError("--config", f"{path}: no such file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("--config", f"{path}: not valid TOML ({exc})") from None
    except UnicodeDecodeError as exc:  # TOML is UTF-8; without this, serve died with a traceback
        raise ConfigError("--config", f"{path}: not valid TOML (not UTF-8 at byte "
                          f"{exc.start})") from None
    except OSError as exc:
        raise ConfigError("--config", f"{path}: cannot read ({exc.strerror})") from None


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None,
                missing_ok: bool | None = None) -> Config:
    """Load `path` (or the default path, which may be absent), apply overrides, validate.

    An explicitly named file must exist; the default one is optional (defaults apply).
    """
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    if path is None or path == "":
        candidate = default_config_path()
        file = candidate if candidate.is_file() else None
    else:
        file = Path(path)
        if missing_ok and not file.exists():
            file = None
    data = read_toml(file) if file is not None else {}
    data = merge_overrides(data, overrides)
    return config_from_dict(data, path=str(file) if file else "", overrides=overrides)
