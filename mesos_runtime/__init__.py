"""What every process of ours runs on: injected clocks, Mesos-style flags, logging set-up,
the gRPC channel options of a master's clients and backlog batching of streamed messages
(ADR 0008)."""
