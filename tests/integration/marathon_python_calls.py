"""Every public call of the marathon-python client (PyPI `marathon` 0.13.0) against a running
Marathon, each result checked as Marathon 1.9 would give it.

Run by tests/integration/test_marathon_python_client.py with the client's virtualenv
(`python -I marathon_python_calls.py <url>`), never imported: its `marathon` is the client.
Prints {"results": {check: "OK" or what went wrong}, "public": the client's public methods,
"called": those this script called}.
"""

import collections
import collections.abc
import json
import sys
import threading
import time

# The client's JSON encoders use `collections.Iterable`, gone since Python 3.10: without this,
# sending a group with apps (or an app with nested objects) fails in the client itself.
collections.Iterable = collections.abc.Iterable  # type: ignore[attr-defined]

from marathon.exceptions import ConflictError, MarathonHttpError, NotFoundError  # noqa: E402
from marathon.models import MarathonApp, MarathonGroup  # noqa: E402
from marathon.models.deployment import MarathonDeploymentStep  # noqa: E402
from marathon.models.endpoint import MarathonEndpoint  # noqa: E402
from marathon.models.events import (  # noqa: E402
    EventFactory,
    MarathonApiPostEvent,
    MarathonDeploymentSuccess,
    MarathonEventStreamAttached,
    MarathonGroupChangeSuccess,
    MarathonStatusUpdateEvent,
)
from marathon.models.queue import MarathonQueueItem  # noqa: E402
from marathon.models.task import MarathonTask  # noqa: E402

from marathon import MarathonClient  # noqa: E402

url = sys.argv[1]
results = {}
called = set()


class Recording:
    """The client, noting which of its public methods the script calls."""

    def __init__(self, client):
        self._client = client

    def __getattr__(self, name):
        if not name.startswith("_"):
            called.add(name)
        return getattr(self._client, name)


raw_client = MarathonClient(url, timeout=30)
client = Recording(raw_client)


def check(name, fn, test=lambda value: None):
    """Record "OK" when `fn()` returns a value `test` finds no fault with (`test` returns
    None, or a sentence saying what is wrong)."""
    try:
        value = fn()
    except Exception as exc:
        results[name] = f"{type(exc).__name__}: {exc}"
        return None
    try:
        fault = test(value)
    except Exception as exc:
        fault = f"checking it raised {type(exc).__name__}: {exc}"
    results[name] = "OK" if fault is None else f"{fault} (got {value!r})"
    return value


def fails(name, fn, kind, expected):
    """Record "OK" when `fn()` raises `kind` with `str(error)` containing `expected`."""
    try:
        value = fn()
    except kind as exc:
        results[name] = "OK" if expected in str(exc) else f"{type(exc).__name__}: {exc}"
        return
    except Exception as exc:
        results[name] = f"{type(exc).__name__}: {exc}"
        return
    results[name] = f"no error: {value!r}"


def http_error(status, message):
    """The client's error for an HTTP answer of `status` and `message`."""
    return f'HTTP {status} returned with message, "{message}"'


def until(condition, what):
    """Wait for `condition`; after one wait timed out, the next ones are short (the checks
    after it fail anyway, and the run must end before the test's timeout)."""
    timed_out = any(check.startswith("waiting for") for check in results)
    deadline = time.monotonic() + (3 if timed_out else 45)
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except Exception:
            pass
        time.sleep(0.1)
    results[f"waiting for {what}"] = "timed out"


def settled(app_id):
    return lambda: not raw_client.get_app(app_id).deployments


def deployment(value):
    if set(value) != {"deploymentId", "version"}:
        return "not a deployment result"


def running(app_id, count):
    def condition():
        app = raw_client.get_app(app_id)
        return (not app.deployments and app.instances == count
                and sum(t.state == "TASK_RUNNING" for t in app.tasks) == count)
    return condition


def task_ids(app_id):
    return {t.id for t in raw_client.list_tasks(app_id)}


# ------------------------------------------------------------------ events, read all along

streamed = []
raw_infos = []


def read(events, **params):
    try:
        for event in client.event_stream(**params):
            events.append(event)
    except Exception as exc:
        events.append(f"{type(exc).__name__}: {exc}")


