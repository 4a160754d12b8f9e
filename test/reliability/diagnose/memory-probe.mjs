/**
 * A diagnostic preload for the soak's server (docs/reliability.md, anomaly 6): every 10 s it appends
 * process.memoryUsage() and V8's heap spaces (MiB) to $MEMPROBE_DIR/mem-<pid>.jsonl, and writes
 * heap snapshots at the seconds listed in $MEMPROBE_SNAP_S (e.g. "150,690") into that folder.
 * A snapshot pauses the server for seconds and leaves its RSS higher afterwards (the writer's
 * native memory): judge memory from runs without snapshots.
 *   MEMPROBE_DIR=/tmp/probe MEMPROBE_SNAP_S=150,690 \
 *   RESERVOIR_SOAK_NODE_ARGS="--import $PWD/test/reliability/diagnose/memory-probe.mjs" \
 *   npm run reliability -- --soak --target postgres --minutes 12
 * Then: node --max-old-space-size=6000 test/reliability/diagnose/heap-summary.mjs <file> BatchCache
 */
import { appendFileSync, mkdirSync } from "node:fs";
import v8 from "node:v8";

const dir = process.env.MEMPROBE_DIR ?? "/tmp";
mkdirSync(dir, { recursive: true });
const started = Date.now();
const log = `${dir}/mem-${process.pid}.jsonl`;
const snapshotAt = (process.env.MEMPROBE_SNAP_S ?? "").split(",").filter(Boolean).map(Number);
const mib = (bytes) => Math.round(bytes / 1048576);
const seconds = () => Math.round((Date.now() - started) / 1000);

setInterval(() => {
  const m = process.memoryUsage();
  const spaces = Object.fromEntries(v8.getHeapSpaceStatistics().map((s) => [s.space_name, mib(s.space_used_size)]));
  const line = { t: seconds(), rss: mib(m.rss), heapTotal: mib(m.heapTotal), heapUsed: mib(m.heapUsed), external: mib(m.external) };
  appendFileSync(log, `${JSON.stringify({ ...line, arrayBuffers: mib(m.arrayBuffers), spaces })}\n`);
}, 10_000).unref();

for (const s of snapshotAt)
  setTimeout(() => {
    const file = v8.writeHeapSnapshot(`${dir}/heap-${process.pid}-${s}s.heapsnapshot`);
    appendFileSync(log, `${JSON.stringify({ t: seconds(), snapshot: file })}\n`);
  }, s * 1000).unref();
