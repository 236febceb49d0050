// The master's page: cluster resources, agents, frameworks, tasks, offers, the leader, and a
// task's usage and sandbox with a live tail of its files. Everything comes from the master's
// /state; a task's usage and sandbox are read through the master (/ui/agent/{id}/state,
// /monitor/statistics and /files/...), see webui/routes.py.

import {
  chips, composite, errorNotice, facts, formatBytes, formatMiB, formatScalar, formatTime, getJSON,
  h, liveView, metaItem, panel, resourceBar, segmentedBar, shell, startPage, stateBadge, table,
  tile,
} from "./common.js";

const RESOURCES = ["cpus", "mem", "disk", "gpus"];
const TAIL_START = 50000;   // bytes of a log shown when it is opened
const CHUNK = 65536;        // the agent reads at most 16 pages at a time
const TAIL_INTERVAL = 1000;

const ui = shell({
  product: "Mesos",
  component: "master",
  nav: [
    { href: "#/", label: "Overview" },
    { href: "#/agents", label: "Agents" },
    { href: "#/frameworks", label: "Frameworks" },
    { href: "#/tasks", label: "Tasks" },
    { href: "#/offers", label: "Offers" },
  ],
});

startPage({
  ui,
  load: () => getJSON("/state"),
  onData: (state) => ui.setMeta(headerItems(model(state))),
  routes: [
    { pattern: /^\/$/, nav: "#/", view: () => liveView(overview) },
    { pattern: /^\/agents$/, nav: "#/agents", view: () => liveView(agentsPage) },
    { pattern: /^\/frameworks$/, nav: "#/frameworks", view: () => liveView(frameworksPage) },
    { pattern: /^\/tasks$/, nav: "#/tasks", view: () => liveView(tasksPage) },
    { pattern: /^\/tasks\/([^/]+)\/(.+)$/, nav: "#/tasks", view: (m) => taskView(m[1], m[2]) },
    { pattern: /^\/offers$/, nav: "#/offers", view: () => liveView(offersPage) },
  ],
});

// ------------------------------------------------------------------- model

function model(state) {
  const byHost = (a, b) => String(a.hostname).localeCompare(String(b.hostname), undefined,
    { numeric: true }) || String(a.id).localeCompare(String(b.id));
  const agents = [...(state.slaves ?? [])].sort(byHost);
  const frameworks = state.frameworks ?? [];
  const completedFrameworks = state.completed_frameworks ?? [];
  const agentById = new Map(agents.map((a) => [a.id, a]));
  const withFramework = (list, framework) => (list ?? []).map((task) => ({ ...task, framework }));
  const tasks = frameworks.flatMap((f) => [
    ...withFramework(f.tasks, f), ...withFramework(f.unreachable_tasks, f)]);
  const completed = [...frameworks, ...completedFrameworks]
    .flatMap((f) => withFramework(f.completed_tasks, f))
    .sort((a, b) => lastUpdate(b) - lastUpdate(a));
  const offers = frameworks.flatMap((f) => (f.offers ?? []).map((o) => ({ ...o, framework: f })));
  const sum = (field) => Object.fromEntries(RESOURCES.map((r) =>
    [r, agents.reduce((total, a) => total + Number(a[field]?.[r] || 0), 0)]));
  const leaderInfo = state.leader_info;
  return {
    state, agents, frameworks, completedFrameworks, agentById, tasks, completed, offers,
    leading: Boolean(state.leader) && state.leader === state.pid,
    leaderUrl: leaderInfo ? `http://${leaderInfo.address?.ip ?? leaderInfo.hostname}:${leaderInfo.http_port}/` : null,
    total: sum("resources"), used: sum("used_resources"), offered: sum("offered_resources"),
  };
}

function lastUpdate(task) {
  const statuses = task.statuses ?? [];
  return statuses.length ? statuses[statuses.length - 1].timestamp : 0;
}

function headerItems(m) {
  const leader = m.state.leader
    ? (m.leaderUrl ? h("a", { href: m.leaderUrl, text: m.state.leader }) : m.state.leader)
    : "none known";
  return [
    metaItem("Leader", leader),
    m.leading ? null : metaItem("This master", "standby"),
    metaItem("Version", m.state.version ?? "?"),
  ];
}

// ------------------------------------------------------------------- pages

