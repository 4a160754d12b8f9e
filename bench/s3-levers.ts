/**
 * The AWS SDK's own levers, one at a time: CPU per S3 request of a plain S3Client (the store's
 * required settings only), then with each lever the store uses added in turn, then the store
 * as shipped. Variants take turns in one process against one s3rver (its own process), so a
 * loaded machine weighs on all of them alike; the first round warms up.
 *
 *   npx tsx bench/s3-levers.ts [--size 20480] [--count 1000] [--window 8] [--rounds 5]
 *
 * Per variant: median and best over the measured rounds of CPU µs per PUT and per ranged GET
 * (process.cpuUsage), event-loop µs per PUT, and PUTs per second. Figures: docs/benchmarks.md.
 */
import { parseArgs } from "node:util";
import { GetObjectCommand, PutObjectCommand, S3Client, type S3ClientConfig } from "@aws-sdk/client-s3";
import { nodeS3RequestHandler, nodeS3Store } from "../functions/runtime/node/s3.ts";
import { measureOps } from "./lib/measure-ops.ts";
import { startS3Process } from "./lib/stack.ts";

const { values: args } = parseArgs({
  options: {
    size: { type: "string", default: "20480" },
    count: { type: "string", default: "1000" },
    window: { type: "string", default: "8" },
    rounds: { type: "string", default: "5" },
  },
});
const size = Number(args.size);
const count = Number(args.count);
const window = Number(args.window);
const rounds = Number(args.rounds);

interface Store {
  put(key: string, body: Uint8Array): Promise<unknown>;
  get(key: string, range: { offset: number; length: number }): Promise<unknown>;
}

const measure = (op: (i: number) => Promise<unknown>) => measureOps(op, count, window);

const s3 = await startS3Process();
try {
  const env = s3.env;
  const base = {
    endpoint: env.S3_ENDPOINT,
    region: env.S3_REGION,
    forcePathStyle: true,
    credentials: { accessKeyId: env.S3_ACCESS_KEY_ID, secretAccessKey: env.S3_SECRET_ACCESS_KEY },
  };
  const bucket = env.S3_BUCKET;

  /** A plain S3Client as a store, with `levers` applied. */
  const client = (levers: { config?: S3ClientConfig; strip?: boolean }): Store => {
    const c = new S3Client({
      ...base,
      requestHandler: nodeS3RequestHandler(),
      requestChecksumCalculation: "WHEN_REQUIRED",
      responseChecksumValidation: "WHEN_REQUIRED",
      ...levers.config,
    });
    if (levers.strip)
      for (const name of ["getUserAgentMiddleware", "recursionDetectionMiddleware", "loggerMiddleware"]) c.middlewareStack.remove(name);
    return {
      put: (key, body) =>
        c.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentLength: body.byteLength, IfNoneMatch: "*" })),
      get: async (key, { offset, length }) => {
        const res = await c.send(new GetObjectCommand({ Bucket: bucket, Key: key, Range: `bytes=${offset}-${offset + length - 1}` }));
        return res.Body!.transformToByteArray();
      },
    };
  };
  const variants: [string, Store][] = [
    ["SDK, required settings only", client({})],
    ["+ cacheMiddleware", client({ config: { cacheMiddleware: true } })],
    ["+ no UA/recursion/logger mw", client({ config: { cacheMiddleware: true }, strip: true })],
    ["+ no Expect: 100-continue", client({ config: { cacheMiddleware: true, expectContinueHeader: false }, strip: true })],
    [
      "the store (+ hash off-thread)",
      nodeS3Store({ endpoint: base.endpoint, region: base.region, forcePathStyle: true, bucket, ...base.credentials }),
    ],
  ];

  const body = new Uint8Array(size).map((_, i) => (i * 7919) & 0xff);
  const results = new Map<string, { put: number[]; loop: number[]; get: number[]; rate: number[] }>();
  for (let round = 0; round < rounds; round++) {
    for (const [name, store] of variants) {
      const key = (i: number) => `levers/${round}/${name.replace(/\W+/g, "-")}/${i}`;
      const put = await measure((i) => store.put(key(i), body));
      const get = await measure((i) => store.get(key(i), { offset: size >> 2, length: Math.max(1, size >> 1) }));
      if (round === 0) continue;
      const r = results.get(name) ?? { put: [], loop: [], get: [], rate: [] };
      r.put.push(put.cpuUs);
      r.loop.push(put.loopUs);
      r.get.push(get.cpuUs);
      r.rate.push(put.perSecond);
      results.set(name, r);
    }
  }
  const median = (v: number[]) => [...v].sort((a, b) => a - b)[v.length >> 1];
  const pair = (v: number[]) => `${median(v).toFixed(0)} / ${Math.min(...v).toFixed(0)}`;
  console.log(`${size} B objects, ${count} requests per round, ${window} in flight; median / best of ${rounds - 1} rounds, µs per request`);
  console.log("| variant | PUT CPU | PUT event loop | ranged GET CPU | PUTs/s |\n|---|---:|---:|---:|---:|");
  for (const [name, r] of results)
    console.log(`| ${name} | ${pair(r.put)} | ${pair(r.loop)} | ${pair(r.get)} | ${median(r.rate).toFixed(0)} |`);
} finally {
  await s3.stop();
}