threading.Thread(target=read, args=(streamed,), daemon=True, kwargs={"event_types": [
    MarathonEventStreamAttached, MarathonApiPostEvent, "status_update_event",
    MarathonDeploymentSuccess, MarathonGroupChangeSuccess]}).start()
threading.Thread(target=read, args=(raw_infos,), daemon=True,
                 kwargs={"raw": True, "event_types": ["deployment_info"]}).start()
until(lambda: any(isinstance(e, MarathonEventStreamAttached) for e in streamed),
      "the event stream")

# ------------------------------------------------------------------------- server

check("ping", client.ping, lambda v: None if v == b"pong" else "not pong")
check("get_info", client.get_info, lambda v: None if (
    v.name == "marathon" and v.elected and v.framework_id and v.leader
    and v.marathon_config.mesos_role == "*" and v.zookeeper_config.zk_max_versions
    and f":{v.http_config.http_port}" in url) else "wrong info")
check("get_leader", client.get_leader, lambda v: None if set(v) == {"leader"}
      and v["leader"].endswith(":" + url.rsplit(":", 1)[1]) else "wrong leader")
check("get_metrics", client.get_metrics, lambda v: None if
      "marathon.apps.active.gauge" in v["gauges"] and "counters" in v else "wrong metrics")
# Marathon 1.5 removed HTTP callback subscriptions: /v2/eventSubscriptions is an unknown URI.
SUBSCRIPTIONS_NOT_FOUND = http_error(404, "URI not found: /v2/eventSubscriptions")
fails("list_event_subscriptions", client.list_event_subscriptions, NotFoundError,
      SUBSCRIPTIONS_NOT_FOUND)
fails("create_event_subscription", lambda: client.create_event_subscription(
    "http://127.0.0.1:9/callback"), NotFoundError, SUBSCRIPTIONS_NOT_FOUND)
fails("delete_event_subscription", lambda: client.delete_event_subscription(
    "http://127.0.0.1:9/callback"), NotFoundError, SUBSCRIPTIONS_NOT_FOUND)
fails("a method the path does not have", lambda: raw_client._do_request("PATCH", "/ping"),
      MarathonHttpError, http_error(405, "Method Not Allowed"))

# --------------------------------------------------------------------------- apps

check("create_app", lambda: client.create_app("/client/web", MarathonApp(
    cmd="sleep 600", cpus=0.1, mem=32, instances=1, labels={"team": "web"})),
    lambda v: None if v.id == "/client/web" and v.cmd == "sleep 600"
    and v.port_definitions[0].port >= 10000 else "wrong app")
until(running("/client/web", 1), "/client/web to run")
web_port = raw_client.get_app("/client/web").port_definitions[0].port
# An app no agent can hold deploys for ever, its instance queued.
check("create_app (unplaceable)", lambda: client.create_app(
    "stuck", MarathonApp(cmd="sleep 600", cpus=100, mem=32, instances=1)),
    lambda v: None if v.id == "/stuck" and v.deployments else "wrong app")

check("list_apps", client.list_apps,
      lambda v: None if {a.id for a in v} == {"/client/web", "/stuck"} else "wrong apps")
check("list_apps (filters)", lambda: client.list_apps(
    cmd="sleep", app_id="CLIENT", label="team==web"),
    lambda v: None if [a.id for a in v] == ["/client/web"] else "wrong apps")
check("list_apps (no match)", lambda: client.list_apps(label="team==db"),
      lambda v: None if v == [] else "apps left")
check("list_apps (attribute filter)", lambda: client.list_apps(cpus=100),
      lambda v: None if [a.id for a in v] == ["/stuck"] else "wrong apps")
check("list_apps (every embed)", lambda: client.list_apps(
    app_id="client", embed_tasks=True, embed_counts=True, embed_deployments=True,
    embed_readiness=True, embed_last_task_failure=True, embed_failures=True,
    embed_task_stats=True),
    lambda v: None if len(v[0].tasks) == 1 and v[0].tasks_running == 1
    and v[0].readiness_check_results == [] else "embeds missing")
