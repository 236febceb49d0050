"""The SDK's public surface (`frameworks.__all__`) changes only on purpose."""

from __future__ import annotations

import inspect

import frameworks
from frameworks import Scheduler, SchedulerDriver

EXPECTED = {
    # scheduler side
    "Scheduler", "SchedulerDriver", "DriverStatus",
    # what a framework's pure scheduling core asks of the driver
    "SchedulerActions", "DriverActions", "service_framework_info",
    # executor side
    "Executor", "ExecutorDriver",
    # reading offers
    "Resources", "OfferBudget", "offer_resources", "offer_cpus", "offer_mem", "offer_disk",
    "offer_gpus", "offer_ports", "pick_ports", "port_resources", "task_resources",
    # building tasks and reading their states
    "command_task", "command_info", "executor_info", "executor_task", "kill_policy", "volume",
    "health_check",
    "TERMINAL_STATES", "is_terminal", "state_name",
    # reading tasks' sandbox files
    "SandboxFiles", "SandboxNotFound",
}

SCHEDULER_CALLBACKS = {
    "registered", "reregistered", "disconnected", "resource_offers", "offer_rescinded",
    "status_update", "framework_message", "agent_lost", "executor_lost", "error",
}

DRIVER_METHODS = {
    "start", "stop", "abort", "join", "run", "serve", "launch_tasks", "accept_offers",
    "decline_offer", "revive_offers", "suppress_offers", "kill_task", "shutdown_executor",
    "acknowledge_status_update", "reconcile_tasks", "send_framework_message",
}


def test_all_lists_exactly_the_public_names() -> None:
    assert set(frameworks.__all__) == EXPECTED
    assert len(frameworks.__all__) == len(EXPECTED)
    for name in frameworks.__all__:
        assert hasattr(frameworks, name), name


def test_scheduler_callbacks() -> None:
    public = {name for name, _ in inspect.getmembers(Scheduler, inspect.isfunction)
              if not name.startswith("_")}
    assert public == SCHEDULER_CALLBACKS


def test_driver_methods_and_signature() -> None:
    public = {name for name, _ in inspect.getmembers(SchedulerDriver, inspect.isfunction)
              if not name.startswith("_")}
    assert public == DRIVER_METHODS
    parameters = inspect.signature(SchedulerDriver).parameters
    assert list(parameters) == [
        "scheduler", "framework_info", "master", "implicit_acknowledgements", "tls", "credential"
    ]
    assert parameters["master"].default == "127.0.0.1:5050"
    for keyword in ("implicit_acknowledgements", "tls", "credential"):
        assert parameters[keyword].kind is inspect.Parameter.KEYWORD_ONLY
    assert isinstance(inspect.getattr_static(SchedulerDriver, "framework_id"), property)