function overview(state) {
  const m = model(state);
  const running = m.tasks.filter((t) => t.state === "TASK_RUNNING").length;
  const starting = m.tasks.filter((t) => ["TASK_STAGING", "TASK_STARTING"].includes(t.state)).length;
  return [
    leadershipNotice(m),
    h("div", { class: "tiles" },
      tile(`${m.state.activated_slaves ?? 0}`, "active agents"),
      tile(m.frameworks.filter((f) => f.active).length, "active frameworks"),
      tile(running, "running tasks"),
      tile(starting, "staging or starting tasks"),
      tile(m.completed.length, "completed tasks"),
      tile(m.offers.length, "outstanding offers")),
    h("div", { class: "grid" },
      panel("Cluster resources", h("div", { style: "display: grid; gap: 12px" },
        RESOURCES.map((r) => resourceBar(r, {
          used: m.used[r], offered: m.offered[r], total: m.total[r], large: true,
          label: `${r} in the cluster`,
        })))),
      panel("Masters", mastersFacts(m))),
    panel("Agents", agentsTable(m)),
    panel("Frameworks", frameworksTable(m)),
    panel("Active tasks", tasksTable(m, m.tasks, "Active tasks")),
  ];
}

function leadershipNotice(m) {
  if (m.leading) return null;
  if (!m.state.leader) {
    return h("div", { class: "notice warn", role: "status" },
      "No leading master is known right now: this master is waiting for an election.");
  }
  return h("div", { class: "notice info", role: "status" },
    "This master is a standby; the cluster's state lives on the leading master, ",
    h("a", { href: m.leaderUrl, text: m.state.leader }), ".");
}

function mastersFacts(m) {
  const s = m.state;
  return facts([
    ["Leader", s.leader ? h("a", { href: m.leaderUrl, text: s.leader }) : "none known"],
    ["Leader gRPC", s.leader_info ? `${s.leader_info.address?.ip ?? s.leader_info.hostname}:${s.leader_info.port}` : null],
    ["Elected", m.leading ? formatTime(s.elected_time) : null],
    ["This master", [s.pid, " ", m.leading ? h("span", { class: "badge ok", text: "leading" })
      : h("span", { class: "badge", text: "standby" })]],
    ["Standbys", standbyLinks(s.standbys)],
    ["Started", formatTime(s.start_time)],
    ["Version", s.version],
    ["ZooKeeper", s.flags?.zk],
  ]);
}

function standbyLinks(standbys) {
  if (!standbys || standbys.length === 0) return "none";
  return standbys.flatMap((info, index) => [
    index ? ", " : null,
    h("a", { href: `http://${info.address?.ip ?? info.hostname}:${info.http_port}/`, text: info.pid }),
  ]);
}

function agentsPage(state) {
  const m = model(state);
  const recovering = m.state.recovered_slaves ?? [];
  return [
    leadershipNotice(m),
    panel(`Agents (${m.agents.length})`, agentsTable(m)),
    recovering.length ? panel("Agents expected to re-register", table([
      { label: "Host", cell: (a) => [a.hostname, h("span", { class: "sub mono", text: a.id })] },
      { label: "Attributes", cell: (a) => chips(a.attributes) },
    ], recovering, { label: "Recovered agents" })) : null,
  ];
}

function frameworksPage(state) {
  const m = model(state);
  return [
    leadershipNotice(m),
    panel(`Frameworks (${m.frameworks.length})`, frameworksTable(m)),
    panel(`Completed frameworks (${m.completedFrameworks.length})`, table([
      { label: "Framework", cell: (f) => [f.name, h("span", { class: "sub mono", text: f.id })] },
      { label: "Roles", cell: (f) => (f.roles ?? [f.role]).map((r) => h("span", { class: "chip", text: r })) },
      { label: "Tasks", num: true, cell: (f) => String((f.completed_tasks ?? []).length) },
      { label: "Registered", cell: (f) => formatTime(f.registered_time) },
      { label: "Removed", cell: (f) => formatTime(f.unregistered_time) },
    ], m.completedFrameworks, { label: "Completed frameworks",
      empty: "No framework has been removed since this master was elected." })),
  ];
}

function tasksPage(state) {
  const m = model(state);
  return [
    leadershipNotice(m),
    panel(`Active tasks (${m.tasks.length})`, tasksTable(m, m.tasks, "Active tasks")),
    panel(`Completed tasks (${m.completed.length})`,
      tasksTable(m, m.completed, "Completed tasks")),
  ];
}

