// Marathon's page: applications with their instances and health, deployments with their
// progress, the launch queue with the reasons offers were declined, and the create, scale,
// restart, kill and destroy actions (Marathon's v2 API). Updated by polling and, sooner, on
// every event of /v2/events.

import {
  api, badge, chips, composite, confirmButton, errorNotice, facts, field, formToolbar, formatMiB,
  formatScalar, formatDuration, formatTime, formValues, getJSON, h, liveView, metaItem, panel,
  perform, segmentedBar, shell, startPage, stateBadge, table, tile, toast,
} from "./common.js";

const REFRESHING_EVENTS = [
  "status_update_event", "instance_changed_event", "health_status_changed_event",
  "deployment_info", "deployment_success", "deployment_failed", "deployment_step_success",
  "deployment_step_failure", "group_change_success", "app_terminated_event",
];

const ui = shell({
  product: "Marathon",
  nav: [
    { href: "#/", label: "Applications" },
    { href: "#/deployments", label: "Deployments" },
    { href: "#/queue", label: "Queue" },
  ],
});

const page = startPage({
  ui,
  load: async () => {
    const [apps, deployments, queue, info] = await Promise.all([
      getJSON("/v2/apps?embed=apps.tasks&embed=apps.lastTaskFailure"),
      getJSON("/v2/deployments"),
      getJSON("/v2/queue?embed=lastUnusedOffers"),
      getJSON("/v2/info"),
    ]);
    return { apps: apps.apps, deployments, queue: queue.queue, info };
  },
  onData: (data) => ui.setMeta([
    metaItem("Leader", data.info.leader ?? "none known"),
    data.info.elected ? null : metaItem("This instance", "standby"),
    metaItem("Version", data.info.version),
  ]),
  routes: [
    { pattern: /^\/$/, nav: "#/", view: () => appsView() },
    { pattern: /^\/apps(\/.+)$/, nav: "#/", view: (m) => appView(m[1]) },
    { pattern: /^\/deployments$/, nav: "#/deployments", view: () => liveView(deploymentsPage) },
    { pattern: /^\/queue$/, nav: "#/queue", view: () => liveView(queuePage) },
  ],
});

followEvents();

function followEvents() {
  const types = REFRESHING_EVENTS.map((t) => `event_type=${t}`).join("&");
  const source = new EventSource(`/v2/events?${types}`);
  let pending = null;
  const soon = () => {
    clearTimeout(pending);
    pending = setTimeout(() => page.refresh(), 150);
  };
  for (const type of REFRESHING_EVENTS) source.addEventListener(type, soon);
}

// ------------------------------------------------------------------ status

function appStatus(app, data) {
  const queued = data.queue.find((q) => q.app.id === app.id);
  if (app.deployments.length) return { text: "Deploying", tone: "info" };
  if (app.instances === 0 && app.tasksRunning === 0) return { text: "Suspended", tone: "" };
  if (queued && delayed(queued)) return { text: "Delayed", tone: "warn" };
  if (queued) return { text: "Waiting", tone: "warn" };
  return { text: "Running", tone: "ok" };
}

function instancesBar(app) {
  const healthy = app.tasksHealthy;
  const unhealthy = app.tasksUnhealthy;
  const running = app.tasksRunning - healthy - unhealthy;
  const total = Math.max(app.instances, app.tasksRunning + app.tasksStaged, 1);
  return segmentedBar({
    name: `instances of ${app.id}`, total,
    legend: `${app.tasksRunning} of ${app.instances} running`,
    segments: [
      { value: healthy, tone: "ok", label: `${healthy} healthy` },
      { value: running, tone: "", label: `${running} running` },
      { value: unhealthy, tone: "bad", label: `${unhealthy} unhealthy` },
      { value: app.tasksStaged, tone: "staged", label: `${app.tasksStaged} staged` },
    ],
  });
}

function instanceHealth(task, app) {
  const results = task.healthCheckResults ?? [];
  if (!results.length) {
    return (app?.healthChecks ?? []).length ? badge("unknown", "")
      : h("span", { class: "sub", text: "no checks" });
  }
  if (results.some((r) => !r.alive && r.lastFailure)) return badge("unhealthy", "bad");
  if (results.every((r) => r.alive)) return badge("healthy", "ok");
  return badge("unknown", "");  // a check that has not answered yet, as Marathon shows it
}

// ------------------------------------------------------------ applications

