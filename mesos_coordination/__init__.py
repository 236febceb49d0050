"""Coordination through ZooKeeper (or a standalone stand-in): the session, leader election and
detection, the fenced key/value stores a leader keeps its state in, and the life of an elected
process (ADR 0008)."""
