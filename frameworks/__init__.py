"""The framework SDK: write a `Scheduler`, run it with a `SchedulerDriver`; write a custom
executor with `Executor` and `ExecutorDriver`. Helpers read offers (`offer_resources`,
`OfferBudget`) and build tasks (`command_task`, `executor_task`) without protobuf boilerplate;
`SandboxFiles` reads (and follows) a task's sandbox files by its id.
"""

from __future__ import annotations

from frameworks.actions import SchedulerActions
from frameworks.driver import DriverStatus, SchedulerDriver
from frameworks.driver_actions import DriverActions, service_framework_info
from frameworks.executor import Executor, ExecutorDriver
from frameworks.offers import (
    OfferBudget,
    offer_cpus,
    offer_disk,
    offer_gpus,
    offer_mem,
    offer_ports,
    offer_resources,
    pick_ports,
    port_resources,
    task_resources,
)
from frameworks.scheduler import Scheduler
from frameworks.tasks import (
    TERMINAL_STATES,
    command_info,
    command_task,
    executor_info,
    executor_task,
    health_check,
    is_terminal,
    kill_policy,
    state_name,
    volume,
)
from mesos_http.sandbox_files import SandboxFiles, SandboxNotFound
from mesos_values.resources import Resources

__all__ = [
    "TERMINAL_STATES",
    "DriverActions",
    "DriverStatus",
    "Executor",
    "ExecutorDriver",
    "OfferBudget",
    "Resources",
    "SandboxFiles",
    "SandboxNotFound",
    "Scheduler",
    "SchedulerActions",
    "SchedulerDriver",
    "command_info",
    "command_task",
    "executor_info",
    "executor_task",
    "health_check",
    "is_terminal",
    "kill_policy",
    "offer_cpus",
    "offer_disk",
    "offer_gpus",
    "offer_mem",
    "offer_ports",
    "offer_resources",
    "pick_ports",
    "port_resources",
    "service_framework_info",
    "state_name",
    "task_resources",
    "volume",
]
