// The batch framework's page: jobs with their schedules and history counts, active runs and
// finished runs, a job's detail, and the create, run-now, stop and delete actions (Metronome's
// v1 API). Updated by polling.

import {
  api, badge, chips, composite, confirmButton, errorNotice, facts, field, formToolbar,
  formatDuration, formatMiB, formatScalar, formatTime, formValues, getJSON, h, liveView, metaItem,
  panel, parseTime, perform, shell, startPage, stateBadge, table, tile, toast,
} from "./common.js";

const RUN_TONES = { SUCCESS: "ok", FAILED: "bad", ACTIVE: "info", STARTING: "info", INITIAL: "info" };

const ui = shell({
  product: "Batch",
  component: "jobs",
  nav: [
    { href: "#/", label: "Jobs" },
    { href: "#/runs", label: "Runs" },
  ],
});

const page = startPage({
  ui,
  load: async () => {
    const [jobs, info] = await Promise.all([
      getJSON("/v1/jobs?embed=activeRuns,schedules,history"),
      getJSON("/info"),
    ]);
    return { jobs, info };
  },
  onData: (data) => ui.setMeta([
    metaItem("Leader", data.info.leader ?? "none known"),
    data.info.elected ? null : metaItem("This instance", "standby"),
    metaItem("Version", data.info.version),
  ]),
  routes: [
    { pattern: /^\/$/, nav: "#/", view: () => jobsView() },
    { pattern: /^\/jobs\/(.+)$/, nav: "#/", view: (m) => jobView(m[1]) },
    { pattern: /^\/runs$/, nav: "#/runs", view: () => liveView(runsPage) },
  ],
});

function runBadge(status) {
  return badge(status, RUN_TONES[status] ?? "");
}

function finishedRuns(job) {
  const history = job.history ?? {};
  return [
    ...(history.successfulFinishedRuns ?? []).map((r) => ({ ...r, jobId: job.id, outcome: "SUCCESS" })),
    ...(history.failedFinishedRuns ?? []).map((r) => ({ ...r, jobId: job.id, outcome: "FAILED" })),
  ].sort((a, b) => String(b.finishedAt).localeCompare(String(a.finishedAt)));
}

function lastRun(job) {
  const history = job.history ?? {};
  const success = history.lastSuccessAt;
  const failure = history.lastFailureAt;
  if (!success && !failure) return h("span", { class: "sub", text: "never finished" });
  const succeeded = success && (!failure || success >= failure);
  return [runBadge(succeeded ? "SUCCESS" : "FAILED"), " ", formatTime(succeeded ? success : failure)];
}

async function runNow(jobId) {
  await perform(() => api("POST", `/v1/jobs/${encodeURIComponent(jobId)}/runs`),
    (run) => `Started run ${run.id} of ${jobId}`);
  page.refresh();
}

function runNowButton(jobId) {
  return h("button", { type: "button", class: "small", text: "Run now",
    "aria-label": `Run ${jobId} now`, onclick: () => runNow(jobId) });
}

// --------------------------------------------------------------------- jobs

function jobsView() {
  const form = createJobForm();
  return composite(
    formToolbar("Jobs", "Create job", form),
    form,
    liveView((data) => {
      const active = data.jobs.reduce((n, j) => n + (j.activeRuns ?? []).length, 0);
      const successes = data.jobs.reduce((n, j) => n + (j.history?.successCount ?? 0), 0);
      const failures = data.jobs.reduce((n, j) => n + (j.history?.failureCount ?? 0), 0);
      return [
        h("div", { class: "tiles" },
          tile(data.jobs.length, "jobs"),
          tile(data.jobs.reduce((n, j) => n + (j.schedules ?? []).length, 0), "schedules"),
          tile(active, "active runs"),
          tile(successes, "successful runs"),
          tile(failures, "failed runs")),
        panel("All jobs", table([
          { label: "Job", cell: (j) => [h("a", { href: `#/jobs/${encodeURIComponent(j.id)}`, text: j.id }),
            j.description ? h("span", { class: "sub", text: j.description }) : null] },
          { label: "Command", class: "truncate mono", cell: (j) => j.run?.cmd ?? "" },
          { label: "Schedules", cell: (j) => (j.schedules ?? []).length
            ? j.schedules.map((s) => h("span", { class: "chip", title: s.id },
              `${s.cron}${s.enabled === false ? " (disabled)" : ""}`))
            : h("span", { class: "sub", text: "on demand" }) },
          { label: "Active runs", num: true, cell: (j) => String((j.activeRuns ?? []).length) },
          { label: "Successes", num: true, cell: (j) => String(j.history?.successCount ?? 0) },
          { label: "Failures", num: true, cell: (j) => String(j.history?.failureCount ?? 0) },
          { label: "Last finished", cell: lastRun },
          { label: "", cell: (j) => runNowButton(j.id) },
        ], data.jobs, { label: "Jobs", empty: "No jobs yet: create one." })),
      ];
    }),
  );
}

