// GET /metrics (API.md "Operations") on every target: the operator token only, the Prometheus
// text exposition read by a real parser (parse-prometheus-text-format), every family API.md
// lists present with its type, and the counters moving by what the test did (produce, read,
// receive), the lag gauge reading the group's lag from the database, storage by tenant.
// A Worker counts per isolate: wrangler dev runs one, so its counters move like Node's.

import { randomBytes } from "node:crypto";
import parsePrometheusTextFormat from "parse-prometheus-text-format";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { api, assertProblem, assertStatus, describeResponse, type Api } from "../support/http.ts";
import { startWebhookSink, type WebhookSink } from "../support/webhook-sink.ts";
import { type ContractTarget, showServerOutputOnFailure } from "./contract.ts";

interface Sample {
  value?: string;
  labels?: Record<string, string>;
  buckets?: Record<string, string>;
  count?: string;
  sum?: string;
}
interface Family {
  name: string;
  help: string;
  type: string;
  metrics: Sample[];
}

/** Every family API.md names, by its type. */
const FAMILIES: Record<string, string> = {
  reservoir_http_requests_total: "COUNTER",
  reservoir_produce_duration_seconds: "HISTOGRAM",
  reservoir_receive_duration_seconds: "HISTOGRAM",
  reservoir_receives_empty_total: "COUNTER",
  reservoir_flushes_total: "COUNTER",
  reservoir_flush_puts_total: "COUNTER",
  reservoir_flush_commits_total: "COUNTER",
  reservoir_flush_bytes: "HISTOGRAM",
  reservoir_flush_messages: "HISTOGRAM",
  reservoir_flush_requests: "HISTOGRAM",
  reservoir_flush_put_duration_seconds: "HISTOGRAM",
  reservoir_flush_commit_duration_seconds: "HISTOGRAM",
  reservoir_object_store_puts_total: "COUNTER",
  reservoir_object_store_gets_total: "COUNTER",
  reservoir_messages_in_total: "COUNTER",
  reservoir_messages_out_total: "COUNTER",
  reservoir_webhook_deliveries_total: "COUNTER",
  reservoir_webhook_delivery_duration_seconds: "HISTOGRAM",
  reservoir_consumer_lag: "GAUGE",
  reservoir_storage_objects: "GAUGE",
  reservoir_storage_bytes: "GAUGE",
  reservoir_read_cache_bytes: "GAUGE",
  reservoir_read_cache_max_bytes: "GAUGE",
  reservoir_read_cache_entries: "GAUGE",
};

class Scrape {
  readonly families = new Map<string, Family>();
  constructor(readonly text: string) {
    for (const family of parsePrometheusTextFormat(text) as Family[]) this.families.set(family.name, family);
  }
  family(name: string): Family {
    const found = this.families.get(name);
    if (!found) throw new Error(`no family ${name} in the exposition:\n${this.text.slice(0, 3000)}`);
    return found;
  }
  /** A counter's or gauge's value for exactly these labels (0 when the series is absent). */
  value(name: string, labels: Record<string, string> = {}): number {
    const sample = this.family(name).metrics.find((m) => sameLabels(m.labels ?? {}, labels));
    return sample ? Number(sample.value) : 0;
  }
  /** An unlabelled histogram's count. */
  count(name: string): number {
    return Number(this.family(name).metrics[0]?.count ?? 0);
  }
}

function sameLabels(a: Record<string, string>, b: Record<string, string>): boolean {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => a[k] === b[k]);
}

