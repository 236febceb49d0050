"""Marathon's scheduler state: apps, instances and deployments, as one pure core.

    REST handlers ──update_root / kill / cancel──▶ MarathonCore ──actions──▶ SDK driver (shell)
    SDK driver ──offers / status updates──────────▶     │ ──writes──▶ Sink (store, `then` = durable)
    shell timer ──tick()──────────────────────────▶     │ ──events──▶ EventBus

Every change to the desired state (the root group) is a deployment (`marathon.deployments`):
its steps run in order, each action driven by the same rules whenever something happens —
an instance launched, ran, got healthy, terminated, or the timer ticked. Outside deployments
the core keeps every app at its `instances` ("scale check"): lost instances are replaced,
extra ones killed. An unreachable instance still counts until its app's `unreachableStrategy`
makes it inactive (replaced, kept until expunged); killing it expunges it. Launches go
through the launch queue (`marathon.launch_queue`) and are sent only once the instance
record is durable, so a new leader knows every task that may exist.

No I/O: time comes from the injected clocks (`clock`: monotonic, for backoff; `wall`: wall
seconds, for versions and timestamps) and everything outside goes through `SchedulerActions`, the
store `Sink` and `publish`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from frameworks.actions import SchedulerActions
from frameworks.placement import AgentView, OfferView, Spreads, check
from marathon import events
from marathon.app_definition import AppDefinition
from marathon.app_definition import to_json as app_to_json
from marathon.app_rules import AppRules, check_app_rules
from marathon.constraints import (
    offer_view,
    select_instances_to_kill,
)
from marathon.deployments import (
    ActionType,
    AppLockedError,
    DeploymentAction,
    DeploymentPlan,
    ReadinessCheckResult,
    ReplaceInstance,
    conflicting_deployments,
    plan_deployment,
    replace_step,
    revert_target,
)
from marathon.groups import (
    Group,
    assign_service_ports,
    assign_versions,
    put_app,
    validate_root,
)
from marathon.launch_queue import LaunchQueue, task_infos
from marathon.limits import check_limits
from marathon.paths import PathId
from marathon.state import (
    FAILED,
    FRAMEWORK_KEY,
    ROOT_KEY,
    TERMINAL,
    Deployment,
    Instance,
    Recovered,
    root_at_version,
    root_record,
)
from mesos_coordination.store import Mutation, Sink, split_key, store_key
from mesos_runtime.clock import Clock
from mesos_values.timestamps import format_timestamp
from protos import mesos_pb2

MAX_APP_VERSIONS = 50
DECLINE_SECONDS = 5.0
PER_AGENT_LABEL = "MARATHON_PER_AGENT"
"""Label (value "true") asking for one instance on every agent that matches the app's
constraints, following agents as they come and go; `instances` is then ignored."""
IDLE_DECLINE_SECONDS = 120.0
FIRST_LAUNCH_WAVE = 64
"""Instances at most in a burst's first launch on an agent; its next offer takes the rest of its
share (docs/adr/0005)."""

EXPUNGED_CONDITION = "Killed"
"""The condition `instance_changed_event` reports for an expunged instance, as Marathon does."""


class InstanceObserver(Protocol):
    """Told when instances start running and when they are gone (the health checker)."""

    def running(self, app: AppDefinition, instance: Instance) -> None: ...

    def gone(self, instance_id: str) -> None: ...

    def agent_health(self, instance_id: str, task_id: str, healthy: bool) -> None:
        """The agent's health check of the instance's task said `healthy` (COMMAND checks
        run on the agent, in the task's container)."""
        ...


def is_per_agent(app: AppDefinition) -> bool:
    """Whether the app asks for one instance on every matching agent (`PER_AGENT_LABEL`)."""
    return app.labels.get(PER_AGENT_LABEL, "").lower() == "true"


def config_version(app: AppDefinition) -> str:
    """The version of the app's configuration (scale changes keep it)."""
    info = app.version_info or {}
    return str(info.get("lastConfigChangeAt") or app.version or "")


class MarathonCore:
    """Apps, instances and deployments; see the module docstring."""

    def __init__(
        self,
        *,
        clock: Clock,
        wall: Clock,
        actions: SchedulerActions,
        sink: Sink,
        publish: Callable[[events.Event], None],
        recovered: Recovered | None = None,
        id_factory: Callable[[], str] | None = None,
        observer: InstanceObserver | None = None,
        rules: AppRules | None = None,
        sigterm_delay: float = 0.0,
        first_wave: int | None = FIRST_LAUNCH_WAVE,
    ) -> None:
        state = recovered or Recovered()
        self.first_wave = first_wave
        """The most instances a burst's first launch on an agent takes (None: no limit)."""
        self._burst: set[str] = set()  # agents launched on since the queue was last empty
        self._rest: dict[str, int] = {}  # agent id -> its share left after its first wave
        self.rules = rules or AppRules()
        self.sigterm_delay = sigterm_delay
        """How long a killed instance stays up after TASK_KILLING (load balancers and DNS
        drop it meanwhile); set on the tasks it launches."""
        self.clock = clock
        self.wall = wall
        self.actions = actions
        self.sink = sink
        self.publish = publish
        self.observer = observer
        self.root = state.root
        self.app_versions = state.app_versions
        self.root_versions = state.root_versions
        self.instances = state.instances
        self._by_app: dict[PathId, dict[str, Instance]] = {}
        self._by_task: dict[str, Instance] = {}
        for instance in self.instances.values():
            self._index(instance)
        self.advance_wanted = False
        self.framework_id = state.framework_id
        self.set_aside = list(state.set_aside)
        self.queue = LaunchQueue(wall, uuid_factory=id_factory)
        self.deployments: dict[str, Deployment] = {}
        self._id_factory = id_factory
        for plan_id, version, step, original, target in state.deployments:
            plan = plan_deployment(original, target, version, plan_id=plan_id)
            self.deployments[plan_id] = Deployment(plan, step)
        self.last_failures: dict[PathId, dict[str, Any]] = {}

    # ------------------------------------------------------------ desired state

    def update_root(
        self, change: Callable[[Group], Group], *, force: bool = False,
        kill: Mapping[PathId, Sequence[str]] | None = None,
    ) -> DeploymentPlan:
        """Apply `change` to the root group and start the deployment that realises it.

        Raises AppValidationError (422) for an invalid result (or a field over its bound:
        `check_limits`) and AppLockedError (409) when a
        running deployment holds an affected app (unless `force`, which cancels those).
        """
        plan = self.preview_root(change, kill=kill)
        target = plan.target
        conflicts = conflicting_deployments(plan, [d.plan for d in self.deployments.values()])
        if conflicts and not force:
            raise AppLockedError([c.id for c in conflicts])
        for conflict in conflicts:
            self._end_deployment(conflict.id, outcome="deployment_failed",
                                 reason="canceled by a forced deployment")
        self._set_root(target)
        if not plan.is_empty:
            deployment = Deployment(plan)
            self.deployments[plan.id] = deployment
            self.sink.write(Mutation(store_key("deployments", plan.id), deployment.to_record()))
            self.publish(events.deployment_event("deployment_info", plan.event_json(),
                                                 current_step=self._step_json(plan, 1)))
        self.publish(events.group_change_event("/", plan.version))
        self.advance()
        return plan

    def preview_root(
        self, change: Callable[[Group], Group], *,
        kill: Mapping[PathId, Sequence[str]] | None = None,
    ) -> DeploymentPlan:
        """The deployment `update_root(change)` would start, validated the same way
        (AppValidationError), with nothing stored or started (`dryRun=true`)."""
        version = self._new_version()
        target = assign_versions(
            self.root, assign_service_ports(self.root, change(self.root), self.rules.service_ports),
            version)
        check_limits(target)
        validate_root(target)
        check_app_rules(self.root, target, self.rules)
        return plan_deployment(self.root, target, version, to_kill=kill,
                               plan_id=self._id_factory() if self._id_factory else None)

    def group_at_version(self, group_id: PathId, version: str) -> Group | None:
        """Group `group_id` as it was in root version `version` (one of the latest
        `MAX_APP_VERSIONS`), or None when that version is not (or no longer) stored."""
        record = self.root_versions.get(version)
        root = None if record is None else root_at_version(record, self.app_versions)
        return None if root is None else root.group(group_id)

    def cancel_deployment(self, plan_id: str, *, force: bool) -> DeploymentPlan | None:
        """Stop a deployment; without `force` roll back to its original state (returns the
        rollback's plan). KeyError when there is no such deployment."""
        deployment = self.deployments[plan_id]
        self._end_deployment(plan_id, outcome="deployment_failed", reason="canceled")
        if force:
            return None
        target = revert_target(deployment.plan, self.root)
        return self.update_root(lambda _root: target, force=True)

    def discard_set_aside(self, app_id: PathId) -> bool:
        """Delete the set-aside records of app `app_id` from the store; False if it has none.
        (The root record still names it until the next `update_root` rewrites it.)"""
        prefix = store_key("apps", f"{app_id}@")
        discarded = [r for r in self.set_aside if r.key.startswith(prefix)]
        for record in discarded:
            self.set_aside.remove(record)
            self.app_versions.get(app_id, {}).pop(split_key(record.key)[1].rpartition("@")[2],
                                                  None)
            self.sink.write(Mutation(record.key, None))
        return bool(discarded)

    def discard_record(self, key: str) -> bool:
        """Delete set-aside record `key` from the store (`DELETE /v2/set-aside-records`);
        False if no record of that key is set aside. The root record is not deleted but
        rewritten from the recovered tree, without the parts that were set aside."""
        if not any(record.key == key for record in self.set_aside):
            return False
        if key == ROOT_KEY:
            self.update_root(lambda root: root)
            return True
        kind, name = split_key(key)
        if kind == "apps":
            app_id = PathId.parse(name.rpartition("@")[0])
            self.discard_set_aside(app_id)
            if self.root.app(app_id) is None:  # the root record may still name it
                self.update_root(lambda root: root)
            return True
        self.set_aside = [record for record in self.set_aside if record.key != key]
        self.sink.write(Mutation(key, None))
        return True

    def kill_tasks(self, task_ids: Iterable[str], *, scale: bool,
                   force: bool = False) -> DeploymentPlan | None:
        """Kill tasks; with `scale` the apps shrink by as many (a deployment, which `force`
        lets supersede the deployments holding them), otherwise the tasks are replaced.
        Unknown ids raise KeyError."""
        chosen = [self._by_task[task_id] for task_id in task_ids]
        if not scale:
            for instance in chosen:
                self._kill(instance)
            self.advance()
            return None
        per_app: dict[PathId, list[str]] = {}
        for instance in chosen:
            per_app.setdefault(instance.app_id, []).append(instance.instance_id)

        def shrink(root: Group) -> Group:
            for app_id, killed in per_app.items():
                app = root.app(app_id)
                if app is not None:
                    root = put_app(root, app.replace(instances=max(0, app.instances - len(killed))))
            return root

        return self.update_root(shrink, kill=per_app, force=force)

    # ---------------------------------------------------------------- the driver

    def registered(self, framework_id: str) -> None:
        """Subscribed: remember the framework id and reconcile every known task."""
        if framework_id != self.framework_id:
            self.framework_id = framework_id
            self.sink.write(Mutation(FRAMEWORK_KEY, framework_id.encode()))
        known = [(i.task_id, i.agent_id) for i in self.instances.values()]
        self.actions.reconcile(known)
        self.actions.revive()

    def resource_offers(self, offers: Sequence[mesos_pb2.Offer]) -> None:
        """Launch queued instances into the offers (once each instance is durable); decline
        the rest. The queue is split evenly over the offers that came together (each takes at
        most its share of what is still queued, the last one all that is left), so that a
        burst starts on every agent at once instead of filling the first one. An agent's
        first launch of a burst takes at most `first_wave` instances and has the offer's rest
        offered again at once: the agent starts them while Marathon and the master handle
        the rest of its share, which its next offer takes (docs/adr/0005)."""
        spreads: Spreads[PathId] = Spreads(self._placed_agents)
        for index, offer in enumerate(offers):
            view = offer_view(offer)
            per_agent = self._queue_per_agent(view, spreads)
            share = -(-self.queue.total() // (len(offers) - index))
            agent_id = offer.agent_id.value
            first = self.first_wave is not None and agent_id not in self._burst
            cap = self.first_wave if first else self._rest.get(agent_id)
            limited = cap is not None and share > cap
            match = self.queue.match_offer(view, spreads,
                                           limit=cap if cap is not None and limited else share)
            for app in per_agent:  # what did not fit here must not go to another agent
                self.queue.purge(app.id)
            if not match.launches:
                # A per-agent app that did not fit here wants this agent's next offer soon.
                idle = not self.queue.queued_apps() and not per_agent
                self.actions.decline(offer.id.value,
                                     IDLE_DECLINE_SECONDS if idle else DECLINE_SECONDS)
                continue
            refuse = None
            if first:
                self._burst.add(agent_id)
                if cap is not None and limited:
                    self._rest[agent_id] = share - cap
                    refuse = 0.0 if self.queue.total() else None  # the rest: at once
            else:
                self._rest.pop(agent_id, None)
            attributes = view.agent.attributes
            tasks = task_infos(match.launches, sigterm_delay=self.sigterm_delay)
            offer_id = offer.id.value
            now = self.wall.now()
            for number, decision in enumerate(match.launches, start=1):
                app = decision.app
                instance = Instance(
                    decision.instance_id, decision.task_id, app.id, app.version or "",
                    config_version(app), decision.agent_id, decision.hostname,
                    decision.host_ports, attributes, now,
                )
                instance.ready = not app.readiness_checks
                self.instances[instance.instance_id] = instance
                self._index(instance)
                launch = None
                if number == len(match.launches):  # once every instance record is durable
                    def launch(offer_id: str = offer_id,
                               tasks: list[mesos_pb2.TaskInfo] = tasks,
                               refuse: float | None = refuse) -> None:
                        self.actions.launch(offer_id, tasks, refuse_seconds=refuse)
                self._store_instance(instance, then=launch)
        if not self.queue.total():  # the burst is over: the next one starts small again
            self._burst.clear()
            self._rest.clear()

    def _queue_per_agent(self, offer: OfferView, spreads: Spreads[PathId]) -> list[AppDefinition]:
        """Queue one instance of each per-agent app that matches `offer`'s agent and has no
        live instance there yet."""
        agent_id = offer.offer.agent_id.value
        queued = []
        for app in self.root.transitive_apps():
            if not is_per_agent(app) or app.unsupported_reason is not None:
                continue
            if any(i.agent_id == agent_id and i.live
                   for i in self.app_instances(app.id)):
                continue
            spread = spreads.of(app.id) if app.constraints else None
            if check(app.constraints, offer.agent, spread):
                self.queue.set_count(app, 1)
                queued.append(app)
        return queued

    def status_update(self, status: mesos_pb2.TaskStatus, *, advance: bool = True) -> None:
        """Apply a task status update. With `advance=False` deployments and the scale check
        move on only at the next `advance()` (`advance_wanted` says one is due), so that a
        burst of updates costs one pass instead of one each."""
        task_id = status.task_id.value
        state = mesos_pb2.TaskState.Name(status.state)
        instance = self._by_task.get(task_id)
        if instance is None:
            if state not in TERMINAL:  # a task we do not know: Marathon kills it
                self.actions.kill(task_id, status.agent_id.value, None)
            return
        previous, was = instance.state, instance.condition
        instance.state = state
        instance.message = status.message
        now = self.wall.now()
        if state == "TASK_RUNNING" and instance.started_at is None:
            instance.started_at = now
        app = self.root.app(instance.app_id)
        if state == "TASK_UNREACHABLE":
            instance.unreachable_since = instance.unreachable_since or now
            instance.inactive = instance.inactive or _unreachable_past(app, instance, now)
        else:  # back (or gone for good): it counts again
            instance.unreachable_since = None
            instance.inactive = False
        changed = previous != state or was != instance.condition
        if changed:
            self.publish(events.status_update_event(
                agent_id=instance.agent_id, task_id=task_id, state=state,
                message=status.message, app_id=str(instance.app_id), host=instance.host,
                ports=instance.ports, version=instance.version,
            ))
            self._publish_condition(instance, instance.condition.value)
        if state in TERMINAL:
            self._remove_instance(instance)
            if state in FAILED and not instance.killing and app is not None:
                self.queue.task_failed(app)
                self.last_failures[app.id] = {
                    "appId": str(app.id), "host": instance.host, "message": status.message,
                    "state": state, "taskId": task_id, "timestamp": format_timestamp(now),
                    "version": instance.version, "slaveId": instance.agent_id,
                }
        elif instance.unreachable and instance.killing:
            self._expunge(instance)  # it cannot hear the kill; killed if it ever comes back
        elif changed:
            self._store_instance(instance)
            if previous != state and state == "TASK_RUNNING" and app is not None \
                    and self.observer is not None:
                self.observer.running(app, instance)
        if state == "TASK_RUNNING" and status.HasField("healthy") and self.observer is not None:
            self.observer.agent_health(instance.instance_id, task_id, status.healthy)
        if advance:
            self.advance()
        else:
            self.advance_wanted = True

    def watch_running_instances(self) -> None:
        """Hand the instances already running when this term starts (recovered from the
        store) to the observer, so that their health checks run again."""
        if self.observer is None:
            return
        for instance in self.instances.values():
            app = self.root.app(instance.app_id)
            if app is not None and instance.state == "TASK_RUNNING" and not instance.killing:
                self.observer.running(app, instance)

    def health_changed(self, instance_id: str, healthy: bool) -> None:
        """The health checker's verdict on an instance."""
        instance = self.instances.get(instance_id)
        if instance is None:
            return
        instance.healthy = healthy
        if healthy:
            self.queue.reset_delay(instance.app_id)
        self.advance()

    def instance_ready(self, instance_id: str) -> None:
        """The readiness checker's verdict: the instance is ready."""
        instance = self.instances.get(instance_id)
        if instance is not None and not instance.ready:
            instance.ready = True
            self.advance()

    def kill_instance(self, instance_id: str) -> None:
        """Kill an instance (e.g. unhealthy too long); it is replaced. An unreachable one is
        left alone: its checks fail because nobody can reach it, not because it is sick."""
        instance = self.instances.get(instance_id)
        if instance is not None and not instance.unreachable:
            self._kill(instance)

    def tick(self) -> None:
        """Periodic work: unreachable instances, backoff resets, deployments, scale check.

        An instance unreachable for its app's `inactiveAfterSeconds` becomes inactive (no
        longer counted, so the scale check replaces it); once inactive for its
        `expungeAfterSeconds` it is expunged. A `"disabled"` strategy waits forever.
        """
        now = self.wall.now()
        for instance in list(self.instances.values()):
            app = self.root.app(instance.app_id)
            if instance.state == "TASK_RUNNING" and instance.started_at is not None:
                self.queue.instance_running(
                    instance.app_id, now - instance.started_at,
                    instance.healthy if app is not None and app.health_checks else None,
                )
            if not instance.unreachable:
                continue
            if not instance.inactive and _unreachable_past(app, instance, now):
                instance.inactive = True
                self._store_instance(instance)
                self._publish_condition(instance, instance.condition.value)
            if instance.inactive and _unreachable_past(app, instance, now, expunge=True):
                self._expunge(instance)
        self.advance()

    # ---------------------------------------------------------------- queries

    def app_instances(self, app_id: PathId) -> list[Instance]:
        """The app's instances (an index: no scan of every instance)."""
        return list(self._by_app.get(app_id, {}).values())

    def deployments_of(self, app_id: PathId) -> list[str]:
        """Ids of the deployments that hold the app."""
        return [d.plan.id for d in self.deployments.values() if app_id in d.plan.affected_apps]

    def deployments_json(
        self, readiness: Mapping[PathId, Sequence[ReadinessCheckResult]] | None = None
    ) -> list[dict[str, Any]]:
        return [d.plan.to_json(max(1, d.step) if d.plan.steps else 0, readiness)
                for d in self.deployments.values()]

    def counts(self, app: AppDefinition) -> dict[str, int]:
        """tasksStaged/Running/Healthy/Unhealthy for the app JSON."""
        instances = [i for i in self.app_instances(app.id) if i.state not in TERMINAL]
        running = [i for i in instances if i.state == "TASK_RUNNING"]
        return {
            "tasksStaged": len([i for i in instances if i.state == "TASK_STAGING"]),
            "tasksRunning": len(running),
            "tasksHealthy": len([i for i in running if i.healthy]),
            "tasksUnhealthy": len([i for i in running if i.healthy is False]),
        }

    # ------------------------------------------------------------ deployments

    def advance(self) -> None:
        """Drive every deployment as far as it can go now, then the scale check."""
        self.advance_wanted = False
        for plan_id in list(self.deployments):
            deployment = self.deployments.get(plan_id)
            if deployment is not None:
                self._drive(deployment)
        self._scale_check()

    def _drive(self, deployment: Deployment) -> None:
        plan = deployment.plan
        while True:
            if deployment.step == 0:
                deployment.step = 1
            if deployment.step > len(plan.steps):
                self._end_deployment(plan.id, outcome="deployment_success")
                return
            actions = plan.steps[deployment.step - 1].actions
            done = [self._drive_action(deployment, index, action)
                    for index, action in enumerate(actions)]
            if not all(done):
                return
            self.publish(events.deployment_event(
                "deployment_step_success", plan.event_json(),
                current_step=self._step_json(plan, deployment.step),
            ))
            deployment.step += 1
            deployment.started = set()
            deployment.completed = set()
            self.sink.write(Mutation(store_key("deployment_steps", plan.id),
                                     deployment.step_record()))

    def _drive_action(self, deployment: Deployment, index: int, action: DeploymentAction) -> bool:
        """Push one action forward; True once it is done."""
        if index in deployment.completed:
            return True
        first = index not in deployment.started
        deployment.started.add(index)
        done = self._run_action(action, first=first)
        if done:
            deployment.completed.add(index)
            if action.action == ActionType.STOP:
                self.publish(events.app_terminated_event(str(action.app.id)))
        return done

    def _run_action(self, action: DeploymentAction, *, first: bool) -> bool:
        app = action.app
        if action.action in (ActionType.START, ActionType.RESOLVE_ARTIFACTS):
            return True
        if action.action == ActionType.STOP:
            self.queue.purge(app.id)
            for instance in self.app_instances(app.id):
                self._kill(instance)
            return not self.app_instances(app.id)  # unreachable ones are expunged at once
        if is_per_agent(app) and action.action == ActionType.SCALE:
            if first:
                self.actions.revive()  # offers declined while idle must come back
            return True  # instances follow the agents, not a count
        if action.action == ActionType.SCALE:
            if first:
                wanted = set(action.kill)
                for instance in self.app_instances(app.id):
                    if instance.instance_id in wanted:
                        self._kill(instance)
            target = action.scale_to if action.scale_to is not None else app.instances
            return self._converge(app, target)
        return self._restart(app)

    def _converge(self, app: AppDefinition, target: int) -> bool:
        """Queue or kill instances of `app` towards `target`; True when it is there and
        every instance runs (healthy, when it has health checks)."""
        live = [i for i in self.app_instances(app.id) if i.live]
        queued = self.queue.count(app.id)
        if queued:
            self.queue.add(app, 0)  # what waits for offers is the current definition
        missing = target - len(live) - queued
        if missing > 0 and app.unsupported_reason is not None:
            self._cannot_run(app, app.unsupported_reason)
        elif missing > 0:
            self.queue.add(app, missing)
            self.actions.revive()
        elif missing < 0:
            excess = -missing
            if queued:
                dropped = min(queued, excess)
                self.queue.set_count(app, queued - dropped)
                excess -= dropped
            if excess:
                doomed = select_instances_to_kill(
                    app.constraints, [i.placed() for i in live], excess, app.kill_selection
                )
                for placed in doomed:
                    self._kill(self.instances[placed.instance_id])
        settled = [i for i in self.app_instances(app.id) if not i.inactive]
        return (
            len(settled) == target
            and self.queue.count(app.id) == 0
            and all(self._healthy(app, i) and i.ready for i in settled)
        )

    def _restart(self, app: AppDefinition) -> bool:
        version = config_version(app)
        if is_per_agent(app):  # replace per agent: old ones go, offers bring new ones
            outdated = [i for i in self.app_instances(app.id) if i.config_version != version]
            for instance in outdated:
                if not instance.killing:
                    self._kill(instance)
                    self.actions.revive()
            return not outdated
        live = [i for i in self.app_instances(app.id) if i.state not in TERMINAL]
        old = [self._replace_view(app, i) for i in live if i.config_version != version]
        new = [self._replace_view(app, i) for i in live
               if i.config_version == version and not i.inactive]
        queued = self.queue.count(app.id)
        if queued:
            self.queue.add(app, 0)  # what waits for offers is the current definition
        decision = replace_step(app.instances, app.upgrade_strategy, old, new, queued=queued)
        if decision.start:
            self.queue.add(app, decision.start)
            self.actions.revive()
        for instance_id in decision.kill:
            self._kill(self.instances[instance_id])
        return decision.done

    def _replace_view(self, app: AppDefinition, instance: Instance) -> ReplaceInstance:
        return ReplaceInstance(instance.instance_id, healthy=self._healthy(app, instance),
                               ready=instance.ready, killing=instance.killing)

    @staticmethod
    def _healthy(app: AppDefinition, instance: Instance) -> bool:
        """Running, and healthy when the app has health checks."""
        if instance.state != "TASK_RUNNING" or instance.killing:
            return False
        return bool(instance.healthy) if app.health_checks else True

    def _scale_check(self) -> None:
        """Keep apps that no deployment holds at their instance count."""
        locked = {a for d in self.deployments.values() for a in d.plan.affected_apps}
        for app in self.root.transitive_apps():
            if app.id not in locked and not is_per_agent(app):
                self._converge(app, app.instances)

    def _cannot_run(self, app: AppDefinition, reason: str) -> None:
        """Tell (once per app version) why instances of `app` cannot be launched here."""
        failure = self.last_failures.get(app.id)
        if failure is not None and failure.get("version") == app.version:
            return
        message = f"cannot launch on this cluster: {reason}"
        self.last_failures[app.id] = {
            "appId": str(app.id), "host": "", "message": message, "state": "TASK_FAILED",
            "taskId": "", "timestamp": format_timestamp(self.wall.now()),
            "version": app.version, "slaveId": "",
        }
        self.publish(events.status_update_event(
            agent_id="", task_id="", state="TASK_FAILED", message=message,
            app_id=str(app.id), host="", ports=(), version=app.version or "",
        ))

    def _end_deployment(self, plan_id: str, *, outcome: str, reason: str | None = None) -> None:
        deployment = self.deployments.pop(plan_id, None)
        if deployment is None:
            return
        self.sink.write(Mutation(store_key("deployments", plan_id), None))
        self.sink.write(Mutation(store_key("deployment_steps", plan_id), None))
        self.publish(events.deployment_event(outcome, deployment.plan.event_json(),
                                             reason=reason))

    @staticmethod
    def _step_json(plan: DeploymentPlan, step: int) -> dict[str, Any]:
        return plan.steps[step - 1].to_json() if plan.steps else {"actions": []}

    # ---------------------------------------------------------------- internals

    def _new_version(self) -> str:
        version = format_timestamp(self.wall.now())
        current = self.root.version or ""
        if version <= current:  # two changes in one millisecond: keep versions unique
            version = format_timestamp(_parse_seconds(current) + 0.001)
        return version

    def _set_root(self, root: Group) -> None:
        self.root = root
        root_data = json.dumps(root_record(root)).encode()
        self.sink.write(Mutation(ROOT_KEY, root_data))
        # The root record is replaced: parts of the old one that were set aside are gone.
        self.set_aside = [record for record in self.set_aside if record.key != ROOT_KEY]
        version = root.version or ""
        if version not in self.root_versions:  # kept for rollbacks (`group_at_version`)
            self.root_versions[version] = root_data
            self.sink.write(Mutation(store_key("root_versions", version), root_data))
            for stale in sorted(self.root_versions)[:-MAX_APP_VERSIONS]:
                del self.root_versions[stale]
                self.sink.write(Mutation(store_key("root_versions", stale), None))
        for app in root.transitive_apps():
            versions = self.app_versions.setdefault(app.id, {})
            version = app.version or ""
            if version not in versions:
                data = json.dumps(app_to_json(app)).encode()
                versions[version] = data
                self.sink.write(Mutation(store_key("apps", f"{app.id}@{version}"), data))
                for stale in sorted(versions)[:-MAX_APP_VERSIONS]:
                    del versions[stale]
                    self.sink.write(Mutation(store_key("apps", f"{app.id}@{stale}"), None))

    def _placed_agents(self, app_id: PathId) -> list[AgentView]:
        """Where the app's instances are, in the order they were placed."""
        return [i.agent_view() for i in self.app_instances(app_id) if i.state not in TERMINAL]

    def _kill(self, instance: Instance) -> None:
        """Ask the agent to kill the instance's task; an unreachable instance cannot hear it,
        so it is expunged instead (and its task killed if it is ever reported again)."""
        if instance.unreachable:
            self._expunge(instance)
            return
        if instance.killing:
            return
        instance.killing = True
        self._store_instance(instance)
        app = self.root.app(instance.app_id)
        grace = None
        if app is not None and app.task_kill_grace_period_seconds is not None:
            grace = float(app.task_kill_grace_period_seconds)
        self.actions.kill(instance.task_id, instance.agent_id, grace)

    def _expunge(self, instance: Instance) -> None:
        """Forget an instance that still may run somewhere (Marathon reports it Killed)."""
        self._publish_condition(instance, EXPUNGED_CONDITION)
        self._remove_instance(instance)
        self.advance_wanted = True

    def _publish_condition(self, instance: Instance, condition: str) -> None:
        self.publish(events.instance_changed_event(
            instance_id=instance.instance_id, condition=condition,
            app_id=str(instance.app_id), agent_id=instance.agent_id, host=instance.host,
            version=instance.version,
        ))

    def _index(self, instance: Instance) -> None:
        self._by_app.setdefault(instance.app_id, {})[instance.instance_id] = instance
        self._by_task[instance.task_id] = instance

    def _store_instance(
        self, instance: Instance, then: Callable[[], None] | None = None
    ) -> None:
        self.sink.write(
            Mutation(store_key("instances", instance.instance_id), instance.to_record()), then
        )

    def _remove_instance(self, instance: Instance) -> None:
        self.instances.pop(instance.instance_id, None)
        self._by_task.pop(instance.task_id, None)
        of_app = self._by_app.get(instance.app_id)
        if of_app is not None:
            of_app.pop(instance.instance_id, None)
            if not of_app:
                del self._by_app[instance.app_id]
        if self.observer is not None:
            self.observer.gone(instance.instance_id)
        self.sink.write(Mutation(store_key("instances", instance.instance_id), None))


def _unreachable_past(app: AppDefinition | None, instance: Instance, now: float, *,
                      expunge: bool = False) -> bool:
    """Whether the unreachable `instance` has been so for its app's `inactiveAfterSeconds`
    (with `expunge`: `expungeAfterSeconds`); never under a "disabled" strategy."""
    strategy = app.unreachable_strategy if app is not None else None
    if strategy is None or not strategy.enabled or instance.unreachable_since is None:
        return False
    limit = strategy.expunge_after_seconds if expunge else strategy.inactive_after_seconds
    return now - instance.unreachable_since >= limit


def _parse_seconds(version: str) -> float:
    return datetime.strptime(version, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()