function createJobForm() {
  const errors = h("div", { class: "wide" });
  const form = h("form", { class: "stacked", "aria-label": "New job", hidden: true },
    h("h2", { class: "wide", text: "New job" }),
    field("ID", h("input", { name: "id", required: true, placeholder: "nightly-report" })),
    field("Description", h("input", { name: "description" })),
    field("Command", h("input", { name: "cmd", required: true, placeholder: "./report.sh" }), { wide: true }),
    field("CPUs", h("input", { name: "cpus", type: "number", step: "0.01", min: "0.01", value: "0.1" })),
    field("Memory (MiB)", h("input", { name: "mem", type: "number", step: "1", min: "1", value: "32" })),
    field("Disk (MiB)", h("input", { name: "disk", type: "number", step: "1", min: "0", value: "0" })),
    field("Cron schedule (optional)", h("input", { name: "cron", placeholder: "0 2 * * *" })),
    errors,
    h("div", { class: "form-buttons" },
      h("button", { type: "submit", class: "primary", text: "Create" }),
      h("button", { type: "button", text: "Cancel", onclick: () => { form.hidden = true; } })),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const v = formValues(form);
    const job = {
      id: v.id,
      description: v.description,
      run: { cmd: v.cmd, cpus: Number(v.cpus), mem: Number(v.mem), disk: Number(v.disk) },
    };
    if (v.cron) job.schedules = [{ id: "default", cron: v.cron }];
    errors.replaceChildren();
    try {
      await api("POST", "/v1/jobs", job);
    } catch (error) {
      errors.replaceChildren(errorNotice(error));
      return;
    }
    toast(`Created job ${job.id}`);
    form.reset();
    form.hidden = true;
    page.refresh();
  });
  return form;
}

// ---------------------------------------------------------------------- one job

function jobView(jobId) {
  const path = `/v1/jobs/${encodeURIComponent(jobId)}`;
  const schedules = h("div", {}, h("div", { class: "empty", text: "Loading schedules…" }));
  let lastSchedules = null;

  async function loadSchedules() {
    try {
      const list = await getJSON(`${path}/schedules`);
      const key = JSON.stringify(list);
      if (key === lastSchedules) return;
      lastSchedules = key;
      schedules.replaceChildren(table([
        { label: "Schedule", cell: (s) => s.id },
        { label: "Cron", cell: (s) => h("code", { text: s.cron }) },
        { label: "Time zone", cell: (s) => s.timezone ?? "UTC" },
        { label: "Enabled", cell: (s) => (s.enabled === false ? badge("disabled") : badge("enabled", "ok")) },
        { label: "Concurrency", cell: (s) => s.concurrencyPolicy ?? "" },
        { label: "Next run", cell: (s) => formatTime(s.nextRunAt) },
      ], list, { label: "Schedules", empty: "No schedules: the job runs on demand." }));
    } catch (error) {
      schedules.replaceChildren(errorNotice(error));
    }
  }

  const details = liveView((data) => {
    const job = data.jobs.find((j) => j.id === jobId);
    if (!job) {
      return h("div", { class: "notice warn" }, `There is no job ${jobId}. `,
        h("a", { href: "#/", text: "All jobs" }));
    }
    const run = job.run ?? {};
    return [
      h("div", { class: "tiles" },
        tile((job.activeRuns ?? []).length, "active runs"),
        tile(job.history?.successCount ?? 0, "successful runs"),
        tile(job.history?.failureCount ?? 0, "failed runs"),
        tile(job.history?.lastSuccessAt ? formatTime(job.history.lastSuccessAt) : "—", "last success")),
      panel("Active runs", activeRunsTable((job.activeRuns ?? []).map((r) => ({ ...r, jobId: job.id })))),
      panel("Finished runs", finishedRunsTable(finishedRuns(job))),
      panel("Definition", facts([
        ["Description", job.description],
        ["Command", run.cmd ? h("code", { text: run.cmd }) : null],
        ["CPUs", formatScalar(run.cpus)],
        ["Memory", formatMiB(run.mem)],
        ["Disk", formatMiB(run.disk)],
        ["Restart", run.restart ? `${run.restart.policy}${run.restart.activeDeadlineSeconds ? `, within ${formatDuration(run.restart.activeDeadlineSeconds)}` : ""}` : null],
        ["Max launch delay", run.maxLaunchDelay ? formatDuration(run.maxLaunchDelay) : null],
        ["Constraints", (run.placement?.constraints ?? []).length
          ? run.placement.constraints.map((c) => h("span", { class: "chip", text: [c.attribute, c.operator, c.value].filter(Boolean).join(" ") }))
          : "none"],
        ["Environment", Object.keys(run.env ?? {}).length ? chips(run.env) : null],
        ["Labels", Object.keys(job.labels ?? {}).length ? chips(job.labels) : null],
      ])),
    ];
  });
  const actions = h("div", { class: "toolbar" },
    h("h1", { text: `Job ${jobId}`, style: "margin: 0" }),
    h("span", { class: "spacer" }),
    h("button", { type: "button", class: "primary", text: "Run now", "aria-label": `Run ${jobId} now`,
      onclick: () => runNow(jobId) }),
    confirmButton("Delete", async () => {
      const done = await perform(() => api("DELETE", `${path}?stopCurrentJobRuns=true`),
        () => `Deleted job ${jobId}`);
      if (done !== undefined) page.go("#/");
    }, { ariaLabel: `Delete ${jobId}` }));
  const view = composite(
    h("div", { class: "breadcrumb" }, h("a", { href: "#/", text: "Jobs" }), " › ", jobId),
    actions,
    details,
    panel("Schedules", schedules),
  );
  return {
    node: view.node,
    update(data) {
      view.update(data);
      loadSchedules();
    },
    stop() { view.stop(); },
  };
}