check("get_app", lambda: client.get_app("client/web"),
      lambda v: None if v.id == "/client/web" and len(v.tasks) == 1
      and v.tasks[0].service_ports == [web_port] and v.labels == {"team": "web"}
      else "wrong app")
check("get_app (every embed)", lambda: client.get_app(
    "/client/web", embed_tasks=True, embed_counts=True, embed_deployments=True,
    embed_readiness=True, embed_last_task_failure=True, embed_failures=True,
    embed_task_stats=True),
    lambda v: None if len(v.tasks) == 1 and v.readiness_check_results == []
    else "embeds missing")
fails("get_app (unknown)", lambda: client.get_app("/nowhere"), NotFoundError,
      http_error(404, "App '/nowhere' does not exist"))

check("list_tasks", client.list_tasks, lambda v: None if [t.app_id for t in v] == [
    "/client/web"] and v[0].state == "TASK_RUNNING" and v[0].host == "127.0.0.1"
    and v[0].service_ports == [web_port] and len(v[0].ports) == 1 else "wrong tasks")
check("list_tasks (app)", lambda: client.list_tasks("/client/web", state="TASK_RUNNING"),
      lambda v: None if len(v) == 1 and isinstance(v[0], MarathonTask)
      and v[0].started_at is not None else "wrong tasks")
check("list_endpoints", client.list_endpoints, lambda v: None if len(v) == 1
      and isinstance(v[0], MarathonEndpoint) and v[0].app_id == "/client/web"
      and v[0].service_port == web_port and v[0].host == "127.0.0.1"
      and v[0].task_port == raw_client.list_tasks()[0].ports[0] else "wrong endpoints")

before = task_ids("/client/web")
check("restart_app", lambda: client.restart_app("/client/web"), deployment)
until(lambda: running("/client/web", 1)() and task_ids("/client/web").isdisjoint(before),
      "the restart to replace the task")
first = raw_client.get_app("/client/web").version

check("update_app (partial)", lambda: client.update_app("/client/web", MarathonApp(mem=48)),
      deployment)
until(settled("/client/web"), "the update")
check("update_app kept cmd, changed mem", lambda: client.get_app("/client/web"),
      lambda v: None if (v.cmd, v.mem, v.port_definitions[0].port) == (
          "sleep 600", 48, web_port) else "wrong app")
full = raw_client.get_app("/client/web")
full.env = {"MODE": "full"}
check("update_app (full, as got)", lambda: client.update_app("/client/web", full),
      deployment)
until(settled("/client/web"), "the full update")
full = raw_client.get_app("/client/web")
full.mem = 40
check("update_app (not minimal)", lambda: client.update_app(
    "/client/web", full, force=True, minimal=False), deployment)
until(settled("/client/web"), "the second full update")
check("update_app (full) result", lambda: client.get_app("/client/web"),
      lambda v: None if (v.env, v.mem, v.port_definitions[0].port) == (
          {"MODE": "full"}, 40, web_port) else "wrong app")

versions = check("list_versions", lambda: client.list_versions("/client/web"),
                 lambda v: None if len(v) >= 4 and v == sorted(v, reverse=True)
                 and first in v else "wrong versions")
check("get_version", lambda: client.get_version("/client/web", first),
      lambda v: None if (v.id, v.mem, v.version) == ("/client/web", 32, first)
      else "wrong version")
check("rollback_app", lambda: client.rollback_app("/client/web", first), deployment)
until(settled("/client/web"), "the rollback")
check("rollback_app result", lambda: client.get_app("/client/web"),
      lambda v: None if (v.mem, v.env) == (32, {}) else "not rolled back")

check("scale_app (instances)", lambda: client.scale_app("/client/web", instances=3),
      deployment)
until(running("/client/web", 3), "3 instances")
check("scale_app (delta)", lambda: client.scale_app("/client/web", delta=-1), deployment)
until(running("/client/web", 2), "2 instances")

check("update_apps", lambda: client.update_apps([
    MarathonApp(id="/client/web", instances=3),
    MarathonApp(id="/client/worker", cmd="sleep 600", cpus=0.1, mem=16, instances=3)]),
    deployment)
until(lambda: running("/client/web", 3)() and running("/client/worker", 3)(),
      "the apps updated together")
