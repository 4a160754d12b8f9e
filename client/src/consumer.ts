/**
 * A consumer loop for a group: it long-polls `receive` for as many messages as it has free
 * handler slots (`concurrency`), runs the handler on each, keeps their leases alive with
 * `extend` while handlers run, acks on success and nacks with a delay on failure (by default
 * growing with the attempt: 1 s, 2 s, 4 s … 5 min). Acks go together: one ack call at a time,
 * carrying every message whose handler finished while the previous call was in flight (up to
 * 1,000), so a lone message is acked at once and a busy consumer makes one call for many.
 * `stop()` ends the loop: it stops asking
 * for more, aborts the long-poll in progress, waits for the handlers in flight and for their
 * acks. (The server stops waiting for an aborted long-poll and gives back what it leases from
 * then on; messages already on their way in its answer come back after their visibility
 * timeout.) Receive errors that may pass (5xx, 429, network) are retried with backoff; any
 * other error ends the loop, and `done` rejects with it.
 */
import { ReservoirError } from "./errors.ts";
import type { Groups } from "./groups.ts";
import { backoffDelay, type RetryPolicy, sleep } from "./retry.ts";
import type { ReceivedMessage } from "./types.ts";

export interface HandlerContext {
  /** Aborted when the consumer stops; a long handler may give up early (its message is nacked). */
  signal: AbortSignal;
}

export type Handler = (message: ReceivedMessage, ctx: HandlerContext) => Promise<void> | void;

export interface ConsumerOptions {
  /** Handlers running at once (default 1); also the most one receive asks for. */
  concurrency?: number;
  /** The lease a receive takes and each extend renews (default 30 s). */
  visibilityTimeoutSeconds?: number;
  /** Long-poll wait of a receive (default 20,000 ms). */
  waitMs?: number;
  /** How often leases of running handlers are extended (default: a third of the visibility timeout). */
  extendEveryMs?: number;
  /** Delay before a failed message is visible again (default min(2^(attempt-1), 300) s). */
  nackDelaySeconds?: number | ((message: ReceivedMessage, error: unknown) => number);
  /** Backoff of receives that failed retryably. */
  retry?: RetryPolicy;
  /** Told about handler failures, and ack/nack/extend/receive errors the loop carries on past. */
  onError?: (error: unknown, message?: ReceivedMessage) => void;
}

export interface ConsumerStats {
  received: number;
  acked: number;
  nacked: number;
  extended: number;
}

/** Receipts one ack call carries at most (the API's limit per call). */
const ACKS_PER_CALL = 1000;

export class Consumer {
  readonly stats: ConsumerStats = { received: 0, acked: 0, nacked: 0, extended: 0 };
  /** Settles when the loop has ended (after stop(), or on an error it cannot carry on past). */
  readonly done: Promise<void>;
  private readonly concurrency: number;
  private readonly visibility: number;
  private readonly waitMs: number;
  private readonly extendEveryMs: number;
  private readonly running = new Map<ReceivedMessage, Promise<void>>();
  private readonly stopController = new AbortController();
  private slotFreed: (() => void) | undefined;
  private extendTimer: ReturnType<typeof setInterval> | undefined;
  /** Messages whose handler succeeded, waiting for the next ack call; each settles once it was sent. */
  private ackQueue: { message: ReceivedMessage; sent: () => void }[] = [];
  private acking = false;

  constructor(
    private readonly groups: Groups,
    readonly topic: string,
    readonly group: string,
    private readonly handler: Handler,
    private readonly opts: ConsumerOptions = {},
  ) {
    this.concurrency = Math.min(Math.max(1, opts.concurrency ?? 1), 1000);
    this.visibility = opts.visibilityTimeoutSeconds ?? 30;
    this.waitMs = opts.waitMs ?? 20_000;
    this.extendEveryMs = opts.extendEveryMs ?? Math.max(250, (this.visibility * 1000) / 3);
    this.done = this.loop();
    // A rejection nobody awaited yet must not crash the process; awaiting `done` still sees it.
    this.done.catch(() => {});
  }

  /** Stops receiving, waits for the handlers in flight and their acks/nacks. */
  async stop(): Promise<void> {
    if (!this.stopController.signal.aborted) this.stopController.abort(new Error("consumer stopped"));
    this.slotFreed?.();
    await this.done;
  }