function appsView() {
  const form = createAppForm();
  return composite(
    formToolbar("Applications", "Create application", form),
    form,
    liveView((data) => {
      const running = data.apps.reduce((n, a) => n + a.tasksRunning, 0);
      return [
        h("div", { class: "tiles" },
          tile(data.apps.length, "applications"),
          tile(running, "running instances"),
          tile(data.deployments.length, "deployments in progress"),
          tile(data.queue.length, "apps waiting for offers")),
        panel("All applications", table([
          { label: "ID", cell: (a) => h("a", { href: `#/apps${a.id}`, text: a.id }) },
          { label: "Status", cell: (a) => { const s = appStatus(a, data); return badge(s.text, s.tone); } },
          { label: "Instances", cell: (a) => instancesBar(a) },
          { label: "Running", num: true, cell: (a) => String(a.tasksRunning) },
          { label: "Healthy", num: true, cell: (a) => String(a.tasksHealthy) },
          { label: "Staged", num: true, cell: (a) => String(a.tasksStaged) },
          { label: "Target", num: true, cell: (a) => String(a.instances) },
          { label: "CPUs", num: true, cell: (a) => formatScalar(a.cpus) },
          { label: "Mem", num: true, cell: (a) => formatMiB(a.mem) },
          { label: "Command", class: "truncate mono", cell: (a) => a.cmd ?? (a.args ?? []).join(" ") },
        ], data.apps, { label: "Applications", empty: "No applications yet: create one." })),
      ];
    }),
  );
}

function createAppForm() {
  const errors = h("div", { class: "wide" });
  const form = h("form", { class: "stacked", "aria-label": "New application", hidden: true },
    h("h2", { class: "wide", text: "New application" }),
    field("ID", h("input", { name: "id", required: true, placeholder: "/my-app" })),
    field("Command", h("input", { name: "cmd", required: true, placeholder: "python3 -m http.server $PORT0" }), { wide: true }),
    field("CPUs", h("input", { name: "cpus", type: "number", step: "0.01", min: "0.01", value: "0.1" })),
    field("Memory (MiB)", h("input", { name: "mem", type: "number", step: "1", min: "1", value: "32" })),
    field("Disk (MiB)", h("input", { name: "disk", type: "number", step: "1", min: "0", value: "0" })),
    field("Instances", h("input", { name: "instances", type: "number", step: "1", min: "0", value: "1" })),
    field("Constraints (one per line, e.g. hostname:UNIQUE)",
      h("textarea", { name: "constraints", rows: 2 }), { wide: true }),
    errors,
    h("div", { class: "form-buttons" },
      h("button", { type: "submit", class: "primary", text: "Create" }),
      h("button", { type: "button", text: "Cancel", onclick: () => { form.hidden = true; } })),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const v = formValues(form);
    const definition = {
      id: v.id.startsWith("/") ? v.id : `/${v.id}`,
      cmd: v.cmd,
      cpus: Number(v.cpus),
      mem: Number(v.mem),
      disk: Number(v.disk),
      instances: Number(v.instances),
      constraints: v.constraints.split("\n").map((line) => line.trim()).filter(Boolean)
        .map((line) => line.split(":")),
    };
    errors.replaceChildren();
    try {
      await api("POST", "/v2/apps", definition);
    } catch (error) {
      errors.replaceChildren(errorNotice(error));
      return;
    }
    toast(`Created ${definition.id}`);
    form.reset();
    form.hidden = true;
    page.refresh();
    page.go(`#/apps${definition.id}`);
  });
  return form;
}

// -------------------------------------------------------------- one app

