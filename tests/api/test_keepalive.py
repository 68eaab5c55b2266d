"""Keepalive policy: a client may ping an idle subscription every few seconds without being
cut off (the gRPC default would send GOAWAY "too_many_pings" to anything faster than one ping
per 5 minutes), while a client pinging every second still is."""

from __future__ import annotations

import time

import grpc
from kwsd.api.v1 import kwsd_pb2 as pb
from kwsd.api.v1 import kwsd_pb2_grpc as pb_grpc
from running_daemon import start

from .conftest import make_config


def _subscribe(address: str, ping_ms: int):
    channel = grpc.insecure_channel(address, options=[
        ("grpc.keepalive_time_ms", ping_ms), ("grpc.keepalive_timeout_ms", 5_000),
        ("grpc.keepalive_permit_without_calls", 1), ("grpc.http2.max_pings_without_data", 0),
        ("grpc.use_local_subchannel_pool", 1)])  # one connection per channel
    call = pb_grpc.KwsdStub(channel).Subscribe(pb.SubscribeRequest())
    call.initial_metadata()
    return channel, call


def test_idle_subscriber_may_ping_every_6_s(random_bundle, silence_wav, sock_dir):
    running = start(make_config(random_bundle, silence_wav, sock_dir / "kwsd.sock",
                                realtime=True, loop=True))
    try:
        polite = _subscribe(running.address, 6_000)
        rude = _subscribe(running.address, 1_000)
        # Four pings from the polite client: the default policy would have cut it at the third.
        time.sleep(25)
        assert not polite[1].done(), polite[1].details()
        assert rude[1].done() and rude[1].code() == grpc.StatusCode.UNAVAILABLE
        for channel, call in (polite, rude):
            call.cancel()
            channel.close()
    finally:
        running.stop()
