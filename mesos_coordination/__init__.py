"""Coordination through ZooKeeper (or a standalone stand-in): the session, leader election and
detection, the loop that keeps a client connected to the leader, the fenced key/value stores a
leader keeps its state in, and the life of an elected process (ADR 0008)."""
