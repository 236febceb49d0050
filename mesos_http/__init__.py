"""The HTTP kit of our services: serving an ASGI app in the process's loop, forwarding a
standby's requests to the leader, the operator endpoints' shared shapes and the OpenAPI
documents (ADR 0008)."""
