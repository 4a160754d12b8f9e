/**
 * Storage lifecycle: `npx tsx bench/lifecycle.ts` (BENCH_MESSAGES=2000 by default).
 *
 * A topic written by one-message requests (a segment object per message, the quiet-tenant
 * case), on the embedded Node server (PGlite + folder store):
 * - GETs per million messages on a full replay from offset 0, on a fresh process (empty
 *   caches), before and after compaction, and their ratio;
 * - collection throughput: objects per second deleted by the passes that collect the
 *   compacted-away segments once the grace period (2 s here) has passed;
 * - the replay after compaction is checked to be the same messages as before.
 * Figures are from one run on this machine; compare the ratio, not the absolute numbers.
 */
import { api, assertStatus, type Api } from "../test/support/http.ts";
import { startNodeServer } from "../test/support/node-server.ts";

const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 2000);

async function replay(client: Api, admin: Api): Promise<{ gets: number; messages: unknown[] }> {
  const getsBefore = (await admin.get("/v1/admin/metrics")).body.store.gets as number;
  const messages: unknown[] = [];
  let offset = 0;
  for (;;) {
    const res = await client.get("/v1/topics/replay/partitions/0/messages", { query: { offset, limit: 1000 } });
    assertStatus(res, 200);
    if (res.body.messages.length === 0) break;
    messages.push(...res.body.messages);
    offset = res.body.nextOffset;
  }
  const getsAfter = (await admin.get("/v1/admin/metrics")).body.store.gets as number;
  return { gets: getsAfter - getsBefore, messages };
}

async function main() {
  const server = await startNodeServer({
    label: "bench-lifecycle",
    env: { RESERVOIR_GC_GRACE_SECONDS: "2", RESERVOIR_MAINTENANCE_INTERVAL_SECONDS: "86400" },
  });
  try {
    const admin = api(server.baseUrl, server.adminToken);
    const tenant = await admin.post("/v1/admin/tenants", { name: "bench" });
    assertStatus(tenant, 201);
    const client = api(server.baseUrl, tenant.body.apiKey);
    assertStatus(await client.put("/v1/topics/replay", {}), 201);
    for (let i = 0; i < MESSAGES; i++) {
      assertStatus(await client.post("/v1/topics/replay/messages", { messages: [{ value: `message ${i} `.padEnd(100, "x") }] }), 200);
    }
    await server.restart();
    const before = await replay(client, admin);

    let segmentsIn = 0;
    let segmentsOut = 0;
    const compactStarted = performance.now();
    for (;;) {
      const res = await admin.post("/v1/admin/maintenance");
      assertStatus(res, 200);
      if (res.body.compaction.segmentsIn === 0) break;
      segmentsIn += res.body.compaction.segmentsIn;
      segmentsOut += res.body.compaction.segmentsOut;
    }
    const compactMs = performance.now() - compactStarted;

    await server.restart();
    const after = await replay(client, admin);
    if (JSON.stringify(after.messages) !== JSON.stringify(before.messages)) throw new Error("the replay after compaction differs");

    // Wait out the grace period (it is time itself that must pass), then time the collecting passes.
    await new Promise((resolve) => setTimeout(resolve, 2500));
    let collected = 0;
    let collectMs = 0;
    while (collected < segmentsIn) {
      const started = performance.now();
      const res = await admin.post("/v1/admin/maintenance");
      collectMs += performance.now() - started;
      assertStatus(res, 200);
      collected += res.body.collected.objects;
      if (res.body.collected.objects === 0) await new Promise((resolve) => setTimeout(resolve, 250));
    }

    const perMillion = (gets: number) => Math.round((gets / MESSAGES) * 1e6);
    const result = {
      messages: MESSAGES,
      replayGetsPerMillion: { beforeCompaction: perMillion(before.gets), afterCompaction: perMillion(after.gets) },
      replayGetsRatio: Number((before.gets / Math.max(1, after.gets)).toFixed(1)),
      compaction: { segmentsIn, segmentsOut, seconds: Number((compactMs / 1000).toFixed(2)) },
      collection: {
        objects: collected,
        seconds: Number((collectMs / 1000).toFixed(2)),
        objectsPerSecond: Math.round(collected / (collectMs / 1000)),
      },
    };
    console.log(JSON.stringify(result, null, 2));
  } finally {
    await server.stop();
  }
}

await main();
