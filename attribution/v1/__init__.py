"""Generated protobuf/gRPC modules for attribution.v1 (see scripts/gen-proto)."""
