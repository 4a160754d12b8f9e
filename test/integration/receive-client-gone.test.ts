// A long-poll receive whose client went away (a stopped consumer: its request aborted, its
// connection closed) must not keep what arrives for nobody: a message produced while that
// receive still waited on the server is received at once by the next receiver, not after the
// visibility timeout of a lease no one holds.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { serverWithTenant, type TenantServer } from "../support/tenant-server.ts";

describe("a long-poll receive whose client went away", () => {
  let t: TenantServer;

  beforeAll(async () => {
    t = await serverWithTenant({ label: "receive-client-gone" });
    expect((await t.client.put("/v1/topics/t/groups/g", { startAt: "earliest" })).status).toBe(201);
  }, 60_000);
  afterAll(() => t?.stop());

  it("leaves a message that arrives after it closed to the next receiver", async () => {
    const gone = new AbortController();
    const abandoned = fetch(`${t.server.baseUrl}/v1/topics/t/groups/g/receive`, {
      method: "POST",
      headers: { authorization: `Bearer ${t.apiKey}`, "content-type": "application/json" },
      // Waits far longer than the rest of the test, with the default 30 s visibility.
      body: JSON.stringify({ max: 10, waitMs: 20_000 }),
      signal: gone.signal,
    });
    // A request sent after it, on a connection of its own, answered: the server has read the
    // receive by then (its handler runs, or waits, whether or not its client is still there).
    expect((await t.client.get("/v1/topics/t/groups/g")).status).toBe(200);
    gone.abort();
    await expect(abandoned).rejects.toThrow();

    expect((await t.client.post("/v1/topics/t/messages", { messages: [{ value: "for whoever asks next" }] })).status).toBe(200);
    const next = await t.client.post("/v1/topics/t/groups/g/receive", { max: 10, waitMs: 5_000 });
    expect(next.status).toBe(200);
    expect(next.body.messages.map((m: { value: string }) => m.value)).toEqual(["for whoever asks next"]);
    const ack = await t.client.post("/v1/topics/t/groups/g/ack", { receipts: [next.body.messages[0].receipt] });
    expect(ack.body).toEqual({ acked: 1, failed: [] });
  }, 60_000);
});
