"""GetModel and GetStatus say which encoder precision the daemon runs: the bundle's kws.json
`streaming.precision`, or the config's `engine.precision` (also after a reload)."""

from __future__ import annotations

import dataclasses
import json
import shutil

import grpc
import pytest
from encoder_precision import running_precision
from kwsd.api.v1 import kwsd_pb2 as pb
from kwsd.api.v1 import kwsd_pb2_grpc as pb_grpc
from kwsd.model.bundle import META_FILE, write_meta
from running_daemon import start

from .conftest import make_config


@pytest.fixture
def int8_bundle(random_bundle, tmp_path):
    path = tmp_path / "int8"
    shutil.copytree(random_bundle, path)
    meta = json.loads((path / META_FILE).read_text())
    meta["streaming"] = {"precision": "int8"}
    write_meta(path, meta)
    return path


def _precisions(address: str) -> tuple[str, str]:
    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.KwsdStub(channel)
        return (stub.GetModel(pb.GetModelRequest()).precision,
                stub.GetStatus(pb.GetStatusRequest()).precision)


def _stream_precision(daemon) -> str:
    pipeline = daemon.open_stream("probe")
    try:
        return running_precision(pipeline.classifier.encoder)
    finally:
        pipeline.close()


def test_the_bundle_precision_is_reported_and_run(int8_bundle, silence_wav, sock_dir):
    running = start(make_config(int8_bundle, silence_wav, sock_dir / "kwsd.sock"))
    try:
        assert _precisions(running.address) == ("int8", "int8")
        assert _stream_precision(running.daemon) == "int8"
        # A reload that sets engine.precision: new streams run it and the API says so.
        cfg = running.config
        new = dataclasses.replace(cfg, engine=dataclasses.replace(cfg.engine, precision="fp32"))
        assert running.daemon.reload(new)
        assert _precisions(running.address) == ("fp32", "fp32")
        assert _stream_precision(running.daemon) == "fp32"
    finally:
        running.stop()


def test_engine_precision_overrides_the_bundle(int8_bundle, silence_wav, sock_dir):
    config = make_config(int8_bundle, silence_wav, sock_dir / "kwsd.sock")
    config = dataclasses.replace(
        config, engine=dataclasses.replace(config.engine, precision="bf16-conv"))
    running = start(config)
    try:
        assert _precisions(running.address) == ("bf16-conv", "bf16-conv")
        assert _stream_precision(running.daemon) == "bf16-conv"
    finally:
        running.stop()


def test_a_bundle_without_precision_runs_fp32(random_bundle, silence_wav, sock_dir):
    running = start(make_config(random_bundle, silence_wav, sock_dir / "kwsd.sock"))
    try:
        assert _precisions(running.address) == ("fp32", "fp32")
        assert _stream_precision(running.daemon) == "fp32"
    finally:
        running.stop()
