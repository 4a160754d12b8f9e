/**
 * CPU per request of Reservoir's S3 store: PUTs then ranged GETs of one object size to s3rver
 * (in its own process, so its CPU is not counted), `window` requests in flight, as the Node
 * entry builds the store.
 *
 *   npx tsx bench/s3-store.ts [--size 20480] [--count 2000] [--window 8] [--rounds 3]
 *
 * Per round, per request: CPU µs of this process (process.cpuUsage: user + system of all its
 * threads, so the HTTP client's and the thread pool's work count too), event-loop µs (time the
 * main thread was busy: what a server cannot spend serving), and requests per second. The
 * first round warms up. Figures: docs/benchmarks.md, "The S3 client".
 */
import { parseArgs } from "node:util";
import { nodeS3Store } from "../functions/runtime/node/s3.ts";
import type { ObjectStore } from "../storage/objects/object-store.ts";
import { measureOps } from "./lib/measure-ops.ts";
import { startS3Process } from "./lib/stack.ts";

const { values: args } = parseArgs({
  options: {
    size: { type: "string", default: "20480" },
    count: { type: "string", default: "2000" },
    window: { type: "string", default: "8" },
    rounds: { type: "string", default: "3" },
  },
});
const size = Number(args.size);
const count = Number(args.count);
const window = Number(args.window);
const rounds = Number(args.rounds);

function openStore(env: Record<string, string>): ObjectStore {
  return nodeS3Store({
    endpoint: env.S3_ENDPOINT,
    region: env.S3_REGION,
    bucket: env.S3_BUCKET,
    accessKeyId: env.S3_ACCESS_KEY_ID,
    secretAccessKey: env.S3_SECRET_ACCESS_KEY,
    forcePathStyle: true,
  });
}

const measure = (op: (i: number) => Promise<unknown>) => measureOps(op, count, window);

const s3 = await startS3Process();
try {
  const store = openStore(s3.env);
  const body = new Uint8Array(size).map((_, i) => (i * 7919) & 0xff);
  console.log(`size ${size} B, ${count} requests per round, ${window} in flight`);
  for (let round = 0; round < rounds; round++) {
    const prefix = `bench/${round}/`;
    const put = await measure((i) => store.put(`${prefix}${String(i).padStart(8, "0")}`, body));
    const get = await measure((i) => store.get(`${prefix}${String(i).padStart(8, "0")}`, { offset: size >> 2, length: size >> 1 }));
    const show = (r: typeof put) => `${r.cpuUs.toFixed(0)} µs CPU, ${r.loopUs.toFixed(0)} µs event loop, ${r.perSecond.toFixed(0)}/s`;
    console.log(`round ${round}${round === 0 ? " (warm-up)" : ""}: PUT ${show(put)}; ranged GET ${show(get)}`);
  }
} finally {
  await s3.stop();
}