check("update_apps result", lambda: client.get_app("/client/worker"),
      lambda v: None if v.port_definitions[0].port not in (0, web_port) else "no port")

# An app whose task fails: get_app embeds its last failure, list_apps on demand.
client.create_app("/client/failing", MarathonApp(cmd="exit 3", cpus=0.1, mem=16))
until(lambda: raw_client.get_app("/client/failing").last_task_failure, "a task to fail")
check("get_app (last task failure)", lambda: client.get_app("/client/failing"),
      lambda v: None if (v.last_task_failure.app_id, v.last_task_failure.state) == (
          "/client/failing", "TASK_FAILED") and v.last_task_failure.timestamp else "wrong")
check("list_apps (failures)", lambda: client.list_apps(app_id="failing", embed_failures=True),
      lambda v: None if v[0].last_task_failure.task_id else "no failure")
check("list_apps (no failures)", lambda: client.list_apps(app_id="failing"),
      lambda v: None if v[0].last_task_failure is None else "a failure")
client.delete_app("/client/failing", force=True)

# -------------------------------------------------------------------------- tasks

web = sorted(task_ids("/client/web"))
check("kill_task", lambda: client.kill_task("/client/web", web[0]),
      lambda v: None if isinstance(v, MarathonTask) and v.id == web[0] else "wrong task")
check("kill_task (scale)", lambda: client.kill_task("/client/web", web[1], scale=True),
      deployment)
until(lambda: running("/client/web", 2)() and web[0] not in task_ids("/client/web"),
      "the killed task's replacement")
worker = sorted(task_ids("/client/worker"))
check("kill_given_tasks", lambda: client.kill_given_tasks([worker[0]]),
      lambda v: None if v is True else "not killed")
check("kill_given_tasks (scale, force)", lambda: client.kill_given_tasks(
    [worker[1]], scale=True, force=True), lambda v: None if v is True else "not killed")
# What kill_given_tasks does not look at: Marathon answers the tasks it killed (an id of
# no task is left out).
check("POST /v2/tasks/delete answers the killed tasks", lambda: raw_client._do_request(
    "POST", "/v2/tasks/delete", data=json.dumps({"ids": [
        worker[2], "client_worker.instance-00000000-0000-0000-0000-000000000000._app.1"]})
).json(),
    lambda v: None if [t["id"] for t in v["tasks"]] == [worker[2]] else "wrong tasks")
until(lambda: running("/client/worker", 2)()
      and task_ids("/client/worker").isdisjoint(worker), "/client/worker to shrink")
web = task_ids("/client/web")
check("kill_tasks", lambda: client.kill_tasks("/client/web"),
      lambda v: None if {t.id for t in v} == web else "wrong tasks")
until(lambda: running("/client/web", 2)() and task_ids("/client/web").isdisjoint(web),
      "the replacements")
web = task_ids("/client/web")
check("kill_tasks (host)", lambda: client.kill_tasks("/client/web", host="127.0.0.1"),
      lambda v: None if {t.id for t in v} == web else "wrong tasks")
check("kill_tasks (other host)", lambda: client.kill_tasks("/client/web", host="elsewhere"),
      lambda v: None if v == [] else "killed some")
until(lambda: running("/client/web", 2)() and task_ids("/client/web").isdisjoint(web),
      "the replacements")
check("kill_tasks (scale)", lambda: client.kill_tasks("/client/worker", scale=True),
      deployment)
until(running("/client/worker", 0), "/client/worker to scale to 0")
# One agent holds one instance of a UNIQUE app: its deployment waits for the second for ever.
check("create_app (constraints)", lambda: client.create_app("/client/unique", MarathonApp(
    cmd="sleep 600", cpus=0.1, mem=16, instances=2, constraints=[["hostname", "UNIQUE"]])),
    lambda v: None if [(c.field, c.operator) for c in v.constraints] == [
        ("hostname", "UNIQUE")] else "wrong constraints")
until(lambda: len(raw_client.list_tasks("/client/unique")) == 1
      and raw_client.list_tasks("/client/unique")[0].state == "TASK_RUNNING",
      "one instance of /client/unique")