  get stopped(): boolean {
    return this.stopController.signal.aborted;
  }

  private async loop(): Promise<void> {
    const signal = this.stopController.signal;
    this.extendTimer = setInterval(() => void this.extendRunning(), this.extendEveryMs);
    let failures = 0;
    try {
      while (!signal.aborted) {
        if (this.running.size >= this.concurrency) {
          await new Promise<void>((resolve) => {
            this.slotFreed = resolve;
          });
          continue;
        }
        let messages: ReceivedMessage[];
        try {
          messages = await this.groups.receive(
            this.topic,
            this.group,
            { max: this.concurrency - this.running.size, waitMs: this.waitMs, visibilityTimeoutSeconds: this.visibility },
            signal,
          );
          failures = 0;
        } catch (error) {
          if (signal.aborted) break;
          if (!(error instanceof ReservoirError) || !error.retryable) throw error;
          this.opts.onError?.(error);
          await sleep(backoffDelay(failures++, { maxDelayMs: 5_000, ...this.opts.retry }, error.retryAfterMs), signal).catch(() => {});
          continue;
        }
        this.stats.received += messages.length;
        for (const message of messages) this.start(message);
      }
    } finally {
      // Graceful: what was received is handled and settled before the loop is done.
      await Promise.allSettled([...this.running.values()]);
      clearInterval(this.extendTimer);
      if (!signal.aborted) this.stopController.abort(new Error("consumer ended"));
    }
  }

  private start(message: ReceivedMessage): void {
    const run = this.handle(message).finally(() => {
      this.running.delete(message);
      const wake = this.slotFreed;
      this.slotFreed = undefined;
      wake?.();
    });
    this.running.set(message, run);
  }

  private async handle(message: ReceivedMessage): Promise<void> {
    try {
      await this.handler(message, { signal: this.stopController.signal });
    } catch (error) {
      this.opts.onError?.(error, message);
      const delay = this.nackDelay(message, error);
      await this.groups
        .nack(this.topic, this.group, [message.receipt], delay)
        .then((r) => {
          this.stats.nacked += r.nacked;
        })
        .catch((e) => this.opts.onError?.(e, message));
      return;
    }
    await new Promise<void>((sent) => {
      this.ackQueue.push({ message, sent });
      if (!this.acking) void this.sendAcks();
    });
  }

  /** Ack calls, one at a time, while messages wait for one; each takes what waits (at most 1,000). */
  private async sendAcks(): Promise<void> {
    this.acking = true;
    try {
      while (this.ackQueue.length > 0) {
        const batch = this.ackQueue.splice(0, ACKS_PER_CALL);
        const byReceipt = new Map(batch.map((a) => [a.message.receipt, a.message]));
        await this.groups
          .ack(
            this.topic,
            this.group,
            batch.map((a) => a.message.receipt),
          )
          .then((r) => {
            this.stats.acked += r.acked;
            for (const f of r.failed) {
              this.opts.onError?.(
                new ReservoirError({ status: 200, code: f.code, detail: "ack failed" }),
                byReceipt.get(String(f.receipt)),
              );
            }
          })
          .catch((e) => {
            for (const a of batch) this.opts.onError?.(e, a.message);
          });
        for (const a of batch) a.sent();
      }
    } finally {
      this.acking = false;
    }
  }

  private nackDelay(message: ReceivedMessage, error: unknown): number {
    const d = this.opts.nackDelaySeconds;
    if (typeof d === "number") return d;
    if (typeof d === "function") return d(message, error);
    return Math.min(2 ** Math.max(0, message.attempt - 1), 300);
  }

  /** One extend call for every message whose handler is still running. */
  private async extendRunning(): Promise<void> {
    const receipts = [...this.running.keys()].map((m) => m.receipt);
    if (receipts.length === 0) return;
    try {
      for (let i = 0; i < receipts.length; i += 1000) {
        const r = await this.groups.extend(this.topic, this.group, receipts.slice(i, i + 1000), this.visibility);
        this.stats.extended += r.extended;
        // A lease that ended anyway (retention, a seek): its message will be delivered again.
        for (const f of r.failed)
          this.opts.onError?.(new ReservoirError({ status: 200, code: f.code, detail: "extend failed: the lease had ended" }));
      }
    } catch (error) {
      this.opts.onError?.(error);
    }
  }
}
