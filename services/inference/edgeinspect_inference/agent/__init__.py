"""The edge agent: ONNX Runtime models behind a SageMaker-Edge-compatible gRPC API plus our extensions.

``table.ModelTable`` holds the domain (load, unload, alias, shadow, predict); ``servicers`` adapt it
to gRPC; ``server.AgentServer`` assembles and serves it; ``main`` is the console script.
"""