unique = raw_client.list_tasks("/client/unique")[0].id
fails("kill_given_tasks (scale, locked)", lambda: client.kill_given_tasks(
    [unique], scale=True), ConflictError, http_error(
        409, "App is locked by one or more deployments. Override with the option "
        "'?force=true'. View details at '/v2/deployments/<DEPLOYMENT_ID>'."))
check("kill_given_tasks (scale, force, locked)", lambda: client.kill_given_tasks(
    [unique], scale=True, force=True), lambda v: None if v is True else "not killed")
until(lambda: running("/client/unique", 1)() and unique not in task_ids("/client/unique"),
      "/client/unique to scale to 1")

# ------------------------------------------------------------------------- groups

check("create_group", lambda: client.create_group(MarathonGroup(id="/team", apps=[
    MarathonApp(id="/team/api", cmd="sleep 600", cpus=0.1, mem=16, instances=1)])),
    deployment)
until(running("/team/api", 1), "the group's app")
group = check("get_group", lambda: client.get_group("/team"), lambda v: None if (
    v.id, [a.id for a in v.apps], v.groups) == ("/team", ["/team/api"], []) else "wrong")
check("list_groups", client.list_groups,
      lambda v: None if {g.id for g in v} == {"/client", "/team"} else "wrong groups")
check("list_groups (filter)", lambda: client.list_groups(id="/team"),
      lambda v: None if [a.id for a in v[0].apps] == ["/team/api"] else "wrong groups")
check("update_group", lambda: client.update_group("/team", MarathonGroup(id="/team", apps=[
    MarathonApp(id="/team/api", cmd="sleep 600", cpus=0.1, mem=24, instances=1)])),
    deployment)
until(lambda: running("/team/api", 1)() and raw_client.get_app("/team/api").mem == 24,
      "the group update")
check("scale_group", lambda: client.scale_group("/team", 2), deployment)
until(running("/team/api", 2), "the group to scale")
# Marathon 1.9 has no PUT /v2/groups/{id}/versions/{version}: the bodiless PUT is a group
# update whose empty body its JSON parser refuses.
fails("rollback_group", lambda: client.rollback_group("/team", group.version),
      MarathonHttpError, http_error(400, "Please specify data in JSON format"))
check("delete_group", lambda: client.delete_group("/team"), deployment)
until(lambda: raw_client.list_groups(id="/team") == [], "the group to go")
until(lambda: len(raw_client.list_deployments()) == 1, "the deployments to end but /stuck's")

# ---------------------------------------------------------- deployments and queue

# A new app's deployment starts it, then scales it: it waits in the second step.
check("list_deployments", client.list_deployments, lambda v: None if [(
    d.affected_apps, d.current_step, d.total_steps, [type(s) for s in d.steps],
    [(a.action, a.app) for a in d.current_actions]) for d in v] == [(
        ["/stuck"], 2, 2, [MarathonDeploymentStep] * 2, [("ScaleApplication", "/stuck")])]
    else "wrong deployments")
# Marathon 1.9's queue items carry `role`, which the client's MarathonQueueItem refuses.
fails("list_queue", client.list_queue, TypeError, "unexpected keyword argument 'role'")
fails("list_queue (last unused offers)",
      lambda: client.list_queue(embed_last_unused_offers=True), TypeError,
      "unexpected keyword argument 'role'")


def queued_without_role():
    queue = raw_client._do_request("GET", "/v2/queue",
                                   params={"embed": "lastUnusedOffers"}).json()["queue"]
    return [MarathonQueueItem.from_json({k: v for k, v in item.items() if k != "role"})
            for item in queue]


check("queue items (but role) parse", queued_without_role, lambda v: None if [
    (i.app.id, i.count, i.delay.overdue, bool(i.last_unused_offers)) for i in v] == [
    ("/stuck", 1, True, True)] else "wrong queue")
check("reset_delay", lambda: client.reset_delay("/stuck"),
      lambda v: None if v is None else "an answer")
fails("reset_delay (not queued)", lambda: client.reset_delay("/client/web"), NotFoundError,
      http_error(404, "Application /client/web not found in tasks queue."))
