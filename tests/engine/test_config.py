import pytest
from kwsd.config import (
    Config,
    ConfigError,
    config_from_dict,
    default_config_path,
    load_config,
)

BAD_VALUES = [
    ("model", "path", 3),
    ("audio", "source", "radio"),
    ("audio", "device", -1),
    ("audio", "realtime", "yes"),
    ("audio", "chunk_ms", 0),
    ("audio", "queue_ms", 10),
    ("audio", "stdin_rate", 100),
    ("audio", "retry_initial_s", -1),
    ("audio", "stall_timeout_s", "2"),
    ("vad", "aggressiveness", 4),
    ("vad", "frame_ms", 25),
    ("vad", "pre_roll_ms", 100),
    ("vad", "hangover_ms", -5),
    ("vad", "enabled", 1),
    ("vad", "energy_floor_dbfs", 10),
    ("decision", "default_threshold", 1.5),
    ("decision", "refractory_ms", 2.5),
    ("decision", "smoothing_ms", -2),
    ("decision", "release_ratio", 2),
    ("engine", "torch_threads", 0),
    ("engine", "hop_ms", 30),
    ("engine", "warmup", "no"),
    ("api", "socket_mode", "rw"),
    ("api", "tcp", "localhost"),
    ("api", "max_streams", 0),
    ("api", "metrics", "host:99999"),
    ("api", "insecure_loopback", "true"),
    ("api", "token", "REPLACE-ME"),
    ("logging", "level", "loud"),
]


@pytest.mark.parametrize("section,key,value", BAD_VALUES)
def test_each_bad_value_is_refused_naming_its_option(section, key, value):
    with pytest.raises(ConfigError) as err:
        config_from_dict({section: {key: value}})
    assert err.value.option == f"{section}.{key}"
    assert str(err.value).startswith(f"{section}.{key}: ")


def test_unknown_option_and_section_are_named():
    with pytest.raises(ConfigError) as err:
        config_from_dict({"vad": {"agressiveness": 2}})
    assert err.value.option == "vad.agressiveness" and "unknown option" in str(err.value)
    with pytest.raises(ConfigError) as err:
        config_from_dict({"vadd": {}})
    assert err.value.option == "vadd"


def test_threshold_table_values_are_checked_per_keyword():
    with pytest.raises(ConfigError) as err:
        config_from_dict({"decision": {"thresholds": {"computer": 2.0}}})
    assert err.value.option == "decision.thresholds.computer"


def test_commands_section_and_cross_checks():
    cfg = config_from_dict({"commands": {"computer": "notify-send 'hello there'"}})
    assert cfg.commands.by_keyword["computer"] == ["notify-send", "hello there"]
    with pytest.raises(ConfigError) as err:
        config_from_dict({"commands": {"computer": 3}})
    assert err.value.option == "commands.computer"
    with pytest.raises(ConfigError) as err:
        config_from_dict({"audio": {"source": "wav"}})
    assert err.value.option == "audio.wav"
    with pytest.raises(ConfigError) as err:
        config_from_dict({"api": {"tls_cert": "c.pem"}})
    assert err.value.option == "api.tls_key"


def test_file_overrides_and_defaults(tmp_path):
    path = tmp_path / "kwsd.toml"
    path.write_text('[vad]\naggressiveness = 3\n[decision.thresholds]\nyes = 0.7\n')
    cfg = load_config(path, {"vad.hangover_ms": 200, "audio.source": None})
    assert cfg.vad.aggressiveness == 3 and cfg.vad.hangover_ms == 200
    assert cfg.decision.thresholds == {"yes": 0.7}
    assert cfg.audio == Config().audio and cfg.path == str(path)
    again = cfg.replace(**{"decision.thresholds.yes": 0.4})
    assert again.decision.thresholds == {"yes": 0.4} and again.vad.hangover_ms == 200


def test_bad_toml_and_missing_file_name_the_config(tmp_path):
    path = tmp_path / "kwsd.toml"
    path.write_text("[vad\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "absent.toml")


def test_default_path_user_and_system(monkeypatch, tmp_path):
    monkeypatch.delenv("CONFIGURATION_DIRECTORY", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.delenv("KWSD_SYSTEM_SERVICE", raising=False)
    import os
    if os.geteuid() != 0:
        assert default_config_path() == tmp_path / "kwsd" / "kwsd.toml"
    monkeypatch.setenv("KWSD_SYSTEM_SERVICE", "1")
    assert str(default_config_path()) == "/etc/kwsd/kwsd.toml"
    monkeypatch.setenv("CONFIGURATION_DIRECTORY", "/etc/kwsd")
    assert str(default_config_path()) == "/etc/kwsd/kwsd.toml"


def test_example_config_is_complete_and_valid():
    """examples/kwsd.toml names every option with its default value."""
    import dataclasses
    import tomllib
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "examples" / "kwsd.toml"
    data = tomllib.loads(example.read_text())
    cfg = config_from_dict(data)
    defaults = Config()
    for section in ("model", "audio", "vad", "decision", "engine", "api", "logging"):
        ours = getattr(cfg, section)
        for f in dataclasses.fields(ours):
            assert f.name in data[section], f"examples/kwsd.toml lacks {section}.{f.name}"
            assert getattr(ours, f.name) == getattr(getattr(defaults, section), f.name), \
                f"examples/kwsd.toml: {section}.{f.name} differs from the default"
