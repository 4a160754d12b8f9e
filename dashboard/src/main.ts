/**
 * The Reservoir dashboard: a single page on the public HTTP API only. Sign in with a tenant's
 * API key, or with the operator token (then pick a tenant: the tenant routes are read with the
 * Reservoir-Tenant header, GET only). Views are addressed by the URL's hash, so every view is a
 * link, the back button works, and everything is reachable with the keyboard.
 */
import { ApiError, call, enc, signIn, type Session } from "./api.ts";
import { barChart, type Point } from "./chart.ts";
import { fmt, h, table } from "./dom.ts";

const STORAGE_KEY = "reservoir.dashboard.session";
const REFRESH_MS = 5000;
const HOUR = 3_600_000;

let session: Session | null = loadSession();
let refreshTimer: ReturnType<typeof setInterval> | undefined;
/** Per topic, the last total of high watermarks seen and when: throughput is their difference. */
const samples = new Map<string, { at: number; total: number; rate?: number }>();

function loadSession(): Session | null {
  try {
    return JSON.parse(sessionStorage.getItem(STORAGE_KEY) ?? "null");
  } catch {
    return null;
  }
}

function saveSession(next: Session | null): void {
  session = next;
  if (next) sessionStorage.setItem(STORAGE_KEY, JSON.stringify(next));
  else sessionStorage.removeItem(STORAGE_KEY);
}

const main = () => document.getElementById("main")!;

function announce(message: string, kind: "info" | "error" = "info"): void {
  const status = document.getElementById("status")!;
  status.className = kind;
  status.textContent = message;
}

function errorText(error: unknown): string {
  return error instanceof ApiError ? `${error.code}: ${error.message}` : String(error);
}

// ------------------------------------------------------------------ shell

function renderShell(): void {
  const nav = document.getElementById("nav")!;
  nav.replaceChildren();
  if (!session) return;
  const links: [string, string][] = [
    ["#/topics", "Topics"],
    ["#/usage", "Usage"],
  ];
  if (session.role === "operator") links.push(["#/tenants", "Tenants"]);
  nav.append(
    h(
      "ul",
      {},
      ...links.map(([href, label]) => h("li", {}, h("a", { href, class: location.hash.startsWith(href) ? "current" : null }, label))),
    ),
    h(
      "p",
      { class: "who" },
      session.role === "operator" ? `Operator${session.tenantId ? `, reading tenant ${session.tenantId}` : ""}` : "Tenant API key",
    ),
    h("button", { type: "button", onclick: signOut }, "Sign out"),
  );
}

function signOut(): void {
  saveSession(null);
  announce("Signed out.");
  if (location.hash === "#/") void route();
  else location.hash = "#/";
}

function renderSignIn(): void {
  const input = h("input", { id: "token", name: "token", type: "password", autocomplete: "off", required: true });
  const form = h(
    "form",
    { class: "signin", "aria-labelledby": "signin-title" },
    h("h2", { id: "signin-title" }, "Sign in"),
    h("p", {}, "With a tenant's API key, or with the operator token to see every tenant."),
    h("label", { for: "token" }, "API key or operator token"),
    input,
    h("button", { type: "submit" }, "Sign in"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      saveSession(await signIn(input.value.trim()));
      announce(session!.role === "operator" ? "Signed in as the operator." : "Signed in with a tenant API key.");
      location.hash = session!.role === "operator" ? "#/tenants" : "#/topics";
      route();
    } catch (error) {
      announce(error instanceof ApiError && error.status === 401 ? "That key or token is not accepted." : errorText(error), "error");
    }
  });
  main().replaceChildren(form);
  input.focus();
}

function heading(text: string, ...actions: Node[]): HTMLElement {
  return h("div", { class: "heading" }, h("h2", { tabindex: -1, id: "view-title" }, text), ...actions);
}

function refreshButton(render: () => Promise<void>): HTMLButtonElement {
  return h("button", { type: "button", onclick: () => void render() }, "Refresh");
}

/** Operator without a tenant chosen: the tenant routes have nothing to read yet. */
function needsTenant(): boolean {
  if (session?.role !== "operator" || session.tenantId) return false;
  main().replaceChildren(
    heading("Choose a tenant"),
    h("p", {}, "The operator reads one tenant at a time: ", h("a", { href: "#/tenants" }, "pick one"), "."),
  );
  return true;
}

// ------------------------------------------------------------------ views

