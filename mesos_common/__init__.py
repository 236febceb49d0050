"""Small helpers shared by the master, the agent and the framework SDK (DESIGN: one shared module).

Only pure value types and tiny adapters live here: resource arithmetic and parsing, the clock,
flag parsing, logging set-up, master addresses and leader detection.
"""
