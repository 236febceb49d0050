// Shared helpers of the master, Marathon and batch pages: DOM building, API calls, the page
// shell (header, navigation, live status), a hash router with views updated by polling, and
// the widgets every page uses (tables, badges, resource bars, notices).
//
// A view is {node, update(data), stop()}: the router mounts the view of the current hash and
// hands it every fresh result of the page's `load()`; `liveView(render)` re-renders only when
// the data changed, so forms and focus outside the rendered part are left alone.

export function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      node.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === "class") {
      node.className = value;
    } else if (key === "text") {
      node.textContent = value;
    } else if (key in node && !key.includes("-") && key !== "list") {
      node[key] = value;
    } else {
      node.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else node.append(child instanceof Node ? child : String(child));
  }
}

// ---------------------------------------------------------------- API calls

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

/** How long a call may take before it counts as failed (a request the browser holds back,
 * e.g. behind other tabs' event streams, must not stall the page's polling for good).
 * A page may set `globalThis.mesosUiCallTimeoutMs` before the UI loads (the tests do). */
export const CALL_TIMEOUT_MS = globalThis.mesosUiCallTimeoutMs ?? 15000;

/** Calls a JSON endpoint; answers the parsed body (null when empty), throws ApiError. */
export async function api(method, url, body) {
  const init = { method, headers: { Accept: "application/json" },
    signal: AbortSignal.timeout(CALL_TIMEOUT_MS) };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  let response;
  let text;
  try {
    response = await fetch(url, init);
    text = await response.text();
  } catch (error) {
    if (error.name === "TimeoutError" || error.name === "AbortError") {
      throw new ApiError(0, `no answer within ${CALL_TIMEOUT_MS / 1000} s`, null);
    }
    throw new ApiError(0, `cannot reach the server (${error.message})`, null);
  }
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = text;
  }
  if (!response.ok) {
    const message = (parsed && parsed.message) || (typeof parsed === "string" && parsed)
      || response.statusText;
    throw new ApiError(response.status, `${response.status}: ${message}`, parsed);
  }
  return parsed;
}

export const getJSON = (url) => api("GET", url);

// ------------------------------------------------------------------- shell

/** Builds the page skeleton; answers {main, setMeta(nodes), setLive(ok, text), markNav(href)}. */
export function shell({ product, component, nav }) {
  const live = h("span", { class: "live", text: "connecting" });
  const meta = h("span", { class: "meta-items" });
  const links = nav.map(({ href, label }) => h("a", { href, text: label }));
  const main = h("main", { id: "content" });
  document.body.replaceChildren(
    h("header", { class: "topbar" },
      h("div", { class: "brand" }, product, component ? h("small", { text: component }) : null),
      h("nav", { "aria-label": "Sections" }, links),
      h("div", { class: "meta" }, meta, live)),
    main,
    h("div", { id: "toasts" }),
  );
  return {
    main,
    setMeta(nodes) {
      meta.replaceChildren(...nodes.filter(Boolean));
      meta.style.display = "contents";
    },
    setLive(ok, text) {
      live.className = `live ${ok ? "ok" : "failing"}`;
      live.textContent = text;
    },
    markNav(href) {
      for (const link of links) {
        if (link.getAttribute("href") === href) link.setAttribute("aria-current", "page");
        else link.removeAttribute("aria-current");
      }
    },
  };
}

export function metaItem(label, value) {
  return h("span", {}, h("span", { class: "label", text: label }), " ", value);
}

// ------------------------------------------------------------ router, polling

/**
 * Starts the page: routes are [{pattern: RegExp on the hash path, nav: href, view(match, page)}];
 * `load()` is polled every `interval` ms (and on `page.refresh()`), its result handed to
 * `onData(data)` and to the current view. Answers the page object views receive.
 */