interface Topic {
  name: string;
  partitions: number;
  retentionHours: number;
  highWatermarks: number[];
  earliestOffsets: number[];
  storedBytes: number;
}

async function topicsView(): Promise<void> {
  if (needsTenant()) return;
  const { topics } = await call<{ topics: { name: string }[] }>(session!, "GET", "/v1/topics");
  const details = await Promise.all(topics.map((t) => call<Topic>(session!, "GET", `/v1/topics/${enc(t.name)}`)));
  const now = Date.now();
  for (const t of details) {
    const total = t.highWatermarks.reduce((a, b) => a + b, 0);
    const last = samples.get(t.name);
    if (!last) samples.set(t.name, { at: now, total });
    else if (now - last.at >= 1000) samples.set(t.name, { at: now, total, rate: ((total - last.total) * 1000) / (now - last.at) });
  }
  main().replaceChildren(
    heading("Topics", refreshButton(topicsView)),
    table<Topic>(
      "Topics",
      [
        ["Topic", (t) => h("a", { href: `#/topics/${enc(t.name)}` }, t.name)],
        ["Partitions", (t) => t.partitions],
        ["Messages (sum of high watermarks)", (t) => fmt.int(t.highWatermarks.reduce((a, b) => a + b, 0))],
        ["High watermarks", (t) => t.highWatermarks.join(", ")],
        ["Throughput", (t) => (samples.get(t.name)?.rate === undefined ? "measuring…" : `${samples.get(t.name)!.rate!.toFixed(1)} msg/s`)],
        ["Stored", (t) => fmt.bytes(t.storedBytes)],
        ["Retention", (t) => `${t.retentionHours} h`],
        ["Messages", (t) => h("a", { href: `#/browse/${enc(t.name)}` }, `Browse ${t.name}`)],
      ],
      details,
    ),
  );
}

interface GroupSettings {
  name: string;
  maxAttempts: number;
  deadLetterTopic: string;
  ordering: string;
}
interface GroupView {
  partitions: { partition: number; committedOffset: number; highWatermark: number; lag: number; inFlight: number }[];
  deadLettered: number;
}
interface Subscription {
  name: string;
  url: string;
  state: string;
  lag: number;
  inFlight: number;
  deadLettered: number;
  deadLetterTopic: string;
}

async function topicView(name: string): Promise<void> {
  if (needsTenant()) return;
  const base = `/v1/topics/${enc(name)}`;
  const [topic, { groups }, { subscriptions }] = await Promise.all([
    call<Topic>(session!, "GET", base),
    call<{ groups: GroupSettings[] }>(session!, "GET", `${base}/groups`),
    call<{ subscriptions: Subscription[] }>(session!, "GET", `${base}/subscriptions`),
  ]);
  const views = await Promise.all(groups.map((g) => call<GroupView>(session!, "GET", `${base}/groups/${enc(g.name)}`)));
  const rows = groups.map((g, i) => ({ ...g, view: views[i] }));
  const sum = (v: GroupView, k: "lag" | "inFlight") => v.partitions.reduce((n, p) => n + p[k], 0);
  const redrive = async (group: string) => {
    try {
      const { redriven } = await call<{ redriven: number }>(session!, "POST", `${base}/groups/${enc(group)}/redrive`, {});
      await topicView(name);
      announce(`Redrove ${redriven} dead letter${redriven === 1 ? "" : "s"} of ${group} to ${name}.`);
    } catch (error) {
      announce(errorText(error), "error");
    }
  };
  const operator = session!.role === "operator";
  main().replaceChildren(
    heading(
      `Topic ${name}`,
      refreshButton(() => topicView(name)),
      h("a", { href: `#/browse/${enc(name)}`, class: "button" }, "Browse messages"),
    ),
    table(
      "Partitions",
      [
        ["Partition", (p: number) => p],
        ["Earliest offset", (p) => fmt.int(topic.earliestOffsets[p])],
        ["High watermark", (p) => fmt.int(topic.highWatermarks[p])],
      ],
      topic.highWatermarks.map((_, p) => p),
    ),
    table(
      "Consumer groups",
      [
        ["Group", (g) => g.name],
        ["Lag", (g) => fmt.int(sum(g.view, "lag"))],
        ["In flight", (g) => fmt.int(sum(g.view, "inFlight"))],
        ["Committed offsets", (g) => g.view.partitions.map((p) => p.committedOffset).join(", ")],
        [
          "Dead letters",
          (g) => h("a", { href: `#/browse/${enc(g.deadLetterTopic)}` }, `${fmt.int(g.view.deadLettered)} in ${g.deadLetterTopic}`),
        ],
        [
          "Actions",
          (g) =>
            h(
              "button",
              {
                type: "button",
                disabled: operator || g.view.deadLettered === 0,
                title: operator ? "Redrive takes the tenant's API key" : null,
                "aria-label": `Redrive the dead letters of ${g.name}`,
                onclick: () => void redrive(g.name),
              },
              "Redrive",
            ),
        ],
      ],
      rows,
    ),
    table(
      "Webhook subscriptions",
      [
        ["Subscription", (s: Subscription) => h("a", { href: `#/topics/${enc(name)}/subscriptions/${enc(s.name)}` }, s.name)],
        ["Endpoint", (s) => s.url],
        ["State", (s) => s.state],
        ["Lag", (s) => fmt.int(s.lag)],
        ["In flight", (s) => fmt.int(s.inFlight)],
        [
          "Dead letters",
          (s) => h("a", { href: `#/browse/${enc(s.deadLetterTopic)}` }, `${fmt.int(s.deadLettered)} in ${s.deadLetterTopic}`),
        ],
      ],
      subscriptions,
    ),
  );
}