function appView(appId) {
  const path = `/v2/apps${appId}`;
  const force = h("input", { type: "checkbox", name: "force" });
  const forced = (url) => (force.checked ? `${url}${url.includes("?") ? "&" : "?"}force=true` : url);
  const instances = h("input", { type: "number", name: "instances", min: "0", step: "1", required: true });
  let instancesSet = false;
  const scale = h("form", { class: "inline", "aria-label": "Scale" },
    field("Instances", instances),
    h("button", { type: "submit", text: "Scale" }));
  scale.addEventListener("submit", async (event) => {
    event.preventDefault();
    const count = Number(instances.value);
    await perform(() => api("PATCH", forced(path), { instances: count }),
      () => `Scaling ${appId} to ${count} instances`);
    page.refresh();
  });
  const actions = h("div", { class: "toolbar" },
    h("h1", { text: appId, style: "margin: 0" }),
    h("span", { class: "spacer" }),
    scale,
    h("button", { type: "button", text: "Restart", onclick: async () => {
      await perform(() => api("POST", forced(`${path}/restart`)), () => `Restarting ${appId}`);
      page.refresh();
    } }),
    confirmButton("Destroy", async () => {
      const done = await perform(() => api("DELETE", forced(path)), () => `Destroying ${appId}`);
      if (done !== undefined) page.go("#/");
    }),
    h("label", { class: "check", title: "Override a deployment in progress" }, force, "Force"));

  const details = liveView((data) => {
    const app = data.apps.find((a) => a.id === appId);
    if (!app) {
      return h("div", { class: "notice warn" }, `There is no application ${appId}. `,
        h("a", { href: "#/", text: "All applications" }));
    }
    if (!instancesSet) {
      instances.value = String(app.instances);
      instancesSet = true;
    }
    const status = appStatus(app, data);
    const deployments = data.deployments.filter((d) => d.affectedApps.includes(app.id));
    const queued = data.queue.find((q) => q.app.id === app.id);
    return [
      h("div", { class: "toolbar" }, "Status ", badge(status.text, status.tone)),
      h("div", { class: "tiles" },
        tile(`${app.tasksRunning} / ${app.instances}`, "running / target"),
        tile(app.tasksHealthy, "healthy"),
        tile(app.tasksUnhealthy, "unhealthy"),
        tile(app.tasksStaged, "staged")),
      queued ? queueNotice(queued) : null,
      deployments.length ? panel("Deployments", deploymentsTable(deployments)) : null,
      panel(`Instances (${(app.tasks ?? []).length})`, table([
        { label: "Task", cell: (t) => h("span", { class: "mono", text: t.id }) },
        { label: "Host", cell: (t) => t.host },
        { label: "Ports", cell: (t) => (t.ports ?? []).join(", ") },
        { label: "State", cell: (t) => stateBadge(t.state) },
        { label: "Health", cell: (t) => instanceHealth(t, app) },
        { label: "Started", cell: (t) => formatTime(t.startedAt ?? t.stagedAt) },
        { label: "Version", cell: (t) => h("span", { class: "sub", text: t.version }) },
        { label: "", cell: (t) => h("button", {
          type: "button", class: "small", text: "Kill", "aria-label": `Kill ${t.id}`,
          onclick: async () => {
            await perform(() => api("DELETE", `${path}/tasks/${encodeURIComponent(t.id)}`),
              () => `Killing ${t.id}`);
            page.refresh();
          } }) },
      ], app.tasks ?? [], { label: "Instances", empty: "No instances." })),
      h("div", { class: "grid" },
        panel("Configuration", facts([
          ["Command", app.cmd ? h("code", { text: app.cmd }) : null],
          ["Args", app.args?.length ? h("code", { text: app.args.join(" ") }) : null],
          ["CPUs", formatScalar(app.cpus)],
          ["Memory", formatMiB(app.mem)],
          ["Disk", formatMiB(app.disk)],
          ["GPUs", app.gpus ? formatScalar(app.gpus) : null],
          ["Instances", String(app.instances)],
          ["Constraints", (app.constraints ?? []).length
            ? app.constraints.map((c) => h("span", { class: "chip", text: c.join(":") })) : "none"],
          ["Role", app.role],
          ["Labels", Object.keys(app.labels ?? {}).length ? chips(app.labels) : null],
          ["Health checks", (app.healthChecks ?? []).length
            ? app.healthChecks.map((c) => h("span", { class: "chip", text: `${c.protocol} ${c.path ?? ""}`.trim() }))
            : "none"],
          ["Version", app.version],
        ])),
        app.lastTaskFailure ? panel("Last task failure", facts([
          ["Task", app.lastTaskFailure.taskId],
          ["State", stateBadge(app.lastTaskFailure.state)],
          ["Message", app.lastTaskFailure.message],
          ["Host", app.lastTaskFailure.host],
          ["When", formatTime(app.lastTaskFailure.timestamp)],
        ])) : null),
    ];
  });
  return composite(
    h("div", { class: "breadcrumb" }, h("a", { href: "#/", text: "Applications" }), " › ", appId),
    actions,
    details,
  );
}

// ------------------------------------------------------------ deployments

function deploymentsPage(data) {
  return [
    h("h1", { text: "Deployments" }),
    panel(`In progress (${data.deployments.length})`, deploymentsTable(data.deployments)),
  ];
}

