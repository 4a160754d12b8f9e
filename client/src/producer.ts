/**
 * A batching producer. `send` queues a message and resolves to its offset once its batch is
 * committed. A topic's batch goes out when it has waited `lingerMs`, or at once when it reaches
 * `maxBatchMessages` or `maxBatchBytes`. Every message gets an idempotency key unless it has
 * one (`<producer id>-<sequence>`), so a batch retried after a 5xx, a 429 or a lost answer
 * stores nothing twice: the service answers a repeated key with its original offset.
 *
 * Up to `maxInFlight` batches travel at once. Messages of one key keep their order only with
 * `maxInFlight: 1` (a retried batch may otherwise land after a later one).
 */
import { ReservoirError } from "./errors.ts";
import { seg, type Transport } from "./http.ts";
import { type RetryPolicy, withRetries } from "./retry.ts";
import type { MessageIn, MessageOffset, ProduceResponse } from "./types.ts";
import { toMessage } from "./values.ts";

export interface ProducerOptions {
  /** How long a batch waits for company before it goes (ms, default 5). */
  lingerMs?: number;
  /** A batch goes at once at this many messages (default 1,000: the service's limit per request). */
  maxBatchMessages?: number;
  /** A batch goes at once at about this many bytes of JSON (default 4 MiB; the service takes 8 MiB). */
  maxBatchBytes?: number;
  /** Batches in flight at once (default 4). */
  maxInFlight?: number;
  /** Retries of a batch that failed retryably (default: 8 retries, 100 ms base, 10 s cap). */
  retry?: RetryPolicy;
  /** Adds idempotency keys to messages without one (default true). */
  idempotencyKeys?: boolean;
  /** Prefix of the keys it adds (default a random UUID: unique per producer). */
  producerId?: string;
  /** Told about each retry (logging, metrics). */
  onRetry?: (error: ReservoirError, attempt: number, delayMs: number) => void;
}

interface Pending {
  message: MessageIn;
  resolve: (offset: MessageOffset) => void;
  reject: (error: unknown) => void;
}

interface Batch {
  topic: string;
  items: Pending[];
  bytes: number;
  timer: ReturnType<typeof setTimeout> | undefined;
}

const encoder = new TextEncoder();

export class Producer {
  readonly producerId: string;
  private readonly lingerMs: number;
  private readonly maxMessages: number;
  private readonly maxBytes: number;
  private readonly maxInFlight: number;
  private readonly retry: RetryPolicy;
  private readonly addKeys: boolean;
  private readonly onRetry: ProducerOptions["onRetry"];
  private sequence = 0;
  private readonly open = new Map<string, Batch>();
  private readonly queue: Batch[] = [];
  private readonly inFlight = new Set<Promise<void>>();
  private closed = false;

  constructor(
    private readonly http: Transport,
    opts: ProducerOptions = {},
  ) {
    this.lingerMs = opts.lingerMs ?? 5;
    this.maxMessages = Math.min(opts.maxBatchMessages ?? 1000, 1000);
    this.maxBytes = opts.maxBatchBytes ?? 4 * 1024 * 1024;
    this.maxInFlight = Math.max(1, opts.maxInFlight ?? 4);
    this.retry = { retries: 8, ...opts.retry };
    this.addKeys = opts.idempotencyKeys ?? true;
    this.producerId = opts.producerId ?? crypto.randomUUID();
    this.onRetry = opts.onRetry;
  }

  /** Queues one message; resolves to where it was stored. */
  send(topic: string, message: MessageIn | string | Uint8Array): Promise<MessageOffset> {
    if (this.closed) return Promise.reject(new Error("the producer is closed"));
    let m = toMessage(message);
    // The service refuses a whole request for one malformed message: this one is refused alone,
    // before it can sink the batch it would have joined.
    if ((m.value === undefined) === (m.valueBase64 === undefined)) {
      return Promise.reject(
        new ReservoirError({
          status: 400,
          code: "invalid_request",
          detail: "a message has exactly one of value and valueBase64 (refused by the SDK, not sent)",
        }),
      );
    }
    if (this.addKeys && m.idempotencyKey === undefined) m = { ...m, idempotencyKey: `${this.producerId}-${this.sequence++}` };
    // The JSON size plus a comma: what this message adds to the request body.
    const size = encoder.encode(JSON.stringify(m)).byteLength + 1;
    let batch = this.open.get(topic);
    if (batch && (batch.items.length >= this.maxMessages || batch.bytes + size > this.maxBytes)) {
      this.dispatch(batch);
      batch = undefined;
    }
    if (!batch) {
      batch = { topic, items: [], bytes: 0, timer: undefined };
      this.open.set(topic, batch);
      const b = batch;
      b.timer = setTimeout(() => this.dispatch(b), this.lingerMs);
    }
    const result = new Promise<MessageOffset>((resolve, reject) => batch.items.push({ message: m, resolve, reject }));
    batch.bytes += size;
    if (batch.items.length >= this.maxMessages || batch.bytes >= this.maxBytes) this.dispatch(batch);
    return result;
  }

  /** Queues several messages; resolves to their offsets in order. */
  sendMany(topic: string, messages: (MessageIn | string | Uint8Array)[]): Promise<MessageOffset[]> {
    return Promise.all(messages.map((m) => this.send(topic, m)));
  }

  /** Sends every open batch now and waits until nothing is queued or in flight. */
  async flush(): Promise<void> {
    for (const batch of [...this.open.values()]) this.dispatch(batch);
    while (this.queue.length > 0 || this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
  }

  /** Flushes, then refuses further sends. */
  async close(): Promise<void> {
    this.closed = true;
    await this.flush();
  }

  /** Messages queued or in flight. */
  get pending(): number {
    let n = 0;
    for (const b of this.open.values()) n += b.items.length;
    for (const b of this.queue) n += b.items.length;
    return n + this.sendingCount;
  }
  private sendingCount = 0;

  private dispatch(batch: Batch): void {
    if (this.open.get(batch.topic) !== batch) return; // already dispatched
    clearTimeout(batch.timer);
    this.open.delete(batch.topic);
    this.queue.push(batch);
    this.pump();
  }

  private pump(): void {
    while (this.inFlight.size < this.maxInFlight && this.queue.length > 0) {
      const batch = this.queue.shift()!;
      this.sendingCount += batch.items.length;
      const p = this.sendBatch(batch).finally(() => {
        this.sendingCount -= batch.items.length;
        this.inFlight.delete(p);
        this.pump();
      });
      this.inFlight.add(p);
    }
  }

  private async sendBatch(batch: Batch): Promise<void> {
    const messages = batch.items.map((i) => i.message);
    try {
      const res = await withRetries(
        () => this.http.json<ProduceResponse>("POST", `/v1/topics/${seg(batch.topic)}/messages`, { body: { messages } }),
        this.retry,
        { onRetry: this.onRetry },
      );
      for (const [i, item] of batch.items.entries()) item.resolve(res.offsets[i]!);
    } catch (error) {
      for (const item of batch.items) item.reject(error);
    }
  }
}
