"""The committed generated code must be what scripts/gen-proto.sh makes from proto/ now."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GENERATED = REPO / "daemon" / "kwsd" / "api" / "v1"
FILES = ["kwsd_pb2.py", "kwsd_pb2.pyi", "kwsd_pb2_grpc.py"]


def test_generated_code_is_current(tmp_path: Path) -> None:
    subprocess.run(["bash", str(REPO / "scripts" / "gen-proto.sh"), str(tmp_path)], check=True,
                   env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable})
    stale = [name for name in FILES
             if (tmp_path / name).read_bytes() != (GENERATED / name).read_bytes()]
    assert not stale, f"{stale} differ from proto/: run scripts/gen-proto.sh and commit"


def test_generated_package_imports_as_kwsd_api_v1() -> None:
    from kwsd.api.v1 import kwsd_pb2, kwsd_pb2_grpc

    assert kwsd_pb2.DESCRIPTOR.package == "kwsd.v1"
    assert "Kwsd" in kwsd_pb2.DESCRIPTOR.services_by_name
    assert hasattr(kwsd_pb2_grpc, "KwsdServicer")


def test_every_enum_has_an_unspecified_zero() -> None:
    from kwsd.api.v1 import kwsd_pb2

    for enum in kwsd_pb2.DESCRIPTOR.enum_types_by_name.values():
        zero = enum.values_by_number[0].name
        assert zero.endswith("UNSPECIFIED"), f"{enum.name}: zero value is {zero}"