function deploymentsTable(deployments) {
  return table([
    { label: "Deployment", cell: (d) => h("span", { class: "mono", text: d.id }) },
    { label: "Apps", cell: (d) => d.affectedApps.map((id) =>
      h("a", { href: `#/apps${id}`, text: id, class: "chip" })) },
    { label: "Progress", cell: (d) => segmentedBar({
      name: `progress of deployment ${d.id}`, total: Math.max(d.totalSteps, 1),
      segments: [{ value: Math.max(d.currentStep - 1, 0), tone: "ok" },
        { value: d.currentStep ? 1 : 0, tone: "offered" }],
      legend: `step ${d.currentStep} of ${d.totalSteps}`,
    }) },
    { label: "Current actions", cell: (d) => (d.currentActions ?? []).map((a) =>
      h("span", { class: "chip" }, `${a.action} ${a.app ?? a.pod ?? ""}`,
        (a.readinessCheckResults ?? []).length
          ? ` (${a.readinessCheckResults.filter((r) => r.ready).length}/${a.readinessCheckResults.length} ready)`
          : "")) },
    { label: "Started", cell: (d) => formatTime(d.version) },
    { label: "", cell: (d) => h("div", { class: "toolbar", style: "margin: 0" },
      h("button", { type: "button", class: "small", text: "Roll back",
        "aria-label": `Roll back deployment ${d.id}`, onclick: async () => {
          await perform(() => api("DELETE", `/v2/deployments/${d.id}`), () => `Rolling back ${d.id}`);
          page.refresh();
        } }),
      h("button", { type: "button", class: "small danger", text: "Stop",
        "aria-label": `Stop deployment ${d.id}`, onclick: async () => {
          await perform(() => api("DELETE", `/v2/deployments/${d.id}?force=true`), () => `Stopped ${d.id}`);
          page.refresh();
        } })) },
  ], deployments, { label: "Deployments", empty: "No deployment is in progress." });
}

// ------------------------------------------------------------------ queue

function queuePage(data) {
  return [
    h("h1", { text: "Launch queue" }),
    data.queue.length ? null : h("div", { class: "notice info", text: "Nothing is waiting for offers." }),
    ...data.queue.map((entry) => queuePanel(entry)),
  ];
}

function delayed(entry) {
  return !entry.delay.overdue && entry.delay.timeLeftSeconds > 0;
}

function queueNotice(entry) {
  return h("div", { class: "notice warn" },
    `${entry.count} instance${entry.count === 1 ? "" : "s"} waiting for a matching offer`,
    delayed(entry) ? ` (launches delayed ${formatDuration(entry.delay.timeLeftSeconds)} by backoff)` : "",
    ". ", h("a", { href: "#/queue", text: "See why offers were declined" }));
}

function queuePanel(entry) {
  const summary = entry.processedOffersSummary ?? {};
  const reasons = (summary.rejectSummaryLastOffers ?? []).filter((r) => r.declined > 0);
  const unused = entry.lastUnusedOffers ?? [];
  return panel(entry.app.id, [
    h("div", { class: "grid" },
      facts([
        ["Waiting", `${entry.count} instance${entry.count === 1 ? "" : "s"}`],
        ["Role", entry.role],
        ["Delay", delayed(entry) ? `${formatDuration(entry.delay.timeLeftSeconds)} left (backoff)`
          : "none (launching as offers arrive)"],
        ["Waiting since", formatTime(entry.since)],
        ["Offers processed", String(summary.processedOffersCount ?? 0)],
        ["Offers declined", String(summary.unusedOffersCount ?? 0)],
        ["Last declined offer", formatTime(summary.lastUnusedOfferAt)],
        ...(entry.lastTaskFailure ? [["Last launch failed", entry.lastTaskFailure.message]] : []),
      ]),
      h("div", {},
        h("h3", { text: "Why the last offers were declined" }),
        table([
          { label: "Reason", cell: (r) => r.reason },
          { label: "Declined", cell: (r) => segmentedBar({
            name: `offers declined for ${r.reason}`, total: Math.max(r.processed, 1),
            segments: [{ value: r.declined, tone: "bad" }],
            legend: `${r.declined} of ${r.processed}`,
          }) },
        ], reasons, { label: `Reject reasons of ${entry.app.id}`, empty: "No offer has been declined yet." }))),
    unused.length ? [h("h3", { text: "Last declined offers" }), table([
      { label: "Agent", cell: (u) => u.offer?.hostname ?? u.offer?.agentId ?? "" },
      { label: "Reasons", cell: (u) => (u.reason ?? []).map((r) => h("span", { class: "chip", text: r })) },
      { label: "When", cell: (u) => formatTime(u.timestamp) },
    ], unused, { label: `Last declined offers of ${entry.app.id}` })] : null,
  ]);
}
