"""kwsd.v1, generated from proto/kwsd/v1/kwsd.proto by scripts/gen-proto.sh (do not edit the
*_pb2* modules by hand: regenerate them)."""
