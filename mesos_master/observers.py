"""Who watches the master's cluster change: the hook behind the operator API's event stream.

    Master, ClusterTasks ── task added / updated, agent added / removed,
                            framework added / updated / removed, closed ──▶ Observers
    Observers ── each call, to every observer ──▶ e.g. the SUBSCRIBE shell's subscribers

The core calls its `Observers` at the one place where it records each change, after the
change is made, so an observer reads the records as they now are. Observers must not call
back into the master; they only take note (the shell queues an event).
"""

from __future__ import annotations

from typing import Protocol

from mesos_master.records import AgentRecord, FrameworkRecord, TaskRecord

__all__ = ["MasterObserver", "Observers"]


class MasterObserver(Protocol):
    """Notified of each change to the cluster's tasks, agents and frameworks."""

    def task_added(self, task: TaskRecord) -> None: ...

    def task_updated(self, task: TaskRecord) -> None: ...

    def agent_added(self, agent: AgentRecord) -> None: ...

    def agent_removed(self, agent: AgentRecord) -> None: ...

    def framework_added(self, framework: FrameworkRecord) -> None: ...

    def framework_updated(self, framework: FrameworkRecord) -> None: ...

    def framework_removed(self, framework: FrameworkRecord) -> None: ...

    def closed(self) -> None:
        """The core's life ended (its leadership term is over): nothing more will come."""
        ...


class Observers:
    """The master's observers; a `MasterObserver` that tells each of them."""

    def __init__(self) -> None:
        self._observers: list[MasterObserver] = []

    def add(self, observer: MasterObserver) -> None:
        self._observers.append(observer)

    def remove(self, observer: MasterObserver) -> None:
        if observer in self._observers:
            self._observers.remove(observer)

    def __len__(self) -> int:
        return len(self._observers)

    def task_added(self, task: TaskRecord) -> None:
        for observer in list(self._observers):
            observer.task_added(task)

    def task_updated(self, task: TaskRecord) -> None:
        for observer in list(self._observers):
            observer.task_updated(task)

    def agent_added(self, agent: AgentRecord) -> None:
        for observer in list(self._observers):
            observer.agent_added(agent)

    def agent_removed(self, agent: AgentRecord) -> None:
        for observer in list(self._observers):
            observer.agent_removed(agent)

    def framework_added(self, framework: FrameworkRecord) -> None:
        for observer in list(self._observers):
            observer.framework_added(framework)

    def framework_updated(self, framework: FrameworkRecord) -> None:
        for observer in list(self._observers):
            observer.framework_updated(framework)

    def framework_removed(self, framework: FrameworkRecord) -> None:
        for observer in list(self._observers):
            observer.framework_removed(framework)

    def closed(self) -> None:
        observers, self._observers = self._observers, []
        for observer in observers:
            observer.closed()
