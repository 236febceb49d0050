"""Marathon: the long-running app framework (app definitions, placement, REST v2 API)."""
