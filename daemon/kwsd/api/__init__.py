"""Generated protobuf/gRPC code of the public API, one sub-package per version."""
