"""The agent's gRPC API: generated from ``protos/`` by ``make protos`` (or the install step).

Import the generated modules from here so a missing build fails with instructions, not an opaque
``ModuleNotFoundError``.
"""

from __future__ import annotations

try:
    from edgeinspect.core.agentapi import edgeinspect_agent_pb2 as ext_pb2
    from edgeinspect.core.agentapi import edgeinspect_agent_pb2_grpc as ext_grpc
    from edgeinspect.core.agentapi import sagemaker_edge_agent_pb2 as sm_pb2
    from edgeinspect.core.agentapi import sagemaker_edge_agent_pb2_grpc as sm_grpc
except ModuleNotFoundError as exc:  # pragma: no cover - only before the first build
    raise ModuleNotFoundError(
        "the agent API code has not been generated: run `make protos` "
        "(or `python -m edgeinspect.core.protobuild`)"
    ) from exc

__all__ = ["ext_grpc", "ext_pb2", "sm_grpc", "sm_pb2"]