function offersPage(state) {
  const m = model(state);
  return [leadershipNotice(m), panel(`Outstanding offers (${m.offers.length})`, table([
    { label: "Offer", cell: (o) => h("span", { class: "mono", text: o.id }) },
    { label: "Framework", cell: (o) => o.framework.name },
    { label: "Agent", cell: (o) => m.agentById.get(o.slave_id)?.hostname ?? o.slave_id },
    { label: "CPUs", num: true, cell: (o) => formatScalar(o.resources.cpus) },
    { label: "Mem", num: true, cell: (o) => formatMiB(o.resources.mem) },
    { label: "Disk", num: true, cell: (o) => formatMiB(o.resources.disk) },
    { label: "GPUs", num: true, cell: (o) => formatScalar(o.resources.gpus) },
    { label: "Ports", cell: (o) => h("span", { class: "mono", text: o.resources.ports ?? "—" }) },
  ], m.offers, { label: "Outstanding offers", empty: "No offers are outstanding." }))];
}

// ------------------------------------------------------------------ tables

function agentsTable(m) {
  const tasksOn = (agentId) => m.tasks.filter((t) => t.slave_id === agentId).length;
  return table([
    { label: "Agent", cell: (a) => [a.hostname, h("span", { class: "sub mono", text: a.id })] },
    { label: "Address", cell: (a) => h("span", { class: "mono", text: a.pid }) },
    { label: "Attributes", cell: (a) => chips(a.attributes) },
    ...RESOURCES.map((r) => ({
      label: r === "mem" ? "Memory" : r.toUpperCase().replace("CPUS", "CPUs").replace("GPUS", "GPUs"),
      cell: (a) => resourceBar(r, {
        used: a.used_resources?.[r], offered: a.offered_resources?.[r], total: a.resources?.[r],
        label: `${r} on ${a.hostname}`,
      }),
    })),
    { label: "Tasks", num: true, cell: (a) => String(tasksOn(a.id)) },
    { label: "Registered", cell: (a) => formatTime(a.registered_time) },
    { label: "Status", cell: (a) => h("span", { class: `badge ${a.active ? "ok" : "warn"}`,
      text: a.active ? "active" : "disconnected" }) },
  ], m.agents, { label: "Agents", empty: "No agents are registered." });
}

function frameworksTable(m) {
  return table([
    { label: "Framework", cell: (f) => [
      f.webui_url ? h("a", { href: f.webui_url, text: f.name, title: "Open the framework's UI" })
        : f.name,
      h("span", { class: "sub mono", text: f.id })] },
    { label: "Roles", cell: (f) => (f.roles ?? [f.role]).map((r) => h("span", { class: "chip", text: r })) },
    { label: "Status", cell: (f) => [
      h("span", { class: `badge ${f.active ? "ok" : "warn"}`, text: f.active ? "active" : "inactive" }),
      f.suppressed ? [" ", h("span", { class: "badge", text: "suppressed" })] : null] },
    { label: "Tasks", num: true, cell: (f) => String((f.tasks ?? []).length) },
    { label: "CPUs", num: true, cell: (f) => formatScalar(f.used_resources?.cpus) },
    { label: "Mem", num: true, cell: (f) => formatMiB(f.used_resources?.mem) },
    { label: "Dominant share", cell: (f) => segmentedBar({
      name: `dominant share of ${f.name}`, total: 1,
      segments: [{ value: f.dominant_share ?? 0, tone: "ok" }],
      legend: `${((f.dominant_share ?? 0) * 100).toFixed(1)}%`,
    }) },
    { label: "Registered", cell: (f) => formatTime(f.registered_time) },
  ], m.frameworks, { label: "Frameworks", empty: "No frameworks are registered." });
}

