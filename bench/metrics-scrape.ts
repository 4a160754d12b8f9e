/**
 * What a GET /metrics scrape costs as consumer groups grow: an embedded Node server, T topics
 * with G groups each (and a message per topic, so every group has lag), then S scrapes one
 * after another; prints the scrape latency percentiles, the body size and the series count.
 * The lag and storage gauges are read from Postgres at each scrape (bounded to 1,000 rows each).
 *
 *   npx tsx bench/metrics-scrape.ts [--topics 50] [--groups 4] [--scrapes 50]
 */
import { parseArgs } from "node:util";
import { api, assertStatus } from "../test/support/http.ts";
import { startNodeServer } from "../test/support/node-server.ts";

const { values } = parseArgs({
  options: {
    topics: { type: "string", default: "50" },
    groups: { type: "string", default: "4" },
    scrapes: { type: "string", default: "50" },
  },
});
const topics = Number(values.topics);
const groups = Number(values.groups);
const scrapes = Number(values.scrapes);

const server = await startNodeServer({ label: "metrics-scrape" });
try {
  const admin = api(server.baseUrl, server.adminToken);
  const tenant = await admin.post("/v1/admin/tenants", { name: "scrape" });
  assertStatus(tenant, 201);
  const client = api(server.baseUrl, tenant.body.apiKey);
  for (let t = 0; t < topics; t++) {
    assertStatus(await client.put(`/v1/topics/t${t}`, { partitions: 2 }), 201);
    for (let g = 0; g < groups; g++) assertStatus(await client.put(`/v1/topics/t${t}/groups/g${g}`, { startAt: "earliest" }), 201);
    assertStatus(await client.post(`/v1/topics/t${t}/messages`, { messages: [{ value: "x" }] }), 200);
  }
  const ms: number[] = [];
  let body = "";
  for (let i = 0; i < scrapes; i++) {
    const started = performance.now();
    const res = await admin.get("/metrics");
    ms.push(performance.now() - started);
    assertStatus(res, 200);
    body = res.text;
  }
  ms.sort((a, b) => a - b);
  const pct = (p: number) => Number(ms[Math.min(ms.length - 1, Math.floor((p / 100) * ms.length))].toFixed(1));
  const series = body.split("\n").filter((l) => l && !l.startsWith("#")).length;
  console.log(
    JSON.stringify({
      topics,
      groupsPerTopic: groups,
      scrapes,
      p50Ms: pct(50),
      p90Ms: pct(90),
      maxMs: pct(100),
      bodyBytes: body.length,
      series,
    }),
  );
} finally {
  await server.stop();
}
