"""gRPC servicers: the only place protobuf meets the provider's domain code."""
