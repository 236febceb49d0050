"""Value types every component shares: resources and their arithmetic, agent attributes, task
states, master addresses and timestamps. Pure: imports nothing of ours but `protos` (ADR 0008)."""