interface Delivery {
  messageId: string;
  partition: number;
  offset: number;
  attempt: number;
  status: "succeeded" | "failed";
  httpStatus?: number;
  error?: string;
  at: number;
  durationMs: number;
}

async function deliveriesView(topic: string, name: string): Promise<void> {
  if (needsTenant()) return;
  const path = `/v1/topics/${enc(topic)}/subscriptions/${enc(name)}`;
  const [sub, { deliveries }] = await Promise.all([
    call<Subscription>(session!, "GET", path),
    call<{ deliveries: Delivery[] }>(session!, "GET", `${path}/deliveries?limit=100`),
  ]);
  const failed = deliveries.filter((d) => d.status === "failed").length;
  main().replaceChildren(
    heading(
      `Subscription ${name} of ${topic}`,
      refreshButton(() => deliveriesView(topic, name)),
      h("a", { href: `#/topics/${enc(topic)}`, class: "button" }, `Back to ${topic}`),
    ),
    h(
      "dl",
      { class: "facts" },
      ...[
        ["Endpoint", sub.url],
        ["State", sub.state],
        ["Lag", fmt.int(sub.lag)],
        ["In flight", fmt.int(sub.inFlight)],
        ["Dead letters", fmt.int(sub.deadLettered)],
        ["Recent deliveries", `${deliveries.length - failed} succeeded, ${failed} failed`],
      ].flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]),
    ),
    table(
      "Recent deliveries (newest first)",
      [
        ["At", (d: Delivery) => fmt.time(d.at)],
        ["Partition", (d) => d.partition],
        ["Offset", (d) => d.offset],
        ["Attempt", (d) => d.attempt],
        ["Outcome", (d) => h("span", { class: d.status }, d.status)],
        ["HTTP", (d) => d.httpStatus ?? "—"],
        ["Error", (d) => d.error ?? ""],
        ["Duration", (d) => `${d.durationMs} ms`],
      ],
      deliveries,
    ),
  );
}

interface Message {
  partition: number;
  offset: number;
  timestamp: number;
  key?: string;
  headers?: Record<string, string>;
  value?: string;
  valueBase64?: string;
}

