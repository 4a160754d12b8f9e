/**
 * The dispatcher: the receiver of every subscription's group. Per subscription, one pump per
 * instance keeps up to maxConcurrency deliveries in flight: it claims (leases) messages,
 * POSTs them, and settles the finished ones in batches (ack, or retry after a backoff, with
 * the delivery log). Instances coordinate only through the leases and the claim's row lock.
 *
 * Entry points decide when it runs: Node keeps pumps alive (until: Infinity) and wakes them on
 * commits and a timer; a Worker runs them inside waitUntil or a cron event, with a deadline.
 */
import { meteredBytes } from "../../storage/usage/metered-bytes.ts";
import { describeError, ReservoirError } from "../../storage/errors.ts";
import type { Database } from "../../storage/metadata/db.ts";
import type { ReadIo } from "../../storage/log/reader.ts";
import type { Delivery } from "../../storage/groups/receive.ts";
import type { ClaimSettlement } from "../../storage/groups/settle.ts";
import { claimDeliveries, settleDeliveries, type Settling } from "../../storage/subscriptions/dispatch-store.ts";
import type { DeliveryAttempt } from "../../storage/subscriptions/delivery-log.ts";
import { subscriptionsWithWork, type Subscription } from "../../storage/subscriptions/subscriptions.ts";
import { retryAfterMs, retryDelayMs } from "./backoff.ts";
import { payload, webhookId } from "./payload.ts";
import { signatureHeader } from "./signing.ts";
import type { WebhookTransport } from "./transport.ts";

export type DispatchIo = ReadIo & { db: Database };

export interface DispatcherOptions {
  transport: WebhookTransport;
  now?: () => number;
  random?: () => number;
  /** Where failures of the dispatcher itself (not of endpoints) are reported. */
  log?: (message: string) => void;
  /** Told of every attempt that reached the transport (the metrics: functions/metrics/instruments.ts). */
  observer?: DeliveryObserver;
}

export interface DeliveryObserver {
  attempted(succeeded: boolean, durationMs: number): void;
}

export interface RunOptions {
  /** Only subscriptions of these topics (all when omitted). */
  topicIds?: number[];
  /** No claim after this time (ms); Infinity to keep pumping. */
  until: number;
  /**
   * Claim only what could also finish by `until` (an attempt may take the subscription's
   * timeoutMs): for a Worker's waitUntil, which is cut off soon after. A cron event may run over.
   */
  finishBy?: boolean;
  /**
   * Wait for a pump this instance already runs for a subscription and then pump it in this
   * call (Workers: each run must do its I/O in its own request). Otherwise nudge it and return.
   */
  join?: boolean;
}

interface Finished {
  /** When the attempt ended (ms). */
  doneAt: number;
  settlement: ClaimSettlement;
  attempt: DeliveryAttempt | null;
  gone: boolean;
  retryAt: number | null;
}

interface Pump {
  done: Promise<void>;
  /** Set by a nudge: look for messages again before ending. */
  again: boolean;
  wake: () => void;
  /** Known once the pump has claimed. */
  topicId?: number;
}

const USER_AGENT = "Reservoir-Webhooks/1";
/** A finished delivery is settled (acked or scheduled for retry, and logged) within this long. */
const SETTLE_WITHIN_MS = 50;
/** After a claim or settle the database failed, the pump tries again after this long, doubling up to the max. */
const RETRY_FIRST_MS = 50;
const RETRY_MAX_MS = 2_000;

export class Dispatcher {
  private readonly pumps = new Map<number, Pump>();
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly log: (message: string) => void;
  private stopped = false;
  /** Deliveries attempted and settled by this instance, for the metrics endpoint and benchmarks. */
  readonly stats = { attempts: 0, succeeded: 0, failed: 0, claims: 0, settles: 0 };

  constructor(private readonly options: DispatcherOptions) {
    this.now = options.now ?? (() => Date.now());
    this.random = options.random ?? Math.random;
    this.log = options.log ?? ((m) => console.error(m));
  }

  /** Pumps every subscription (of `topicIds`) that has messages ready, until they are done. */
  async run(io: DispatchIo, options: RunOptions): Promise<void> {
    await Promise.all(await this.start(io, options));
  }

