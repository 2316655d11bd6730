"""Servicers for capabilities not built yet: every RPC answers UNIMPLEMENTED, saying which.

Nothing pretends to work: a client learns at once that the call exists in the contract but
this provider build does not serve it, and the health status of such a service is NOT_SERVING.
"""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf.descriptor import ServiceDescriptor


def unbuilt_servicer(base: type[Any], service: ServiceDescriptor, capability: str) -> Any:
    """An instance of `base` whose every method aborts with UNIMPLEMENTED naming the RPC."""

    def make_method(rpc_name: str) -> Any:
        message = f"{service.full_name}/{rpc_name} is not available in this provider build: {capability}"

        async def method(self: Any, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, message)

        method.__name__ = rpc_name
        return method

    methods = {m.name: make_method(m.name) for m in service.methods}
    cls = type(f"Unbuilt{service.name}Servicer", (base,), methods)
    return cls()