async function browseView(topicName: string, params: URLSearchParams): Promise<void> {
  if (needsTenant()) return;
  const base = `/v1/topics/${enc(topicName)}`;
  const topic = await call<Topic>(session!, "GET", base);
  const partition = Math.min(Number(params.get("p") ?? 0) || 0, topic.partitions - 1);
  const offset = Math.max(Number(params.get("offset") ?? topic.earliestOffsets[partition]) || 0, topic.earliestOffsets[partition]);
  const limit = 50;
  const page = await call<{ messages: Message[]; nextOffset: number; highWatermark: number }>(
    session!,
    "GET",
    `${base}/partitions/${partition}/messages?offset=${offset}&limit=${limit}`,
  );
  const go = (p: number, o: number) => {
    location.hash = `#/browse/${enc(topicName)}?p=${p}&offset=${Math.max(0, o)}`;
  };
  const partitionSelect = h(
    "select",
    { id: "browse-partition", name: "partition" },
    ...topic.highWatermarks.map((_, p) => h("option", { value: p, selected: p === partition }, `${p}`)),
  );
  const offsetInput = h("input", { id: "browse-offset", name: "offset", type: "number", min: 0, value: offset });
  const byOffset = h(
    "form",
    { class: "inline", "aria-label": "Read by partition and offset" },
    h("label", { for: "browse-partition" }, "Partition"),
    partitionSelect,
    h("label", { for: "browse-offset" }, "Offset"),
    offsetInput,
    h("button", { type: "submit" }, "Read"),
  );
  byOffset.addEventListener("submit", (event) => {
    event.preventDefault();
    go(Number(partitionSelect.value), Number(offsetInput.value));
  });
  const timeInput = h("input", { id: "browse-time", name: "time", type: "datetime-local", step: 1, required: true });
  const byTime = h(
    "form",
    { class: "inline", "aria-label": "Find by time" },
    h("label", { for: "browse-time" }, "From time (UTC)"),
    timeInput,
    h("button", { type: "submit" }, "Find"),
  );
  byTime.addEventListener("submit", async (event) => {
    event.preventDefault();
    const at = Date.parse(`${timeInput.value}Z`);
    if (Number.isNaN(at)) return announce("Enter a date and time.", "error");
    try {
      const { offsets } = await call<{ offsets: { partition: number; offset: number }[] }>(
        session!,
        "GET",
        `${base}/offsets?timestamp=${at}`,
      );
      const p = Number(partitionSelect.value);
      go(p, offsets.find((o) => o.partition === p)?.offset ?? 0);
    } catch (error) {
      announce(errorText(error), "error");
    }
  });
  main().replaceChildren(
    heading(`Messages of ${topicName}`, h("a", { href: `#/topics/${enc(topicName)}`, class: "button" }, `Back to ${topicName}`)),
    byOffset,
    byTime,
    h(
      "p",
      { class: "range" },
      `Partition ${partition}: offsets ${offset} to ${page.nextOffset - 1} of ${topic.earliestOffsets[partition]}…${page.highWatermark - 1}`,
    ),
    table(
      `Partition ${partition} from offset ${offset}`,
      [
        ["Offset", (m: Message) => m.offset],
        ["Time", (m) => fmt.time(m.timestamp)],
        ["Key", (m) => m.key ?? ""],
        [
          "Headers",
          (m) =>
            Object.entries(m.headers ?? {})
              .map(([k, v]) => `${k}: ${v}`)
              .join("; "),
        ],
        ["Value", (m) => (m.value !== undefined ? h("code", {}, m.value) : h("code", { class: "b64" }, `base64 ${m.valueBase64}`))],
      ],
      page.messages,
      "no messages at this offset.",
    ),
    h(
      "div",
      { class: "pager" },
      h(
        "button",
        { type: "button", disabled: offset <= topic.earliestOffsets[partition], onclick: () => go(partition, offset - limit) },
        "Previous page",
      ),
      h(
        "button",
        { type: "button", disabled: page.nextOffset >= page.highWatermark, onclick: () => go(partition, page.nextOffset) },
        "Next page",
      ),
    ),
  );
}

interface UsageRow {
  tenantId: string;
  hour: number;
  messagesIn: number;
  bytesIn: number;
  messagesOut: number;
  bytesOut: number;
  deliveries: number;
  requests: number;
}

async function usageView(): Promise<void> {
  const hours = 48;
  const to = Math.floor(Date.now() / HOUR) * HOUR + HOUR;
  const from = to - hours * HOUR;
  const operator = session!.role === "operator";
  const path = operator
    ? `/v1/admin/usage?from=${from}&to=${to}${session!.tenantId ? `&tenant=${enc(session!.tenantId)}` : ""}`
    : `/v1/usage?from=${from}&to=${to}`;
  const { usage } = await call<{ usage: UsageRow[] }>(session!, "GET", path);
  const fields = ["messagesIn", "messagesOut", "bytesIn", "bytesOut", "deliveries", "requests"] as const;
  const byHour = new Map<number, Record<(typeof fields)[number], number>>();
  for (let hour = from; hour < to; hour += HOUR)
    byHour.set(hour, Object.fromEntries(fields.map((f) => [f, 0])) as Record<(typeof fields)[number], number>);
  for (const row of usage) {
    const bucket = byHour.get(row.hour);
    if (bucket) for (const f of fields) bucket[f] += row[f];
  }
  const series = (f: (typeof fields)[number]): Point[] => [...byHour].map(([hour, v]) => ({ hour, value: v[f] }));
  const titles: Record<(typeof fields)[number], string> = {
    messagesIn: "Messages in",
    messagesOut: "Messages out",
    bytesIn: "Bytes in",
    bytesOut: "Bytes out",
    deliveries: "Webhook deliveries",
    requests: "Requests",
  };
  const scope = operator ? (session!.tenantId ? `tenant ${session!.tenantId}` : "every tenant") : "this tenant";
  main().replaceChildren(
    heading(`Usage by hour, last ${hours} hours (${scope})`, refreshButton(usageView)),
    h("div", { class: "charts" }, ...fields.map((f) => barChart(titles[f], series(f), f.startsWith("bytes") ? fmt.bytes : fmt.int))),
    table(
      "Hours with usage",
      [
        ["Hour (UTC)", (r: [number, Record<string, number>]) => fmt.time(r[0])],
        ...fields.map(
          (f) =>
            [titles[f], (r: [number, Record<string, number>]) => fmt.int(r[1][f])] as [
              string,
              (r: [number, Record<string, number>]) => string,
            ],
        ),
      ],
      [...byHour].filter(([, v]) => fields.some((f) => v[f] > 0)).reverse(),
    ),
  );
}