  /** Starts (or nudges) the pumps; resolves once they are started, with their completions. */
  async start(io: DispatchIo, options: RunOptions): Promise<Promise<void>[]> {
    if (this.stopped) return [];
    let ids: number[];
    try {
      ids = await subscriptionsWithWork(io.db, this.now(), options.topicIds);
    } catch (error) {
      this.log(`reservoir: finding subscriptions with messages failed: ${describeError(error)}`);
      return [];
    }
    return ids.map((id) => this.pumpOnce(io, id, options));
  }

  /** Wakes the pumps this instance runs for the topics (all when omitted). */
  nudge(topicIds?: number[]): void {
    for (const pump of this.pumps.values()) {
      if (topicIds && pump.topicId !== undefined && !topicIds.includes(pump.topicId)) continue;
      pump.again = true;
      pump.wake();
    }
  }

  /** Whether this instance is pumping anything (Workers keep their event alive meanwhile). */
  get busy(): boolean {
    return this.pumps.size > 0;
  }

  /** Stops claiming; resolves when the deliveries in flight are settled. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.nudge();
    await Promise.all([...this.pumps.values()].map((p) => p.done));
  }

  private async pumpOnce(io: DispatchIo, id: number, options: RunOptions): Promise<void> {
    for (let running = this.pumps.get(id); running; running = this.pumps.get(id)) {
      running.again = true;
      running.wake();
      if (!options.join) return;
      await keepAlive(running.done);
    }
    const pump: Pump = { done: Promise.resolve(), again: false, wake: () => {} };
    pump.done = this.pump(io, id, options, pump)
      .catch((error: unknown) => this.log(`reservoir: dispatching subscription ${id} failed: ${describeError(error)}`))
      .finally(() => this.pumps.delete(id));
    this.pumps.set(id, pump);
    await pump.done;
  }

  private async pump(io: DispatchIo, id: number, { until, finishBy }: RunOptions, pump: Pump): Promise<void> {
    const active = new Set<Promise<void>>();
    const finished: Finished[] = [];
    let subscription: Subscription | null = null;
    let more = true;
    /** When retries this pump scheduled come due: it stays up for those due before `until`. */
    let retries: number[] = [];
    /** Claims and settles in a row that the database failed (see keepForRetry). */
    let failures = 0;
    const noteRetries = (batch: Finished[]) => {
      for (const f of batch) if (f.retryAt !== null) retries.push(f.retryAt);
    };
    try {
      for (;;) {
        const now = this.now();
        const max = subscription?.maxConcurrency ?? 1;
        const free = max - active.size;
        // Claims (with the settles they carry) wait for a quarter of the slots to free up, so
        // that a busy subscription costs one transaction per many deliveries, not per one.
        const worthIt = active.size === 0 || free >= Math.ceil(max / 4);
        const claimUntil = finishBy ? until : Number.POSITIVE_INFINITY;
        const fits = now <= until && now + (subscription?.timeoutMs ?? 0) <= claimUntil;
        if (more && free > 0 && worthIt && fits && !this.stopped) {
          pump.again = false;
          retries = retries.filter((at) => at > now);
          const batch = finished.splice(0);
          const settling = subscription && batch.length > 0 ? { subscription, ...this.settling(batch) } : undefined;
          let claimed: Awaited<ReturnType<typeof claimDeliveries>>;
          try {
            claimed = await claimDeliveries(io, id, { want: subscription ? free : 100, now, until: claimUntil, settling });
          } catch (error) {
            if (!(await this.keepForRetry(error, batch, finished, until, failures++))) throw error;
            continue;
          }
          failures = 0;
          this.stats.claims++;
          if (settling) this.stats.settles++;
          noteRetries(batch);
          if (!claimed) return; // deleted, paused or disabled (a 410 among the settled)
          subscription = claimed.subscription;
          pump.topicId = subscription.topic.id;
          more = claimed.deliveries.length > 0;
          for (const d of claimed.deliveries) {
            const sub = subscription;
            const p: Promise<void> = this.deliver(sub, d).then((f) => {
              finished.push({ ...f, doneAt: this.now() });
              active.delete(p);
            });
            active.add(p);
          }
          continue;
        }
        // Nothing to claim with (or for), or done a while ago: settle on its own what is done.
        const waited = finished.length > 0 ? now - finished[0].doneAt : 0;
        if (finished.length > 0 && subscription && (!more || active.size === 0 || !fits || this.stopped || waited >= SETTLE_WITHIN_MS)) {
          const batch = finished.splice(0);
          try {
            await this.settle(io.db, subscription, batch);
          } catch (error) {
            if (!(await this.keepForRetry(error, batch, finished, until, failures++))) throw error;
            continue;
          }
          failures = 0;
          noteRetries(batch);
          if (batch.some((f) => f.gone)) return;
          more = true;
          continue;
        }
        if (active.size > 0) {
          let timer: ReturnType<typeof setTimeout> | undefined;
          const settleDue = finished.length > 0 ? new Promise<void>((r) => (timer = setTimeout(r, SETTLE_WITHIN_MS - waited))) : null;
          await Promise.race([...active, this.wakeOf(pump), ...(settleDue ? [settleDue] : [])]);
          clearTimeout(timer);
          if (pump.again) more = true;
          continue;
        }
        if (pump.again && !this.stopped && this.now() < until) {
          more = true;
          continue;
        }
        // Idle: wait for a retry this pump scheduled, if it comes due in time.
        const nextRetry = Math.min(...retries);
        const wait = nextRetry - this.now();
        if (this.stopped || !Number.isFinite(nextRetry) || nextRetry > until) return;
        let timer: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([new Promise<void>((r) => (timer = setTimeout(r, Math.max(0, wait)))), this.wakeOf(pump)]);
        clearTimeout(timer);
        more = true;
      }
    } finally {
      // Whatever is still running is settled before the pump ends (a stop, an error).
      while (active.size > 0 || finished.length > 0) {
        if (active.size > 0) await Promise.race(active);
        if (finished.length > 0 && subscription) await this.settle(io.db, subscription, finished.splice(0)).catch(() => {});
        else if (!subscription) finished.length = 0;
      }
    }
  }

  /**
   * A claim or settle carrying finished deliveries failed because the database (or the object
   * store) did: a cut connection, a terminated backend. The deliveries go back to be settled by
   * the next claim or settle, after a short pause, and the pump goes on. Dropping them (as the
   * pump did by ending) left their leases, and with them the subscription's concurrency and, in
   * key order, their keys, held until the lease ran out (timeoutMs + the settle margin, 33 s in
   * the reliability campaign), for deliveries that had already succeeded: under Postgres faults
   * every few seconds, webhook delivery all but stopped (docs/reliability.md, anomaly 7).
   * Settling again is safe: an ack of a settled message counts as done, and a nack whose grant
   * has ended since fails as receipt_expired and changes nothing. (Only the delivery log may
   * then list an attempt twice, when the failed settle had in fact committed.) False when the
   * failure is not the service's, or the pump is stopping or past its time: the caller ends
   * the pump, whose last settle then tries them once more.
   */
  private async keepForRetry(error: unknown, batch: Finished[], finished: Finished[], until: number, failures: number): Promise<boolean> {
    finished.unshift(...batch);
    const unavailable = error instanceof ReservoirError && error.code === "service_unavailable";
    if (!unavailable || this.stopped || this.now() >= until) return false;
    this.log(`reservoir: dispatching a subscription failed, trying again: ${describeError(error)}`);
    await new Promise((resolve) => setTimeout(resolve, Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** Math.min(failures, 6))));
    return true;
  }

  private wakeOf(pump: Pump): Promise<void> {
    return new Promise((resolve) => {
      pump.wake = resolve;
    });
  }

  private settling(batch: Finished[]): Settling {
    const gone = batch.find((f) => f.gone);
    return {
      settlements: batch.map((f) => f.settlement),
      attempts: batch.flatMap((f) => (f.attempt ? [f.attempt] : [])),
      ...(gone && { disable: `the endpoint answered 410 Gone at ${new Date(gone.attempt!.at).toISOString()}` }),
    };
  }

  private async settle(db: Database, subscription: Subscription, batch: Finished[]): Promise<void> {
    await settleDeliveries(db, subscription, this.settling(batch), this.now());
    this.stats.settles++;
  }

  private async deliver(sub: Subscription, d: Delivery): Promise<Omit<Finished, "doneAt">> {
    try {
      return await this.attempt(sub, d);
    } catch (error) {
      // Not the endpoint's fault, but the message must not be lost: retry it like a failure.
      this.log(`reservoir: delivering ${sub.topic.name}/${d.partition}/${d.offset} failed: ${describeError(error)}`);
      const claims = { groupId: sub.group.id, partition: d.partition, firstOffset: d.firstOffset, offset: d.offset, token: d.token };
      const delayMs = retryDelayMs({ initialMs: sub.backoffInitialMs, maxMs: sub.backoffMaxMs }, d.attempt, this.random);
      const action = { kind: "nack" as const, delayMs, error: "internal error" };
      return {
        settlement: { id: `${d.partition}:${d.offset}`, claims, action },
        attempt: null,
        gone: false,
        retryAt: this.now() + delayMs,
      };
    }
  }

  private async attempt(sub: Subscription, d: Delivery): Promise<Omit<Finished, "doneAt">> {
    const claims = { groupId: sub.group.id, partition: d.partition, firstOffset: d.firstOffset, offset: d.offset, token: d.token };
    const id = webhookId(sub.id, d.partition, d.offset);
    if (!matches(sub.filterHeaders, d.record.headers)) {
      return { settlement: { id, claims, action: { kind: "ack" } }, attempt: null, gone: false, retryAt: null };
    }
    const started = this.now();
    const timestamp = Math.floor(started / 1000);
    const { contentType, body } = payload(sub.format, {
      id,
      topic: sub.topic.name,
      partition: d.partition,
      offset: d.offset,
      attempt: d.attempt,
      record: d.record,
    });
    const secrets = sub.previousSecret && (sub.previousSecretExpiresAt ?? 0) > started ? [sub.secret, sub.previousSecret] : [sub.secret];
    const outcome = await this.options.transport({
      url: new URL(sub.url),
      headers: {
        "content-type": contentType,
        "user-agent": USER_AGENT,
        "webhook-id": id,
        "webhook-timestamp": String(timestamp),
        "webhook-signature": await signatureHeader(secrets, id, timestamp, body),
      },
      body,
      timeoutMs: sub.timeoutMs,
    });
    const durationMs = Math.max(0, this.now() - started);
    const status = outcome.kind === "response" ? outcome.status : null;
    const succeeded = status !== null && status >= 200 && status < 300;
    // The transport's message comes from the network; it goes to the delivery log (text) and a
    // dead letter's x-reservoir-error header (JSONB), which hold neither U+0000 nor lone surrogates.
    const error = succeeded
      ? null
      : outcome.kind === "error"
        ? outcome.error.replaceAll("\u0000", "\uFFFD").toWellFormed()
        : `HTTP ${status}`;
    const attempt: DeliveryAttempt = {
      partition: d.partition,
      offset: d.offset,
      attempt: d.attempt,
      succeeded,
      httpStatus: status,
      error,
      at: started,
      durationMs,
      bytes: meteredBytes(d.record),
    };
    this.stats.attempts++;
    this.options.observer?.attempted(succeeded, durationMs);
    if (succeeded) {
      this.stats.succeeded++;
      return { settlement: { id, claims, action: { kind: "ack" } }, attempt, gone: false, retryAt: null };
    }
    this.stats.failed++;
    // After the last attempt: due at once, so the next claim dead-letters it.
    const last = d.attempt >= sub.group.maxAttempts;
    let delayMs = last ? 0 : retryDelayMs({ initialMs: sub.backoffInitialMs, maxMs: sub.backoffMaxMs }, d.attempt, this.random);
    if (!last && outcome.kind === "response" && (status === 429 || status === 503)) {
      delayMs = Math.max(delayMs, retryAfterMs(outcome.retryAfter, this.now()) ?? 0);
    }
    const retryAt = this.now() + delayMs;
    return { settlement: { id, claims, action: { kind: "nack", delayMs, error: error! } }, attempt, gone: status === 410, retryAt };
  }
}

function matches(filter: Record<string, string> | null, headers: Record<string, string> | undefined): boolean {
  if (!filter) return true;
  return Object.entries(filter).every(([k, v]) => headers?.[k] === v);
}

/**
 * Waits for `work` while holding a timer of the caller's own: workerd cancels a request
 * (a waitUntil included) that awaits only what another request will settle.
 */
async function keepAlive<T>(work: Promise<T>): Promise<T> {
  const timer = setInterval(() => {}, 1000);
  try {
    return await work;
  } finally {
    clearInterval(timer);
  }
}