export function startPage({ ui, routes, load, onData, interval = 2000 }) {
  let view = null;
  let timer = null;
  let running = false;
  let again = false;
  const page = {
    data: null,
    refresh() {
      if (running) again = true;
      else poll();
    },
    go(hash) {
      if (location.hash === hash) route();
      else location.hash = hash;
    },
  };

  async function poll() {
    clearTimeout(timer);
    running = true;
    try {
      page.data = await load();
      onData?.(page.data);
      view?.update(page.data);
      ui.setLive(true, `live · ${new Date().toLocaleTimeString()}`);
    } catch (error) {
      ui.setLive(false, `update failed: ${error.message}`);
    } finally {
      running = false;
    }
    if (again) {
      again = false;
      poll();
    } else {
      timer = setTimeout(poll, interval);
    }
  }

  function route() {
    const path = decodeURIComponent(location.hash.replace(/^#/, "")) || "/";
    view?.stop?.();
    for (const candidate of routes) {
      const match = path.match(candidate.pattern);
      if (match) {
        ui.markNav(candidate.nav);
        view = candidate.view(match, page);
        ui.main.replaceChildren(view.node);
        if (page.data !== null) view.update(page.data);
        return;
      }
    }
    ui.markNav(null);
    view = staticView(h("div", { class: "notice warn" }, `Nothing lives at ${path}. `,
      h("a", { href: "#/", text: "Back to the overview" })));
    ui.main.replaceChildren(view.node);
  }

  window.addEventListener("hashchange", route);
  route();
  poll();
  return page;
}

/** A view that renders `render(data)` (a node or list of nodes) whenever the data changed. */
export function liveView(render, { node = h("div") } = {}) {
  let last = null;
  return {
    node,
    update(data) {
      const key = JSON.stringify(data);
      if (key === last) return;
      last = key;
      node.replaceChildren(...[render(data)].flat().filter(Boolean));
    },
    stop() {},
  };
}

export function staticView(node) {
  return { node, update() {}, stop() {} };
}

/** A view made of parts: fixed nodes and live views, all updated together. */
export function composite(...parts) {
  const node = h("div");
  const views = parts.map((part) => (part instanceof Node ? staticView(part) : part));
  node.append(...views.map((v) => v.node));
  return {
    node,
    update(data) { for (const v of views) v.update(data); },
    stop() { for (const v of views) v.stop(); },
  };
}

// ------------------------------------------------------------------ widgets

export function panel(title, body, actions) {
  return h("section", { class: "panel", "aria-label": title },
    h("header", {}, h("h2", { text: title }), actions ? h("div", { class: "actions" }, actions) : null),
    body);
}

/** columns: [{label, cell(row) -> node|string, num?}]. */
export function table(columns, rows, { label, empty = "Nothing to show." } = {}) {
  if (!rows.length) return h("div", { class: "empty", text: empty });
  return h("table", { "aria-label": label },
    h("thead", {}, h("tr", {}, columns.map((c) =>
      h("th", { class: c.num ? "num" : null, scope: "col", text: c.label })))),
    h("tbody", {}, rows.map((row) => h("tr", {}, columns.map((c) =>
      h("td", { class: c.num ? "num" : c.class ?? null }, c.cell(row)))))));
}

export function tile(value, caption) {
  return h("div", { class: "tile" }, h("div", { class: "value", text: String(value) }),
    h("div", { class: "caption", text: caption }));
}

/** A page's title bar with a button that shows and hides `form` (hidden until asked for). */
export function formToolbar(title, buttonText, form) {
  const toggle = h("button", {
    type: "button", class: "primary", text: buttonText, "aria-expanded": "false",
    onclick: () => {
      const open = form.hidden;
      form.hidden = !open;
      toggle.setAttribute("aria-expanded", String(open));
      if (open) form.querySelector("input")?.focus();
    },
  });
  return h("div", { class: "toolbar" }, h("h1", { text: title, style: "margin: 0" }),
    h("span", { class: "spacer" }), toggle);
}

export function facts(pairs) {
  return h("dl", { class: "facts" }, pairs.filter(([, v]) => v !== undefined && v !== null && v !== "")
    .map(([k, v]) => [h("dt", { text: k }), h("dd", {}, v)]));
}

export function badge(text, tone = "") {
  return h("span", { class: `badge ${tone}`, text });
}

const STATE_TONES = {
  TASK_RUNNING: "ok", TASK_FINISHED: "", TASK_STAGING: "info", TASK_STARTING: "info",
  TASK_KILLING: "warn", TASK_KILLED: "warn", TASK_FAILED: "bad", TASK_ERROR: "bad",
  TASK_LOST: "bad", TASK_DROPPED: "bad", TASK_GONE: "bad", TASK_GONE_BY_OPERATOR: "bad",
  TASK_UNREACHABLE: "warn", TASK_UNKNOWN: "warn",
};

export function stateBadge(state) {
  return badge(String(state).replace(/^TASK_/, ""), STATE_TONES[state] ?? "");
}

export function chips(mapping) {
  const entries = Object.entries(mapping ?? {});
  if (!entries.length) return h("span", { class: "sub", text: "—" });
  return entries.map(([k, v]) => h("span", { class: "chip" }, h("b", { text: k }), `: ${v}`));
}

/**
 * A horizontal bar of `total` with coloured segments [{value, tone, label}], exposed to
 * assistive technology (and tests) as a progressbar named `name`.
 */
export function segmentedBar({ name, total, segments, legend, large = false }) {
  const used = segments.reduce((sum, s) => sum + (s.value || 0), 0);
  const percent = (value) => (total > 0 ? Math.min(100, (100 * value) / total) : 0);
  return h("div", {
    class: `bar${large ? " large" : ""}`, role: "progressbar", "aria-label": name,
    "aria-valuemin": 0, "aria-valuemax": total, "aria-valuenow": used,
    "aria-valuetext": legend,
  },
  h("div", { class: "track" }, segments.map((s) =>
    h("div", { class: `fill ${s.tone ?? ""}`, style: `width: ${percent(s.value)}%`, title: s.label }))),
  h("div", { class: "legend" }, legend));
}

/** `used` (and `offered`) of `total` of one resource (mem and disk in MiB). */
export function resourceBar(resource, { used, offered = 0, total, large = false, label }) {
  const format = resource === "mem" || resource === "disk" ? formatMiB : formatScalar;
  const legend = total > 0
    ? `${format(used)} / ${format(total)}${offered ? ` (${format(offered)} offered)` : ""}`
    : "none";
  return segmentedBar({
    name: label ?? `${resource} used`, total, large,
    legend: large ? [h("span", { class: "name", text: resource }), legend] : legend,
    segments: [
      { value: used, tone: "", label: `${format(used)} used` },
      { value: offered, tone: "offered", label: `${format(offered)} offered` },
    ],
  });
}

export function formatScalar(value) {
  const number = Number(value || 0);
  return Number.isInteger(number) ? String(number) : number.toFixed(2).replace(/0+$/, "");
}

export function formatMiB(mib) {
  const value = Number(mib || 0);
  if (value >= 1024 * 1024) return `${formatScalar(value / 1024 / 1024)} TiB`;
  if (value >= 1024) return `${formatScalar(value / 1024)} GiB`;
  return `${formatScalar(value)} MiB`;
}

export function formatBytes(bytes) {
  const value = Number(bytes || 0);
  if (value < 1024) return `${value} B`;
  return value < 1024 * 1024 ? `${formatScalar(value / 1024)} KiB` : formatMiB(value / 1024 / 1024);
}

/** A Date of epoch seconds or an ISO-8601 string (also Metronome's `+0000` offsets). */
export function parseTime(moment) {
  if (typeof moment === "number") return new Date(moment * 1000);
  return new Date(String(moment).replace(/([+-]\d\d)(\d\d)$/, "$1:$2"));
}

/** A time given as epoch seconds or an ISO string, in local time. */
export function formatTime(moment) {
  if (moment === undefined || moment === null || moment === "" || moment === 0) return "—";
  const date = parseTime(moment);
  if (Number.isNaN(date.getTime())) return String(moment);
  const today = new Date().toDateString() === date.toDateString();
  return today ? date.toLocaleTimeString() : date.toLocaleString();
}

export function formatDuration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}

// ------------------------------------------------------------------ notices

export function errorNotice(error) {
  const details = error?.body?.details ?? [];
  return h("div", { class: "notice bad", role: "alert" }, error.message,
    details.length ? h("ul", {}, details.map((d) =>
      h("li", { text: `${d.path}: ${(d.errors ?? []).join(", ")}` }))) : null);
}

/** A short-lived message in the corner: tone "info" (role status) or "bad" (role alert). */
export function toast(message, tone = "info") {
  const node = h("div", { class: `notice ${tone}`, role: tone === "bad" ? "alert" : "status" },
    message);
  document.getElementById("toasts")?.append(node);
  setTimeout(() => node.remove(), tone === "bad" ? 10000 : 5000);
}

/** Runs `action` (async), reports success with `done(result)` and failures as a toast. */
export async function perform(action, done) {
  try {
    const result = await action();
    if (done) toast(done(result));
    return result;
  } catch (error) {
    toast(error.message, "bad");
    return undefined;
  }
}

/** A button that asks to be pressed twice ("Destroy" then "Confirm destroy"). */
export function confirmButton(label, action, { ariaLabel } = {}) {
  const button = h("button", { type: "button", class: "danger", text: label, "aria-label": ariaLabel });
  let armed = false;
  let disarm = null;
  button.addEventListener("click", async () => {
    if (!armed) {
      armed = true;
      button.textContent = `Confirm ${label.toLowerCase()}`;
      button.setAttribute("aria-label", `Confirm ${(ariaLabel ?? label).toLowerCase()}`);
      button.classList.add("confirm");
      disarm = setTimeout(reset, 5000);
      return;
    }
    reset();
    await action();
  });
  function reset() {
    clearTimeout(disarm);
    armed = false;
    button.textContent = label;
    if (ariaLabel) button.setAttribute("aria-label", ariaLabel);
    else button.removeAttribute("aria-label");
    button.classList.remove("confirm");
  }
  return button;
}

/** The values of a form's named fields, trimmed. */
export function formValues(form) {
  const values = {};
  for (const [key, value] of new FormData(form).entries()) values[key] = String(value).trim();
  return values;
}

export function field(label, input, { wide = false } = {}) {
  return h("label", { class: wide ? "wide" : null }, label, input);
}