function tasksTable(m, tasks, label) {
  return table([
    { label: "Task", cell: (t) => [
      h("a", { href: `#/tasks/${encodeURIComponent(t.framework_id)}/${encodeURIComponent(t.id)}`,
        text: t.id, class: "mono" }),
      t.name && t.name !== t.id ? h("span", { class: "sub", text: t.name }) : null] },
    { label: "Framework", cell: (t) => t.framework.name },
    { label: "State", cell: (t) => stateBadge(t.state) },
    { label: "Host", cell: (t) => m.agentById.get(t.slave_id)?.hostname ?? h("span", { class: "sub mono", text: t.slave_id }) },
    { label: "CPUs", num: true, cell: (t) => formatScalar(t.resources?.cpus) },
    { label: "Mem", num: true, cell: (t) => formatMiB(t.resources?.mem) },
    { label: "Updated", cell: (t) => formatTime(lastUpdate(t)) },
  ], tasks, { label, empty: "No tasks." });
}

// -------------------------------------------------------------- task detail

function findTask(state, frameworkId, taskId) {
  const framework = [...(state.frameworks ?? []), ...(state.completed_frameworks ?? [])]
    .find((f) => f.id === frameworkId);
  if (!framework) return null;
  const task = [...(framework.tasks ?? []), ...(framework.unreachable_tasks ?? []),
    ...(framework.completed_tasks ?? [])].find((t) => t.id === taskId);
  return task ? { task, framework } : null;
}

function taskView(frameworkId, taskId) {
  const usage = usageView(frameworkId, taskId);
  const sandbox = sandboxView(frameworkId, taskId);
  return composite(
    h("div", { class: "breadcrumb" }, h("a", { href: "#/tasks", text: "Tasks" }), " › ", taskId),
    liveView((state) => {
      const found = findTask(state, frameworkId, taskId);
      if (!found) {
        return h("div", { class: "notice warn" },
          `The master does not know task ${taskId} of framework ${frameworkId} (any more).`);
      }
      const { task, framework } = found;
      const agent = model(state).agentById.get(task.slave_id);
      return [
        h("h1", {}, `Task ${task.id} `, stateBadge(task.state)),
        h("div", { class: "grid" },
          panel("Task", facts([
            ["Name", task.name],
            ["Framework", `${framework.name} (${framework.id})`],
            ["Agent", agent ? `${agent.hostname} (${agent.pid})` : task.slave_id],
            ["Executor", task.executor_id || "command executor"],
            ["Resources", chips(Object.fromEntries(Object.entries(task.resources ?? {})
              .filter(([, v]) => v !== 0 && v !== "")))],
            ["Role", task.role],
          ])),
          panel("Status updates", table([
            { label: "State", cell: (s) => stateBadge(s.state) },
            { label: "Time", cell: (s) => formatTime(s.timestamp) },
            { label: "Reason", cell: (s) => s.reason ?? "" },
            { label: "Message", cell: (s) => s.message ?? "" },
          ], [...(task.statuses ?? [])].reverse(), { label: "Status updates", empty: "None yet." }))),
      ];
    }),
    usage,
    sandbox,
  );
}

const TERMINAL = new Set(["TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_ERROR", "TASK_LOST",
  "TASK_DROPPED", "TASK_GONE", "TASK_GONE_BY_OPERATOR"]);

/**
 * The task's current usage, from its agent's /monitor/statistics (its container's: a command
 * task's executor is named after the task, a custom executor's container is shared by its
 * tasks). CPU use is the rate between two measurements, so it shows from the second poll on.
 */
