"""What every process of ours runs on: injected clocks, Mesos-style flags, logging set-up,
the gRPC conventions of a master's clients, backlog batching of streamed messages,
reconnect backoff and stopping child tasks (ADR 0008, ADR 0009)."""
