/**
 * NATS JetStream as a peer (issue 5). One file-backed stream per workload; a partition is a
 * subject `<stream>.<p>` of that stream, messages go round-robin over the subjects. Publishing
 * is async: every message awaits the stream's own PubAck, with a window of outstanding acks.
 * The default sends them as the Go client's PublishAsync does (4× js.publish's rate here: that
 * API spends its time on a promise, a timer and error objects per message, not on the server).
 * Consuming is one durable pull consumer with acks, from the start of the stream.
 */
import {
  AckPolicy,
  connect,
  createInbox,
  DeliverPolicy,
  DiscardPolicy,
  RetentionPolicy,
  StorageType,
  type JetStreamClient,
  type JetStreamManager,
  type NatsConnection,
} from "nats";
import { Unavailable, type PublishOutcome, type SystemUnderTest, type Workload } from "../system.ts";

export interface NatsJetStreamOptions {
  url?: string;
  /** Publishes awaiting their PubAck at once (default 2,000). */
  window?: number;
  /** "pipelined" (default): raw publishes with reply subjects, acks on one subscription; "js.publish": the client's promise API. */
  api?: "pipelined" | "js.publish";
  /** Messages a pull request asks for at a time (default 1,000). */
  pullBatch?: number;
}

export function natsJetStream(options: NatsJetStreamOptions = {}): SystemUnderTest {
  const url = options.url ?? "nats://127.0.0.1:4222";
  const window = options.window ?? 2_000;
  const api = options.api ?? "pipelined";
  const pullBatch = options.pullBatch ?? 1_000;
  const ackEvery = Math.max(1, Math.floor(pullBatch / 4));
  let nc: NatsConnection | undefined;
  let js: JetStreamClient | undefined;
  let jsm: JetStreamManager | undefined;
  let stream = "";
  let partitions = 1;

  const settings: Record<string, string | number | boolean> = {
    storage: "file",
    replicas: 1, // a single server here: the only replica count possible
    // The server runs without a config file or monitoring port (`-js -sd ...`), so there is no
    // /varz to read: it has the default, which fsyncs the stream files every 2 minutes and
    // acks a publish once the message is written to the file (the OS page cache), not synced.
    fsync: "server default: periodic, sync_interval 2m (ack after write, before fsync)",
    retention: "limits (no limits set)",
    partitions: "one subject per partition in one stream, round-robin",
    publish: `${api === "pipelined" ? "async publish with reply subjects (PublishAsync style)" : "js.publish promises"}, window ${window} outstanding PubAcks`,
    consume: `durable pull consumer, AckPolicy.All acks every ${ackEvery}, pulls of ${pullBatch}`,
  };

  return {
    name: "nats-jetstream",
    settings,

    async setup(workload: Workload) {
      try {
        // noAsyncTraces: no stack captured per request, the client's documented fast path for
        // JetStream publishers (errors lose their call-site context, which a benchmark can spare).
        nc = await connect({ servers: url, timeout: 2_000, reconnect: false, noAsyncTraces: true });
      } catch (err) {
        throw new Unavailable(`NATS not reachable at ${url}: ${(err as Error).message}`);
      }
      if (!nc.info?.jetstream) throw new Unavailable(`NATS at ${url} runs without JetStream`);
      settings.server = `nats-server ${nc.info.version}`;
      await readSyncInterval(url, settings);
      jsm = await nc.jetstreamManager();
      js = nc.jetstream();
      partitions = workload.partitions;
      stream = `bench_${workload.name.replace(/[^A-Za-z0-9_-]/g, "_")}_${Date.now().toString(36)}`;
      await jsm.streams.add({
        name: stream,
        subjects: [`${stream}.*`],
        storage: StorageType.File,
        num_replicas: 1,
        retention: RetentionPolicy.Limits,
        discard: DiscardPolicy.Old,
      });
    },

    async publish(count, payload, opts = {}): Promise<PublishOutcome> {
      const conn = nc!;
      const client = js!;
      const latenciesMs = new Array<number>(count);
      const sentAt = new Float64Array(count);
      const subjects = Array.from({ length: partitions }, (_, p) => `${stream}.${p}`);
      const refillAt = Math.floor((window * 3) / 4);
      let inFlight = 0;
      let acked = 0;
      let failure: unknown;
      let wake: (() => void) | undefined;
      const settle = (i: number, err?: unknown) => {
        if (err) failure ??= err;
        else {
          latenciesMs[i] = performance.now() - sentAt[i];
          acked++;
          opts.onAck?.(i);
        }
        inFlight--;
        wake?.();
        wake = undefined;
      };
      // "pipelined": what js.publish sends, minus its per-message promise, 5 s timer and error
      // objects: each publish names the reply subject `<inbox>.<i>`, and the stream's PubAck
      // (or error) comes back on one wildcard subscription, as the Go client's PublishAsync does.
      const inbox = createInbox();
      const sub =
        api === "pipelined"
          ? conn.subscribe(`${inbox}.*`, {
              callback: (err, m) => {
                if (err) {
                  failure ??= err;
                  return;
                }
                const i = Number(m.subject.slice(inbox.length + 1));
                const ack = m.data.length ? (JSON.parse(decoder.decode(m.data)) as { seq?: number; error?: unknown }) : {};
                settle(i, ack.seq ? undefined : new Error(`no PubAck for message ${i}: ${JSON.stringify(ack.error ?? m.headers?.code)}`));
              },
            })
          : undefined;
      const t0 = performance.now();
      for (let i = 0; i < count; i++) {
        // At a fixed rate, wait for the message's slot and count its latency from that slot,
        // so a stalled server is charged for the delay it caused (no coordinated omission).
        const due = opts.ratePerSec ? t0 + (i * 1000) / opts.ratePerSec : 0;
        while (performance.now() < due) await sleep(Math.min(1, due - performance.now()));
        // A full window refills only once a quarter of it is acked: publishes sent in one tick
        // leave in one socket write, where refilling slot by slot costs a write per message.
        if (inFlight >= window) while (inFlight > refillAt) await new Promise<void>((r) => (wake = r));
        if (failure) break;
        sentAt[i] = opts.ratePerSec ? due : performance.now();
        inFlight++;
        if (sub) conn.publish(subjects[i % partitions], payload(i), { reply: `${inbox}.${i}` });
        else
          client.publish(subjects[i % partitions], payload(i)).then(
            () => settle(i),
            (err: unknown) => settle(i, err),
          );
      }
      while (inFlight > 0 && !failure) await new Promise<void>((r) => (wake = r));
      sub?.unsubscribe();
      if (failure) throw failure;
      return { acked, latenciesMs };
    },

    async consume(count, onMessage) {
      const durable = `${stream}_reader`;
      await jsm!.consumers.add(stream, {
        durable_name: durable,
        // AckPolicy.All: an ack settles every earlier message too, JetStream's equivalent of
        // RabbitMQ's multiple=true; one reader taking the stream in order loses nothing by it.
        ack_policy: AckPolicy.All,
        deliver_policy: DeliverPolicy.All,
        max_ack_pending: -1, // unlimited: acks are sent as we go, not what paces the reader
      });
      const consumer = await js!.consumers.get(stream, durable);
      const messages = await consumer.consume({ max_messages: pullBatch });
      let received = 0;
      for await (const m of messages) {
        onMessage?.(m.data);
        if (++received % ackEvery === 0 || received >= count) m.ack();
        if (received >= count) break;
      }
      messages.stop(); // no further pulls; what was pulled but not acked is redelivered later
      await nc!.flush(); // the last acks reach the server before we report done
    },

    async teardown() {
      try {
        if (jsm && stream) await jsm.streams.delete(stream);
      } finally {
        await nc?.close();
        nc = js = jsm = undefined;
      }
    },
  };
}

/** Records the server's configured sync interval when its monitoring port answers on the same host. */
async function readSyncInterval(url: string, settings: Record<string, string | number | boolean>): Promise<void> {
  const host = new URL(url.includes("://") ? url : `nats://${url}`).hostname;
  try {
    const res = await fetch(`http://${host}:8222/varz`, { signal: AbortSignal.timeout(500) });
    const varz = (await res.json()) as { jetstream?: { config?: { sync_interval?: number; sync_always?: boolean } } };
    const cfg = varz.jetstream?.config;
    if (cfg?.sync_always) settings.fsync = "sync_always: fsync before every ack (from /varz)";
    else if (cfg?.sync_interval) settings.fsync = `periodic, sync_interval ${cfg.sync_interval / 1e9}s (from /varz)`;
  } catch {
    // no monitoring port: the documented default stays in settings
  }
}

const decoder = new TextDecoder();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