function usageView(frameworkId, taskId) {
  const body = h("div", { class: "sub", text: "Measuring…" });
  const node = panel("Usage", body);
  let previous = null;   // the last statistics, for the CPU rate
  let asking = false;

  function render(statistics) {
    const cpuTime = (statistics.cpus_user_time_secs ?? 0) + (statistics.cpus_system_time_secs ?? 0);
    let rate = null;
    if (previous && statistics.timestamp > previous.timestamp) {
      const before = (previous.cpus_user_time_secs ?? 0) + (previous.cpus_system_time_secs ?? 0);
      rate = Math.max(0, (cpuTime - before) / (statistics.timestamp - previous.timestamp));
    }
    previous = statistics;
    const bar = (resource, used, total, format) => segmentedBar({
      name: `${resource} used`, total, large: true,
      segments: [{ value: used, tone: "", label: format(used) }],
      legend: [h("span", { class: "name", text: resource }), `${format(used)} / ${format(total)}`],
    });
    const bars = [];
    if (rate !== null && statistics.cpus_limit) {
      bars.push(bar("cpus", Number(rate.toFixed(3)), statistics.cpus_limit, formatScalar));
    }
    if (statistics.mem_rss_bytes !== undefined && statistics.mem_limit_bytes) {
      bars.push(bar("memory", statistics.mem_rss_bytes, statistics.mem_limit_bytes, formatBytes));
    }
    if (statistics.disk_used_bytes !== undefined && statistics.disk_limit_bytes) {
      bars.push(bar("disk", statistics.disk_used_bytes, statistics.disk_limit_bytes, formatBytes));
    }
    const throttled = statistics.cpus_nr_periods
      ? `${statistics.cpus_nr_throttled ?? 0} of ${statistics.cpus_nr_periods} periods`
        + ` (${formatScalar(statistics.cpus_throttled_time_secs ?? 0)} s)`
      : null;
    const known = (value, format) => (value === undefined ? null : format(value));
    return [
      h("div", { style: "display: grid; gap: 12px; margin-bottom: 12px" }, bars),
      facts([
        ["CPU time", statistics.cpus_user_time_secs === undefined ? null
          : `${formatScalar(cpuTime)} s (user ${formatScalar(statistics.cpus_user_time_secs)} s,`
            + ` system ${formatScalar(statistics.cpus_system_time_secs ?? 0)} s)`],
        ["Throttled", throttled],
        ["Memory", known(statistics.mem_rss_bytes, (rss) => `${formatBytes(rss)} resident`
          + (statistics.mem_cache_bytes !== undefined ? `, ${formatBytes(statistics.mem_cache_bytes)} cache` : "")
          + (statistics.mem_limit_bytes ? ` of ${formatBytes(statistics.mem_limit_bytes)}` : ""))],
        ["Disk", known(statistics.disk_used_bytes, (used) => `${formatBytes(used)} used`
          + (statistics.disk_limit_bytes ? ` of ${formatBytes(statistics.disk_limit_bytes)}` : ""))],
        ["Processes", known(statistics.processes, String)],
        ["Measured", formatTime(statistics.timestamp)],
      ]),
    ];
  }

  async function measure(state) {
    const found = findTask(state, frameworkId, taskId);
    if (!found || TERMINAL.has(found.task.state)) {
      previous = null;
      body.replaceChildren(h("div", { class: "sub", text: "The task is not running: no usage." }));
      return;
    }
    const { task } = found;
    const executorId = task.executor_id || task.id;
    const entries = await getJSON(
      `/ui/agent/${encodeURIComponent(task.slave_id)}/monitor/statistics`);
    const entry = entries.find((e) => e.framework_id === frameworkId && e.executor_id === executorId);
    body.replaceChildren(...(entry ? render(entry.statistics)
      : [h("div", { class: "sub", text: "The agent has no usage for this task (yet)." })]));
  }

  return {
    node,
    async update(state) {
      if (asking) return;
      asking = true;
      try {
        await measure(state);
      } catch (error) {
        body.replaceChildren(errorNotice(error));
      } finally {
        asking = false;
      }
    },
    stop() {},
  };
}

