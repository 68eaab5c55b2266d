"""Request decoding that never fails inside grpc.

When a request message cannot be parsed, grpcio's own deserialization path ends the call with
INTERNAL ("Exception deserializing request!") but keeps the HTTP/2 stream counted: after about
`max_concurrent_streams` such messages every new call on that connection is refused
(RST_STREAM REFUSED_STREAM, measured with grpcio 1.76). So kwsd registers its methods with a
decoder that returns an `Undecodable` marker instead of raising, and the servicer answers it
with INVALID_ARGUMENT and a message that names the expected type.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from google.protobuf.message import DecodeError

from kwsd.api.v1 import kwsd_pb2 as pb

SERVICE = pb.DESCRIPTOR.services_by_name["Kwsd"]  # kwsd.v1.Kwsd, as the proto declares it


@dataclass(frozen=True)
class Undecodable:
    """Bytes that are not a valid message of `type_name`."""

    type_name: str
    size: int
    error: str

    def describe(self) -> str:
        return (f"{self.size} bytes that are not a valid {self.type_name} message "
                f"({self.error or 'parse error'})")


def _decoder(message_cls):
    def decode(data: bytes):
        try:
            return message_cls.FromString(data)
        except (DecodeError, ValueError, RuntimeError) as exc:
            return Undecodable(message_cls.DESCRIPTOR.full_name, len(data), str(exc))
    return decode


_HANDLER_KINDS = {  # (client streaming, server streaming) -> grpc's handler factory
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


def add_servicer(servicer, server: grpc.Server) -> None:
    """What the generated `add_KwsdServicer_to_server` does, with decoders that never raise;
    every method of the service in the proto, so a new RPC cannot be left out here."""
    handlers = {}
    for method in SERVICE.methods:
        kind = _HANDLER_KINDS[(method.client_streaming, method.server_streaming)]
        handlers[method.name] = kind(
            getattr(servicer, method.name),
            request_deserializer=_decoder(getattr(pb, method.input_type.name)),
            response_serializer=getattr(pb, method.output_type.name).SerializeToString)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE.full_name,
                                                                        handlers),))
    server.add_registered_method_handlers(SERVICE.full_name, handlers)