// ------------------------------------------------------------------- runs

function runsPage(data) {
  const active = data.jobs.flatMap((j) => (j.activeRuns ?? []).map((r) => ({ ...r, jobId: j.id })));
  const finished = data.jobs.flatMap(finishedRuns)
    .sort((a, b) => String(b.finishedAt).localeCompare(String(a.finishedAt)));
  return [
    h("h1", { text: "Runs" }),
    panel(`Active runs (${active.length})`, activeRunsTable(active)),
    panel(`Finished runs (${finished.length})`, finishedRunsTable(finished)),
  ];
}

function activeRunsTable(runs) {
  return table([
    { label: "Job", cell: (r) => h("a", { href: `#/jobs/${encodeURIComponent(r.jobId)}`, text: r.jobId }) },
    { label: "Run", cell: (r) => h("span", { class: "mono", text: r.id }) },
    { label: "Status", cell: (r) => runBadge(r.status) },
    { label: "Created", cell: (r) => formatTime(r.createdAt) },
    { label: "Tasks", cell: (r) => (r.tasks ?? []).length
      ? r.tasks.map((t) => [stateBadge(t.status), " "])
      : h("span", { class: "sub", text: r.waitingReason ? `waiting: ${r.waitingReason}` : "none yet" }) },
    { label: "", cell: (r) => h("button", { type: "button", class: "small danger", text: "Stop",
      "aria-label": `Stop run ${r.id}`, onclick: async () => {
        await perform(() => api("POST", `/v1/jobs/${encodeURIComponent(r.jobId)}/runs/${encodeURIComponent(r.id)}/actions/stop`),
          () => `Stopping run ${r.id}`);
        page.refresh();
      } }) },
  ], runs, { label: "Active runs", empty: "No run is active." });
}

function finishedRunsTable(runs) {
  return table([
    { label: "Job", cell: (r) => h("a", { href: `#/jobs/${encodeURIComponent(r.jobId)}`, text: r.jobId }) },
    { label: "Run", cell: (r) => h("span", { class: "mono", text: r.id }) },
    { label: "Outcome", cell: (r) => runBadge(r.outcome) },
    { label: "Created", cell: (r) => formatTime(r.createdAt) },
    { label: "Finished", cell: (r) => formatTime(r.finishedAt) },
    { label: "Duration", num: true, cell: (r) => formatDuration((parseTime(r.finishedAt) - parseTime(r.createdAt)) / 1000) },
  ], runs, { label: "Finished runs", empty: "No run has finished yet." });
}