/** The task's sandbox: its files, and a live tail of one of them (stdout at first). */
function sandboxView(frameworkId, taskId) {
  const status = h("div", { class: "sub", text: "Looking for the sandbox…" });
  const files = h("div");
  const viewerButtons = h("div", { class: "toolbar", role: "group", "aria-label": "Files to follow" });
  const log = h("pre", { class: "log", role: "log", "aria-label": "Log output", tabindex: 0 });
  const logStatus = h("span", { class: "sub" });
  const node = panel("Sandbox", [status, files, h("h3", { text: "Follow a file" }), viewerButtons,
    log, logStatus]);
  let located = null;   // {agentId, directory}
  let locating = false;
  let tail = null;
  let lastListing = null;

  async function locate(state) {
    const found = findTask(state, frameworkId, taskId);
    if (!found) return;
    const agentId = found.task.slave_id;
    const agentState = await getJSON(`/ui/agent/${encodeURIComponent(agentId)}/state`);
    for (const framework of [...(agentState.frameworks ?? []), ...(agentState.completed_frameworks ?? [])]) {
      if (framework.id !== frameworkId) continue;
      for (const executor of [...(framework.executors ?? []), ...(framework.completed_executors ?? [])]) {
        const tasks = [...(executor.tasks ?? []), ...(executor.completed_tasks ?? []),
          ...(executor.queued_tasks ?? [])];
        if (executor.directory && tasks.some((t) => t.id === taskId)) {
          located = { agentId, directory: executor.directory };
          status.replaceChildren("Directory ", h("code", { text: executor.directory }),
            ` on ${agentState.hostname}`);
          viewerButtons.replaceChildren(...["stdout", "stderr"].map((name) =>
            h("button", { type: "button", text: name, "aria-pressed": "false",
              onclick: () => follow(`${executor.directory}/${name}`) })));
          follow(`${executor.directory}/stdout`);
          return;
        }
      }
    }
    status.textContent = "The agent has no sandbox for this task yet.";
  }

  function follow(path) {
    tail?.stop();
    for (const button of viewerButtons.querySelectorAll("button")) {
      button.setAttribute("aria-pressed", String(path.endsWith(`/${button.textContent}`)));
    }
    log.setAttribute("aria-label", path.split("/").pop());
    tail = new Tail(located.agentId, path, log, logStatus);
  }

  async function list() {
    const agent = encodeURIComponent(located.agentId);
    const entries = await getJSON(`/ui/agent/${agent}/files/browse?path=${encodeURIComponent(located.directory)}`);
    const key = JSON.stringify(entries);
    if (key === lastListing) return;
    lastListing = key;
    files.replaceChildren(table([
      { label: "Name", cell: (e) => e.mode.startsWith("d") ? e.path.split("/").pop() + "/"
        : h("button", { type: "button", class: "small", text: e.path.split("/").pop(),
          "aria-label": `Follow ${e.path.split("/").pop()}`, onclick: () => follow(e.path) }) },
      { label: "Size", num: true, cell: (e) => formatBytes(e.size) },
      { label: "Mode", cell: (e) => h("span", { class: "mono", text: e.mode }) },
      { label: "Modified", cell: (e) => formatTime(e.mtime) },
      { label: "", cell: (e) => e.mode.startsWith("d") ? "" : h("a", {
        href: `/ui/agent/${agent}/files/download?path=${encodeURIComponent(e.path)}`,
        text: "Download", "aria-label": `Download ${e.path.split("/").pop()}` }) },
    ], entries, { label: "Sandbox files", empty: "The sandbox is empty." }));
  }

  return {
    node,
    async update(state) {
      if (locating) return;
      locating = true;
      try {
        if (!located) await locate(state);
        if (located) await list();
      } catch (error) {
        status.replaceChildren(errorNotice(error));
      } finally {
        locating = false;
      }
    },
    stop() { tail?.stop(); },
  };
}

/** Follows one sandbox file: its last TAIL_START bytes, then whatever is appended. */
class Tail {
  constructor(agentId, path, pre, status) {
    this.base = `/ui/agent/${encodeURIComponent(agentId)}/files/read?path=${encodeURIComponent(path)}`;
    this.pre = pre;
    this.status = status;
    this.stopped = false;
    this.decoder = new TextDecoder("utf-8");
    pre.replaceChildren();
    this.run();
  }

  stop() { this.stopped = true; }

  async run() {
    let offset = null;
    while (!this.stopped) {
      try {
        if (offset === null) {
          const size = (await getJSON(`${this.base}&offset=-1`)).offset;
          offset = Math.max(0, size - TAIL_START);
          if (offset > 0) this.write(`… ${formatBytes(offset)} earlier output not shown\n`);
        }
        const chunk = await getJSON(`${this.base}&offset=${offset}&length=${CHUNK}`);
        if (this.stopped) return;
        const data = chunk.data ?? "";
        offset += data.length;
        if (data.length) {
          // the agent sends one character per byte: back to bytes, then decode as UTF-8
          this.write(this.decoder.decode(Uint8Array.from(data, (c) => c.charCodeAt(0)), { stream: true }));
        }
        this.status.textContent = `${formatBytes(offset)} · following`;
        if (data.length >= CHUNK) continue;
      } catch (error) {
        if (this.stopped) return;
        this.status.textContent = error.status === 404 ? "The file does not exist (yet)."
          : `Cannot read the file: ${error.message}`;
      }
      await new Promise((resolve) => setTimeout(resolve, TAIL_INTERVAL));
    }
  }

  write(text) {
    const pre = this.pre;
    const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 8;
    pre.append(text);
    if (atBottom) pre.scrollTop = pre.scrollHeight;
  }
}
