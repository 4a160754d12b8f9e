/**
 * The raw storage baseline: the limit of Reservoir's storage path. The same message bytes,
 * length-prefixed and packed into objects of `objectBytes`, PUT to the same s3rver (its own
 * process, as for reservoir-s3) through Reservoir's own S3 store as the Node server builds it, and
 * `window` PUTs in flight. No metadata commit, no HTTP front end, no encoding: only the PUTs.
 * A message's latency is its object's PUT time from when the message was ready (max rate: from
 * when the object was packed). Consume GETs the objects back in order and splits them.
 *
 * Partitions do not apply: Reservoir writes one segment per flush for all partitions of a
 * tenant, so the baseline packs every message into the same stream of objects.
 */
import { nativeCrc32c } from "../../../functions/runtime/node/native-crc32c.ts";
import { nodeS3Store } from "../../../functions/runtime/node/s3.ts";
import type { Crc32c } from "../../../storage/segment/crc32c.ts";
import type { S3ObjectStore } from "../../../storage/objects/s3-store.ts";
import { startS3Process } from "../../lib/stack.ts";
import { Unavailable, type CostCounters, type Payloads, type PublishOutcome, type SystemUnderTest, type Workload } from "../system.ts";
import { publishInBatches } from "../batched-publish.ts";

export interface S3PutBaselineOptions {
  /**
   * Bytes per object. Default 4 MiB: a Reservoir segment at max rate (its flushes fill up to
   * RESERVOIR_MAX_BATCH_BYTES, 4 MiB, while earlier ones are in flight). At a fixed rate
   * objects are cut by the 5 ms linger, as Reservoir's flushes are.
   */
  objectBytes?: number;
  /** PUTs (and GETs) in flight. */
  window?: number;
}

const LINGER_MS = 5; // fixed-rate mode: an object waits at most this long to fill (Reservoir's default linger)

export function s3PutBaseline(options: S3PutBaselineOptions = {}): SystemUnderTest {
  const objectBytes = options.objectBytes ?? 4 << 20;
  const window = options.window ?? 8;
  let s3: Awaited<ReturnType<typeof startS3Process>> | undefined;
  let client: S3ObjectStore | undefined;
  let crc32c: Crc32c | undefined;
  let prefix = "";
  let perObject = 1;
  let objects: { key: string; messages: number }[] = []; // in publish order, appended once stored
  let stored: (() => void)[] = []; // consumers waiting for the next object
  let puts = 0;
  let gets = 0;
  let setups = 0;

  return {
    name: "s3-put-baseline",
    settings: {
      durability: "as Reservoir's segment: the PUT answered 200 (s3rver writes a file, no fsync)",
      objectBytes,
      putsInFlight: window,
      lingerMs: LINGER_MS,
      framing: "4-byte length prefix per message",
      client:
        "Reservoir's S3 store (@aws-sdk/client-s3, If-None-Match: *, the body's CRC32C declared and the payload unsigned) on a keep-alive NodeHttpHandler; the CRC32C computed per object here, natively (the server combines a segment's from its batches')",
      partitions: "n/a: one object stream, as Reservoir writes one segment per flush for all partitions",
    },

    async setup(workload: Workload) {
      // One s3rver for the whole run, as reservoir-s3 has: a process started per workload
      // would charge its start-up (and its JIT warming up) to every measured run.
      s3 ??= await startS3Process().catch((err: Error) => {
        throw new Unavailable(`s3rver: ${err.message}`);
      });
      const env = s3.env;
      crc32c ??= await nativeCrc32c();
      client ??= nodeS3Store({
        endpoint: env.S3_ENDPOINT,
        region: env.S3_REGION,
        bucket: env.S3_BUCKET,
        forcePathStyle: true,
        accessKeyId: env.S3_ACCESS_KEY_ID,
        secretAccessKey: env.S3_SECRET_ACCESS_KEY,
      });
      prefix = `baseline/${workload.name}-${++setups}/`; // If-None-Match: * needs fresh keys per setup
      perObject = Math.max(1, Math.floor(objectBytes / (4 + workload.messageBytes)));
      objects = [];
      stored = [];
      puts = gets = 0;
    },

    async publish(count, payload, { ratePerSec, onAck } = {}): Promise<PublishOutcome> {
      // This setup's keys and lists: a failed run's lanes never write into the next one's.
      const [c, keyPrefix, written, waiting] = [client!, prefix, objects, stored];
      let seq = written.length;
      return publishInBatches({
        count,
        batch: perObject,
        window,
        lingerMs: LINGER_MS,
        ratePerSec,
        onAck,
        send: async (first, n) => {
          const key = `${keyPrefix}${String(seq++).padStart(10, "0")}`;
          const body = pack(payload, first, n);
          await c.put(key, body, crc32c?.(body));
          puts++;
          written.push({ key, messages: n });
          for (const wake of waiting.splice(0)) wake();
        },
      });
    },

    async consume(count, onMessage) {
      const [c, written, waiting] = [client!, objects, stored];
      let received = 0;
      let nextObject = 0;
      const lane = async () => {
        while (received < count) {
          if (nextObject >= written.length) {
            await new Promise<void>((resolve) => waiting.push(resolve)); // still being published
            continue;
          }
          const { key, messages } = written[nextObject++];
          received += messages; // claimed before the GET, so lanes stop at `count`
          const body = await c.get(key);
          gets++;
          const got = unpack(body, onMessage);
          if (got !== messages) throw new Error(`${key}: ${got} messages, expected ${messages}`);
        }
      };
      await Promise.all(Array.from({ length: window }, lane));
    },

    async cost(): Promise<CostCounters> {
      return { puts, gets, flushes: puts };
    },

    async teardown() {
      // The objects stay until close(): s3rver's directory is a fresh temp folder per process.
    },

    async close() {
      client = undefined;
      await s3?.stop();
      s3 = undefined;
    },
  };
}

/** Messages first..first+n-1, each as a 4-byte big-endian length and its bytes. */
function pack(payload: Payloads, first: number, n: number): Uint8Array {
  const parts = Array.from({ length: n }, (_, j) => payload(first + j));
  const body = new Uint8Array(parts.reduce((sum, p) => sum + 4 + p.byteLength, 0));
  const view = new DataView(body.buffer);
  let at = 0;
  for (const p of parts) {
    view.setUint32(at, p.byteLength);
    body.set(p, at + 4);
    at += 4 + p.byteLength;
  }
  return body;
}

function unpack(body: Uint8Array, onMessage?: (payload: Uint8Array) => void): number {
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  let count = 0;
  for (let at = 0; at < body.byteLength; count++) {
    const length = view.getUint32(at);
    onMessage?.(body.subarray(at + 4, at + 4 + length));
    at += 4 + length;
  }
  return count;
}
