#!/usr/bin/env python3
"""grpcurl-like look at a running kwsd using only server reflection (no generated code): list
services, describe kwsd.v1.Kwsd, call GetModel, GetStatus and the health check, print JSON.

    .venv/bin/python scripts/grpc-reflect.py unix:$XDG_RUNTIME_DIR/kwsd/kwsd.sock
    .venv/bin/python scripts/grpc-reflect.py host:50051 --tls-ca ca.pem --token-file tok
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "daemon"))

import grpc  # noqa: E402
from google.protobuf import descriptor_pool, json_format, message_factory  # noqa: E402
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (  # noqa: E402
    ProtoReflectionDescriptorDatabase,
)
from kwsd.client.channel import Connection  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("address")
    parser.add_argument("--tls-ca", default="")
    parser.add_argument("--token-file", default="")
    parser.add_argument("--insecure-loopback", action="store_true")
    args = parser.parse_args()
    token = Path(args.token_file).read_text().strip() if args.token_file else ""
    conn = Connection(args.address, token=token, tls_ca=args.tls_ca,
                      insecure_loopback=args.insecure_loopback)
    channel = conn.open()
    grpc.channel_ready_future(channel).result(timeout=15)
    db = ProtoReflectionDescriptorDatabase(channel)
    print("$ list")
    for name in db.get_services():
        print(" ", name)
    pool = descriptor_pool.DescriptorPool(db)
    service = pool.FindServiceByName("kwsd.v1.Kwsd")
    print("$ describe kwsd.v1.Kwsd")
    for m in service.methods:
        cs = "stream " if m.client_streaming else ""
        ss = "stream " if m.server_streaming else ""
        print(f"  rpc {m.name}({cs}{m.input_type.full_name}) returns "
              f"({ss}{m.output_type.full_name})")
    calls = [("kwsd.v1.Kwsd", "GetModel", {}), ("kwsd.v1.Kwsd", "GetStatus", {}),
             ("grpc.health.v1.Health", "Check", {"service": "kwsd.v1.Kwsd"})]
    for service_name, method, fields in calls:
        m = pool.FindServiceByName(service_name).methods_by_name[method]
        request_cls = message_factory.GetMessageClass(m.input_type)
        response_cls = message_factory.GetMessageClass(m.output_type)
        rpc = channel.unary_unary(f"/{service_name}/{method}",
                                  request_serializer=request_cls.SerializeToString,
                                  response_deserializer=response_cls.FromString)
        print(f"$ {service_name}/{method} {fields or ''}")
        reply = rpc(request_cls(**fields), metadata=conn.metadata, timeout=10)
        print(json_format.MessageToJson(reply, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
