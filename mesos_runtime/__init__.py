"""What every process of ours runs on: injected clocks, Mesos-style flags, logging set-up,
the gRPC conventions of a master's clients, backlog batching of streamed messages and
reconnect backoff (ADR 0008)."""