export function metricsSuite(name: string, startTarget: () => Promise<ContractTarget>): void {
  describe(`GET /metrics (API.md "Operations") on ${name}`, () => {
    let target: ContractTarget | undefined;
    let admin: Api;
    let sink: WebhookSink;
    const runId = randomBytes(3).toString("hex");

    beforeAll(async () => {
      target = await startTarget();
      admin = api(target.baseUrl, target.adminToken);
      sink = await startWebhookSink();
    }, 180_000);
    afterAll(async () => {
      await sink?.close();
      await target?.stop();
    }, 60_000);
    showServerOutputOnFailure(name, () => target);

    async function scrape(): Promise<Scrape> {
      const res = await admin.get("/metrics", { headers: { accept: "text/plain" } });
      assertStatus(res, 200);
      expect(res.headers.get("content-type"), describeResponse(res)).toMatch(/^text\/plain; version=0\.0\.4/);
      return new Scrape(res.text);
    }

    it("answers 401 problem+json without the operator token, and to a tenant key", async () => {
      assertProblem(await admin.get("/metrics", { token: null }), 401, "unauthorized");
      assertProblem(await admin.get("/metrics", { token: "rsv_op_wrong" }), 401, "unauthorized");
      const tenant = await admin.post("/v1/admin/tenants", { name: `metrics-401-${runId}` });
      assertStatus(tenant, 201);
      assertProblem(await admin.get("/metrics", { token: tenant.body.apiKey }), 401, "unauthorized");
    });

    it("exposes every family API.md lists, with its type and help", async () => {
      const s = await scrape();
      for (const [family, type] of Object.entries(FAMILIES)) {
        expect(s.family(family).type, family).toBe(type);
        expect(s.family(family).help.length, family).toBeGreaterThan(0);
      }
    });

    it("moves the counters by a produce, a read and a receive, and reads lag and storage from the database", async () => {
      const created = await admin.post("/v1/admin/tenants", { name: `metrics-${runId}` });
      assertStatus(created, 201);
      const tenantId: string = created.body.tenantId;
      const client = api(target!.baseUrl, created.body.apiKey);
      assertStatus(await client.put("/v1/topics/orders", { partitions: 1 }), 201);
      assertStatus(await client.put("/v1/topics/orders/groups/billing", { startAt: "earliest" }), 201);

      const before = await scrape();
      const produced = await client.post("/v1/topics/orders/messages", { messages: [{ value: "a" }, { value: "b" }, { value: "c" }] });
      assertStatus(produced, 200);
      const read = await client.get("/v1/topics/orders/partitions/0/messages", { query: { offset: 0 } });
      assertStatus(read, 200);
      expect(read.body.messages).toHaveLength(3);
      const received = await client.post("/v1/topics/orders/groups/billing/receive", { max: 1 });
      assertStatus(received, 200);
      expect(received.body.messages).toHaveLength(1);
      const after = await scrape();

      const delta = (family: string, labels?: Record<string, string>) => after.value(family, labels) - before.value(family, labels);
      const produceRoute = { method: "POST", route: "/v1/topics/:topic/messages", status: "200" };
      expect(delta("reservoir_http_requests_total", produceRoute)).toBe(1);
      const readRoute = { method: "GET", route: "/v1/topics/:topic/partitions/:p/messages", status: "200" };
      expect(delta("reservoir_http_requests_total", readRoute)).toBe(1);
      // The route pattern, never the raw path: no series names the topic.
      expect(after.text).not.toContain('route="/v1/topics/orders');
      expect(after.count("reservoir_produce_duration_seconds") - before.count("reservoir_produce_duration_seconds")).toBe(1);
      expect(after.count("reservoir_receive_duration_seconds") - before.count("reservoir_receive_duration_seconds")).toBe(1);
      // Other tenants' work may share the instance: at least ours.
      expect(delta("reservoir_messages_in_total")).toBeGreaterThanOrEqual(3);
      expect(delta("reservoir_flush_commits_total")).toBeGreaterThanOrEqual(1);
      expect(delta("reservoir_flush_puts_total")).toBeGreaterThanOrEqual(1);
      expect(delta("reservoir_object_store_puts_total")).toBeGreaterThanOrEqual(1);
      expect(delta("reservoir_flushes_total", { outcome: "committed" })).toBeGreaterThanOrEqual(1);
      expect(after.count("reservoir_flush_bytes") - before.count("reservoir_flush_bytes")).toBeGreaterThanOrEqual(1);
      expect(delta("reservoir_messages_out_total", { via: "read" })).toBeGreaterThanOrEqual(3);
      expect(delta("reservoir_messages_out_total", { via: "receive" })).toBeGreaterThanOrEqual(1);

      // Lag: nothing committed by the group yet (one message in flight), three produced.
      expect(after.value("reservoir_consumer_lag", { tenant: tenantId, topic: "orders", group: "billing" })).toBe(3);
      expect(after.value("reservoir_storage_objects", { tenant: tenantId })).toBeGreaterThanOrEqual(1);
      expect(after.value("reservoir_storage_bytes", { tenant: tenantId })).toBeGreaterThan(0);

      // An ack commits the group's position: the next scrape reads the lower lag.
      assertStatus(await client.post("/v1/topics/orders/groups/billing/ack", { receipts: [received.body.messages[0].receipt] }), 200);
      const acked = await scrape();
      expect(acked.value("reservoir_consumer_lag", { tenant: tenantId, topic: "orders", group: "billing" })).toBe(2);
    });

    it("counts webhook deliveries by outcome, and successful ones as messages out", async () => {
      const created = await admin.post("/v1/admin/tenants", { name: `metrics-hooks-${runId}` });
      assertStatus(created, 201);
      const client = api(target!.baseUrl, created.body.apiKey);
      const path = `/metrics-hook-${runId}`;
      sink.on(path, (r) => ({ status: r.json?.value === "bad" ? 500 : 200 }));
      assertStatus(await client.put("/v1/topics/events", { partitions: 1 }), 201);
      // One attempt each: the failure is dead-lettered, not retried, so exactly two attempts are made.
      assertStatus(await client.put("/v1/topics/events/subscriptions/hook", { url: sink.url(path), maxAttempts: 1 }), 201);
      const before = await scrape();
      assertStatus(await client.post("/v1/topics/events/messages", { messages: [{ value: "good" }, { value: "bad" }] }), 200);
      await sink.waitForCount(path, 2, 30_000);
      // The attempt is counted when the dispatcher sees the answer, just after the sink sent it.
      const deadline = Date.now() + 10_000;
      let after = await scrape();
      const moved = (s: Scrape, outcome: string) =>
        s.value("reservoir_webhook_deliveries_total", { outcome }) - before.value("reservoir_webhook_deliveries_total", { outcome });
      while ((moved(after, "succeeded") < 1 || moved(after, "failed") < 1) && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        after = await scrape();
      }
      // Other tests' subscriptions may deliver on the same instance meanwhile: at least ours.
      expect(moved(after, "succeeded")).toBeGreaterThanOrEqual(1);
      expect(moved(after, "failed")).toBeGreaterThanOrEqual(1);
      expect(
        after.value("reservoir_messages_out_total", { via: "webhook" }) - before.value("reservoir_messages_out_total", { via: "webhook" }),
      ).toBeGreaterThanOrEqual(1);
      expect(
        after.count("reservoir_webhook_delivery_duration_seconds") - before.count("reservoir_webhook_delivery_duration_seconds"),
      ).toBeGreaterThanOrEqual(2);
    });
  });
}
