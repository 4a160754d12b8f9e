// Regression (the campaign's long mode, seed 11: docs/reliability.md, anomaly 7): when the
// dispatcher's claim or settle failed on a cut Postgres connection, the deliveries it carried
// (already answered 2xx) were dropped with it, and their leases held the subscription's
// concurrency and, in key order, their keys until they ran out: timeoutMs + the 30 s settle
// margin. Under a Postgres fault every few seconds, webhook delivery all but stopped. Now the
// dispatcher settles them again once the database answers.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Api } from "../support/http.ts";
import { startWebhookSink, type WebhookSink } from "../support/webhook-sink.ts";
import { startServerBehindPgProxy, type ServerBehindPgProxy } from "./faults/server-behind-pg-proxy.ts";

describe("a webhook settle cut by a dropped Postgres connection is settled again", () => {
  let fx: ServerBehindPgProxy | undefined;
  let sink: WebhookSink | undefined;
  let client: Api;

  beforeAll(async () => {
    sink = await startWebhookSink();
    fx = await startServerBehindPgProxy({
      label: "webhook-settle-retry",
      env: {
        RESERVOIR_WEBHOOK_ALLOW_PRIVATE: "127.0.0.1",
        // Quiet: no periodic statement but the dispatcher's own is in flight when the link is cut
        // (deliveries are woken by the produce's NOTIFY).
        RESERVOIR_DISPATCH_INTERVAL_MS: "3600000",
        RESERVOIR_MAINTENANCE_INTERVAL_SECONDS: "86400",
      },
      topic: { partitions: 1 },
    });
    client = fx.client;
  }, 180_000);

  afterAll(async () => {
    await fx?.close();
    await sink?.close().catch(() => {});
  }, 60_000);

  async function produce(value: string): Promise<void> {
    for (let attempt = 0; attempt < 20; attempt++) {
      const res = await client.post("/v1/topics/t/messages", { messages: [{ key: "k", value }] }, { allow5xx: true, timeoutMs: 30_000 });
      expect([200, 503], res.text).toContain(res.status);
      if (res.status === 200) return;
    }
    throw new Error(`no produce of ${value} was acknowledged in 20 attempts`);
  }

  it("delivers the key's next message without waiting for the lease to run out", async () => {
    // The first delivery's answer goes back while the link to Postgres is stalled: the
    // dispatcher's next transaction, the one that acks it (a claim carrying the settle: with
    // maxConcurrency 1 nothing else runs meanwhile), is held, and then cut.
    sink!.on("/hook", (request) => {
      if (request.index === 0) fx!.proxy.stall(60_000);
      return { status: 200 };
    });
    const created = await client.put("/v1/topics/t/subscriptions/s", {
      url: sink!.url("/hook"),
      ordering: "key",
      startAt: "earliest",
      maxConcurrency: 1,
      // The lease is timeoutMs + 30 s: a dropped ack would hold key k for 33 s.
      timeoutMs: 3_000,
    });
    expect([200, 201], created.text).toContain(created.status);
    await produce("m1");
    await sink!.waitForCount("/hook", 1, 30_000);
    await fx!.proxy.whenHoldingServerBytes();
    fx!.proxy.dropAll();
    fx!.proxy.stall(0);
    await produce("m2");
    const started = performance.now();
    // Well under the 33 s a dropped ack held the key for.
    const delivered = await sink!.waitFor(
      "/hook",
      (rs) => rs.some((r) => r.json?.value === "m2" && r.status === 200),
      20_000,
      "m2 delivered",
    );
    expect(performance.now() - started).toBeLessThan(20_000);
    // m1 was acknowledged once, by the settle tried again: never delivered a second time.
    expect(delivered.filter((r) => r.json?.value === "m1")).toHaveLength(1);
    expect(fx!.server.running(), fx!.server.logs().slice(-3000)).toBe(true);
  }, 120_000);
});
