"""The agent process: registers with the leading master, runs tasks, reports their status."""
