"""The unit files are valid for systemd and start the installed entry point."""

import configparser
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
UNITS = {
    "kwsd.service": "/opt/kwsd/bin/kwsd",
    "kwsd-user.service": "%h/.local/share/kwsd/venv/bin/kwsd",
}
KWSD = Path(sys.executable).with_name("kwsd")

pytestmark = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                reason="systemd-analyze not installed (.ci/run installs systemd)")


def _service_section(unit: str) -> dict[str, str]:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read(REPO / "systemd" / unit)
    return dict(parser["Service"])


@pytest.mark.parametrize("unit", sorted(UNITS))
def test_unit_verifies(unit, tmp_path):
    """`systemd-analyze verify` with ExecStart pointed at this checkout's installed entry point
    (the unit's own path exists only after the install guide's steps)."""
    text = (REPO / "systemd" / unit).read_text()
    assert UNITS[unit] in text
    (tmp_path / unit).write_text(text.replace(UNITS[unit], str(KWSD)))
    env = dict(os.environ)
    cmd = ["systemd-analyze", "verify", str(tmp_path / unit)]
    if unit == "kwsd-user.service":
        runtime = tmp_path / "xdg"
        runtime.mkdir(mode=0o700)
        env["XDG_RUNTIME_DIR"] = str(runtime)
        cmd.insert(1, "--user")
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


@pytest.mark.parametrize("unit", sorted(UNITS))
def test_unit_contract(unit):
    service = _service_section(unit)
    assert service["Type"] == "notify"
    assert service["Restart"] == "on-failure"
    assert "WatchdogSec" in service
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    exec_start = service["ExecStart"].split()
    assert exec_start[0].endswith("/bin/kwsd") and exec_start[1] == "serve"
    for option in ("NoNewPrivileges", "ProtectSystem", "PrivateTmp", "ProtectKernelTunables",
                   "ProtectKernelModules", "ProtectKernelLogs", "ProtectControlGroups",
                   "RestrictAddressFamilies", "RestrictNamespaces", "LockPersonality",
                   "RestrictRealtime", "SystemCallFilter", "UMask"):
        assert option in service, f"{unit} lacks {option}"


def test_system_unit_identity():
    service = _service_section("kwsd.service")
    assert service["User"] == "kwsd"
    assert service["SupplementaryGroups"] == "audio"
    for option in ("RuntimeDirectory", "ConfigurationDirectory", "StateDirectory"):
        assert service[option] == "kwsd"


def test_installed_entry_point_runs():
    """The console script that ExecStart names is what pip installed, and it starts."""
    assert KWSD.exists(), f"{KWSD} missing: install the package (pip install -e .)"
    result = subprocess.run([str(KWSD), "serve", "--help"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "--config" in result.stdout