interface TenantRow {
  tenantId: string;
  name: string;
  createdAt: number;
}

async function tenantsView(): Promise<void> {
  const [{ tenants }, storage] = await Promise.all([
    call<{ tenants: TenantRow[] }>(session!, "GET", "/v1/admin/tenants"),
    call<{ objects: number; bytes: number; tenants: { tenantId: string; objects: number; bytes: number; liveBytes: number }[] }>(
      session!,
      "GET",
      "/v1/admin/storage",
    ),
  ]);
  const stored = new Map(storage.tenants.map((t) => [t.tenantId, t]));
  const open = (t: TenantRow) => {
    saveSession({ ...session!, tenantId: t.tenantId });
    announce(`Reading tenant ${t.name}.`);
    location.hash = "#/topics";
  };
  main().replaceChildren(
    heading("Tenants", refreshButton(tenantsView)),
    h("p", {}, `Storage in all: ${fmt.int(storage.objects)} objects, ${fmt.bytes(storage.bytes)}.`),
    table(
      "Tenants",
      [
        ["Name", (t: TenantRow) => t.name],
        ["Tenant id", (t) => h("code", {}, t.tenantId)],
        ["Created", (t) => fmt.time(t.createdAt)],
        ["Objects", (t) => fmt.int(stored.get(t.tenantId)?.objects ?? 0)],
        ["Stored", (t) => fmt.bytes(stored.get(t.tenantId)?.bytes ?? 0)],
        [
          "Actions",
          (t) =>
            h(
              "button",
              {
                type: "button",
                "aria-label": `Open tenant ${t.name}`,
                "aria-pressed": session!.tenantId === t.tenantId ? "true" : "false",
                onclick: () => open(t),
              },
              "Open",
            ),
        ],
      ],
      tenants,
    ),
  );
}

// ------------------------------------------------------------------ routing

async function route(): Promise<void> {
  clearInterval(refreshTimer);
  renderShell();
  if (!session) return renderSignIn();
  const [path, query = ""] = location.hash.replace(/^#/, "").split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const params = new URLSearchParams(query);
  let render: () => Promise<void>;
  if (parts[0] === "topics" && parts[1] && parts[2] === "subscriptions" && parts[3]) render = () => deliveriesView(parts[1], parts[3]);
  else if (parts[0] === "topics" && parts[1]) render = () => topicView(parts[1]);
  else if (parts[0] === "browse" && parts[1]) render = () => browseView(parts[1], params);
  else if (parts[0] === "usage") render = usageView;
  else if (parts[0] === "tenants" && session.role === "operator") render = tenantsView;
  else render = topicsView;
  const view = location.hash;
  try {
    await render();
    document.getElementById("view-title")?.focus();
    // Topics refresh by themselves: throughput is measured between two looks.
    if (render === topicsView) refreshTimer = setInterval(() => location.hash === view && void topicsView().catch(() => {}), REFRESH_MS);
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      saveSession(null);
      announce("The key or token is no longer accepted: sign in again.", "error");
      return route();
    }
    main().replaceChildren(heading("Could not load this view"), h("p", { class: "error" }, errorText(error)));
  }
}

window.addEventListener("hashchange", () => void route());
// The skip link moves the focus to the content; it must not navigate (the hash names views here).
document.querySelector("a.skip")?.addEventListener("click", (event) => {
  event.preventDefault();
  main().focus();
});
void route();