stuck = raw_client.list_deployments()[0].id
check("delete_deployment (force)", lambda: client.delete_deployment(stuck, force=True),
      lambda v: None if v == {} else "an answer")
check("forced cancel keeps the app", lambda: raw_client.get_app("/stuck"),
      lambda v: None if not v.deployments and v.instances == 1 else "wrong app")
scaling = raw_client.scale_app("/stuck", instances=2)["deploymentId"]
check("delete_deployment", lambda: client.delete_deployment(scaling), deployment)
# The rollback to 1 instance cannot finish either: the app stays unplaceable.
check("rolled back", lambda: raw_client.get_app("/stuck"), lambda v: None if (
    v.instances, [d.id for d in v.deployments]) == (1, [d.id for d in
                                                         raw_client.list_deployments()])
    and scaling not in [d.id for d in v.deployments] else "not rolled back")
fails("delete_deployment (unknown)", lambda: client.delete_deployment("nope"),
      NotFoundError, http_error(404, "DeploymentPlan nope does not exist"))
check("delete_app", lambda: client.delete_app("/client/worker"), deployment)
check("delete_app (another)", lambda: client.delete_app("/client/unique"), deployment)
check("delete_app (forced)", lambda: client.delete_app("stuck", force=True), deployment)
until(lambda: {a.id for a in raw_client.list_apps()} == {"/client/web"}, "the apps to go")

# ---------------------------------------------------------------------- the events


def streamed_ok():
    kinds = {type(e) for e in streamed}
    return {MarathonApiPostEvent, MarathonStatusUpdateEvent, MarathonDeploymentSuccess,
            MarathonGroupChangeSuccess} <= kinds and raw_infos


until(streamed_ok, "the events")
check("event_stream", lambda: [e for e in streamed if isinstance(e, str)] or None,
      lambda v: None if v is None else "stream failed")
check("event_stream (api_post_event)", lambda: next(
    e for e in streamed if isinstance(e, MarathonApiPostEvent)
    and e.app_definition["id"] == "/client/web"),
    lambda v: None if v.uri == "/v2/apps" and v.client_ip else "wrong event")
check("event_stream (status_update_event)", lambda: next(
    e for e in streamed if isinstance(e, MarathonStatusUpdateEvent)
    and e.task_status == "TASK_RUNNING" and e.app_id == "/client/web"),
    lambda v: None if v.host == "127.0.0.1" and v.ports and v.task_id else "wrong event")
check("event_stream (deployment_success)", lambda: next(
    e for e in streamed if isinstance(e, MarathonDeploymentSuccess)),
    lambda v: None if v.id and v.timestamp else "wrong event")
check("event_stream (only the types asked)", lambda: {e.event_type for e in streamed}, lambda v:
      None if v <= {"event_stream_attached", "api_post_event", "status_update_event",
                    "deployment_success", "group_change_success"} else "other types")
info = json.loads(raw_infos[0]) if raw_infos else {}
check("event_stream (raw deployment_info)", lambda: info, lambda v: None if (
    v["eventType"] == "deployment_info" and set(v["plan"]) == {"id", "steps", "version"}
    and v["currentStep"]["actions"][0]["action"]) else "wrong event")
# Marathon 1.9's deployment plans have no original and target groups, which the client's
# MarathonDeploymentPlan reads: parsing such an event fails in the client.
fails("event_stream (deployment_info)", lambda: EventFactory().process(info),
      AttributeError, "'NoneType' object has no attribute 'items'")

# ------------------------------------------------------------ last: the leader goes

check("delete_leader", client.delete_leader,
      lambda v: None if v == {"message": "Leadership abdicated"} else "wrong answer")
until(lambda: raw_client.get_info().elected, "the Marathon to lead again")
check("leading again", raw_client.get_leader,
      lambda v: None if v["leader"].endswith(":" + url.rsplit(":", 1)[1]) else "no leader")
check("apps kept", lambda: raw_client.get_app("/client/web"),
      lambda v: None if v.instances == 2 else "apps lost")

public = sorted(name for name in dir(MarathonClient)
                if not name.startswith("_") and callable(getattr(MarathonClient, name)))
print(json.dumps({"results": results, "public": public, "called": sorted(called)}))
