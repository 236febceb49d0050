"""Value types every component shares: resources and their arithmetic, agent attributes, task
states and master addresses. Pure: imports nothing of ours but `protos` (ADR 0008)."""
