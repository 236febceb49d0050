"""`python -m mesos_agent` runs the agent like the `mesos-agent` console script."""

from __future__ import annotations

from mesos_agent.main import main

if __name__ == "__main__":
    main()
