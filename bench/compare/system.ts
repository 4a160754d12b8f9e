/**
 * One system under comparison (issue 5: `npm run bench`). Every system gets the same
 * workloads and the same message bytes, and uses its fastest honest client path: batching
 * where the system allows it, pipelined publishes with a window of outstanding acks, and
 * durable settings (documented per system in docs/benchmarks.md).
 */
import type { HistogramSnapshot } from "../../storage/log/latency-histogram.ts";

export type SystemName = "reservoir-s3" | "reservoir-embedded" | "nats-jetstream" | "rabbitmq" | "pg-boss" | "s3-put-baseline";

export interface Workload {
  /** e.g. "16p-1KiB": a topic (stream, queue...) of `partitions` partitions, messages of `messageBytes`. */
  name: string;
  partitions: number;
  messageBytes: number;
}

/** Counters of storage work, for the cost figures (absent where the system has no such thing). */
export interface CostCounters {
  puts?: number;
  gets?: number;
  commits?: number;
  flushes?: number;
  /** Database statements the server sent (Reservoir). */
  statements?: number;
}

export interface PublishOutcome {
  /** Messages acknowledged (durable, per the system's durability settings). */
  acked: number;
  /** Per message: send → acknowledgement, ms (a batched message counts its batch's ack). */
  latenciesMs: number[];
  /**
   * Batched systems: each request's round trip, from sending it to its answer, ms. Unlike
   * latenciesMs at a fixed rate, this leaves out the time a message waited for its request.
   */
  requestLatenciesMs?: number[];
}

/** The messages to publish: `payload(i)` is message i's bytes. */
export interface Payloads {
  (i: number): Uint8Array;
  /**
   * Every payload is ASCII text that a JSON string holds as it is (no control character, quote or
   * backslash), as the harness's are by construction: a JSON client may copy the bytes.
   */
  readonly jsonSafeText?: boolean;
}

/** A message as the consumer got it: bytes, or the text a JSON API delivered (not re-encoded). */
export type ReceivedPayload = Uint8Array | string;

/** Cumulative server-side latency histograms (Reservoir's GET /v1/admin/metrics `latency`). */
export interface ServerLatency {
  putMs: HistogramSnapshot;
  commitMs: HistogramSnapshot;
  produceWaitMs: HistogramSnapshot;
}

export interface SystemUnderTest {
  readonly name: SystemName;
  /** Human-readable settings that matter for fairness (durability, batching, window). */
  readonly settings: Record<string, string | number | boolean>;
  /**
   * Starts or connects to the system and creates a fresh topic/stream/queue for `workload`.
   * Throws Unavailable when the service is not there (the run records it and goes on).
   */
  setup(workload: Workload): Promise<void>;
  /**
   * Publishes `count` messages, `payload(i)` each (exactly workload.messageBytes bytes), as fast
   * as the system can durably take them, or at `ratePerSec` when given (open loop). Resolves
   * once every message is acknowledged. `onAck(i, at)` is called with performance.now() per ack.
   */
  publish(count: number, payload: Payloads, options?: { ratePerSec?: number; onAck?: (i: number) => void }): Promise<PublishOutcome>;
  /**
   * Consumes (and acknowledges) `count` messages published to the workload's topic, from the
   * beginning; `onMessage(payload)` for every message as it arrives. Resolves when all arrived.
   */
  consume(count: number, onMessage?: (payload: ReceivedPayload) => void): Promise<void>;
  /** Storage work so far (cumulative), where the system exposes it. */
  cost?(): Promise<CostCounters>;
  /** Server-side produce latency histograms so far (cumulative), where the system exposes them. */
  serverLatency?(): Promise<ServerLatency>;
  /**
   * The pid whose CPU time (and that of the processes at the other end of its TCP connections)
   * is the system's: Reservoir's server. Absent: the brokers are found from this client's own
   * connections.
   */
  serverPid?(): number | undefined;
  /** Deletes what setup created (and stops what it started, unless close() does). */
  teardown(): Promise<void>;
  /** After the last workload: stops what is shared across workloads (a server, a pool). */
  close?(): Promise<void>;
}

/** The service a system needs is not reachable: skipped, and said so in the results. */
export class Unavailable extends Error {
  constructor(message: string) {
    super(message);
    this.name = "Unavailable";
  }
}
