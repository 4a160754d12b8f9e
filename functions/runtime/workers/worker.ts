/**
 * The Cloudflare Worker entry: the same Hono app as functions/runtime/node/server.ts, on workerd.
 *
 * Configuration comes from vars and secrets with the names of API.md "Configuration":
 * DATABASE_URL or a Hyperdrive binding named HYPERDRIVE, S3_* (R2 through its S3 API, or any
 * S3), RESERVOIR_ADMIN_TOKEN (required here: there is no console to print a generated one),
 * RESERVOIR_LINGER_MS, RESERVOIR_MAX_BATCH_BYTES. There is no embedded fallback on Workers
 * (no PGlite, no folder store): a missing setting, or a value functions/config.ts cannot parse,
 * answers every request with a 503 naming it (and the cron logs it and does nothing).
 *
 * What workerd imposes, and how it is handled (measured under `wrangler dev`; details in
 * infra/workers.md):
 *
 * 1. I/O objects belong to the request that created them. A postgres.js socket created in one
 *    request and written from another throws "Cannot perform I/O on behalf of a different
 *    request". So every request opens its own postgres.js client (max: 1, connected lazily on
 *    the first query) and closes it with ctx.waitUntil(sql.end()) once its work is done. What
 *    holds no I/O object is shared by the isolate: the Batcher, the BatchCache, the
 *    CommitSignal, the StickyPartitioner, the TopicCache and the S3 store (the AWS SDK calls
 *    the global fetch per operation, in whichever request calls it).
 *
 *    The batcher runs a flush on the FlushIo of the request whose linger timer fired (a timer
 *    runs in the request that set it) or of the request that filled maxBytes, from inside that
 *    request, which itself waits for the flush. The one path that breaks this is a flush held
 *    back by `maxInFlight` and started later from the `.finally` of another request's flush:
 *    its PUT (a fetch) then belongs to a request that answers and ends, never settles, and the
 *    leaked in-flight slot stalls every later produce of the tenant (measured: 44 of 60
 *    concurrent produces stuck with maxInFlight 4 and linger 0). The Worker therefore sets
 *    maxInFlight to Infinity: every flush starts at once, in its own request. That bounds
 *    nothing that matters here, since a flush in flight always has its own request (and
 *    connection) waiting on it: flushes in flight never exceed concurrent produce requests.
 *
 * 2. A request awaiting a promise it created, which only another request will settle (a
 *    batcher follower waiting for the flush the leader's timer runs), is cancelled by workerd
 *    as soon as it has no pending event of its own: "The Workers runtime canceled this request
 *    because it detected that your Worker's code had hung and would never generate a response"
 *    (a 500), and when the leader settles it later: "A promise was resolved or rejected from a
 *    different request context than the one it was created in. However, the creating request
 *    has already been completed or canceled". Today a produce follower escapes this only by
 *    accident: its own idle postgres.js socket has a read pending, which counts as an event.
 *    A pending timer counts too, so every request here races its work against one bounded
 *    timer of its own (REQUEST_DEADLINE_MS), cleared as soon as the work settles. The awaiting
 *    code then resumes in its own request (workerd's handle_cross_request_promise_resolution),
 *    so each response is built and sent in its own context.
 *
 *    The work is also passed to ctx.waitUntil: per Cloudflare's documentation that keeps it
 *    running (up to 30 s) after the client disconnects, so a request that leads a flush (its
 *    socket carries other requests' messages) is not torn down in the middle of it. (Not
 *    observable under wrangler dev, which does not cancel a request whose client goes away.)
 *
 * 3. Migrations (and reading the shared receipt key) run once per isolate, on the connection
 *    of the first request, before it is served; concurrent first requests wait on the same
 *    memoised promise. A failed attempt is forgotten, so the next request tries again; an
 *    attempt that never settles (its request was torn down) is replaced after
 *    PREPARATION_STALE_MS.
 *
 * 4. Webhooks (docs/webhooks.md) and transactions: a produce whose flush reported subscribed topics starts
 *    delivery with ctx.waitUntil on a client of its own, for at most WAIT_UNTIL_DISPATCH_MS; a
 *    pump already running in the isolate is joined (awaited with a timer of the caller's own,
 *    as in point 2) and then run again in the caller's event. The Cron Trigger (`scheduled`)
 *    sweeps retries and backlog for RESERVOIR_SWEEP_SECONDS, and each of its passes also rolls
 *    back or checks back the transactions past their timeout. Workerd offers no LISTEN.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { describeError } from "../../../storage/errors.ts";
import { drizzle } from "drizzle-orm/postgres-js";
import postgres from "postgres";
import { createApp } from "../../app.ts";
import { commitDeadlineMs, ConfigError, readConfig, type Config } from "../../config.ts";
import { maintainIfFree } from "../../../storage/lifecycle/maintenance.ts";
import { problemResponse } from "../../problem.ts";
import { createSharedState, type SharedState } from "../../instance.ts";
import type { LifecycleSettings, Runtime } from "../../runtime.ts";
import { translateFailures, type Database } from "../../../storage/metadata/db.ts";
import { migrate } from "../../../storage/metadata/migrate.ts";
import { postgresJsTypes } from "../../../storage/metadata/pg-types.ts";
import { agreesOnKeySecret, receiptKey } from "../../../storage/metadata/settings.ts";
import { ReceiptSigner } from "../../../storage/groups/receipts.ts";
import { keySecretFromText, secretFingerprint } from "../../../storage/tenancy/derived-keys.ts";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { utf8ToBytes } from "@noble/hashes/utils.js";
import { countingStore, type ObjectStore } from "../../../storage/objects/object-store.ts";
import { S3ObjectStore } from "../../../storage/objects/s3-store.ts";
import { FetchHttpHandler } from "@smithy/fetch-http-handler";
import { pruneAttempts } from "../../../storage/subscriptions/delivery-log.ts";
import { usageUpkeep } from "../../../storage/usage/rollup.ts";
import { createAddressGuard, type AddressGuard } from "../../push/address-guard.ts";
import { Dispatcher } from "../../push/dispatcher.ts";
import { dohResolver } from "../../push/resolve-doh.ts";
import { fetchTransport } from "../../push/transport-fetch.ts";
import type { WebhookTransport } from "../../push/transport.ts";
import { sweepTransactions } from "../../transactions/check-back.ts";
import { trackDatabase, trackShared, trackStore, type RequestScope, type Waits } from "../../waiting-on.ts";
import { createInstruments } from "../../metrics/instruments.ts";
import { promRegistry } from "../prom-registry.ts";
import { countingStatements } from "../statement-count.ts";

/** A Hyperdrive binding (only the part used here). */
interface Hyperdrive {
  connectionString: string;
}

export interface WorkerEnv {
  DATABASE_URL?: string;
  HYPERDRIVE?: Hyperdrive;
  S3_ENDPOINT?: string;
  S3_BUCKET?: string;
  S3_REGION?: string;
  S3_ACCESS_KEY_ID?: string;
  S3_SECRET_ACCESS_KEY?: string;
  S3_FORCE_PATH_STYLE?: string;
  RESERVOIR_ADMIN_TOKEN?: string;
  RESERVOIR_LINGER_MS?: string;
  RESERVOIR_MAX_BATCH_BYTES?: string;
  [name: string]: unknown;
}

/** workerd's ExecutionContext (only the part used here). */
export interface WorkerContext {
  waitUntil(promise: Promise<unknown>): void;
  passThroughOnException(): void;
  props: unknown;
}

/**
 * Longest a request may take before it is answered 503: above the batcher's commit deadline
 * (60 s after the PUT starts) plus linger, and above the longest long-poll (30 s). The app's own
 * deadline (functions/deadline.ts: 65 s, plus waitMs for a long-poll) answers first, with the
 * route, tenant and waits logged; this one is the last resort.
 */
const REQUEST_DEADLINE_MS = 100_000;
/** A preparation (migrations, receipt key) not settled after this long is abandoned and retried. */
const PREPARATION_STALE_MS = 30_000;
/** How long a produce's waitUntil may deliver: within the 30 s workerd gives it after the response. */
const WAIT_UNTIL_DISPATCH_MS = 25_000;
const SWEEP_INTERVAL_MS = 1000;

const app = createApp();

/** What the isolate shares across requests: nothing in it holds an I/O object. */
interface Instance extends SharedState {
  databaseUrl: string;
  adminToken: string;
  keySecret: Uint8Array;
  store: ObjectStore;
  guard: AddressGuard;
  dispatcher: Dispatcher;
  /** The webhook transport, also used by transaction check-backs. */
  transport: WebhookTransport;
  sweepMs: number;
  requestTimeoutMs?: number;
  lifecycle: LifecycleSettings;
  /** The request whose code runs now (nodejs_compat's AsyncLocalStorage), for the deadline's log. */
  scope: RequestScope;
  /** Topics whose latest flush here reported active subscriptions (see the header, point 4). */
  subscribedTopics: Set<number>;
}

let instance: Instance | undefined;
/** What the isolate learns from the database once, before serving: see the header, point 3. */
interface Prepared {
  receipts: ReceiptSigner;
}
let preparation: { promise: Promise<Prepared>; started: number; done: boolean } | undefined;
/** Statements this isolate sent to Postgres (all its per-request clients). */
const counters = { dbStatements: 0, store: { puts: 0, gets: 0 } };

/** Builds the isolate's shared state on first use, or names what is missing. */
function setUp(env: WorkerEnv): Instance | { problem: string } {
  if (instance) return instance;
  const strings: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(env)) if (typeof v === "string") strings[k] = v;
  // A value that does not parse is not guessed at: every request answers 503 naming it (the
  // Worker has no start-up to refuse), and the isolate is built once the value is fixed.
  let config: Config;
  try {
    config = readConfig(strings);
  } catch (error) {
    if (error instanceof ConfigError) return { problem: `the Worker's configuration is invalid: ${error.problems.join("; ")}` };
    throw error;
  }
  const missing: string[] = [];
  if (!config.adminToken)
    missing.push("RESERVOIR_ADMIN_TOKEN (the operator token; set it with `wrangler secret put RESERVOIR_ADMIN_TOKEN`)");
  const databaseUrl = env.HYPERDRIVE?.connectionString || config.databaseUrl;
  if (!databaseUrl) missing.push("DATABASE_URL or a Hyperdrive binding named HYPERDRIVE (there is no embedded database on Workers)");
  if (!config.s3)
    missing.push("S3_BUCKET and the other S3_* settings (R2 through its S3 API, or any S3; there is no folder store on Workers)");
  let guard: AddressGuard | undefined;
  try {
    guard = createAddressGuard(config.webhookAllowPrivate, dohResolver(config.dnsOverHttps));
  } catch (error) {
    missing.push(`a valid RESERVOIR_WEBHOOK_ALLOW_PRIVATE (${(error as Error).message})`);
  }
  if (missing.length > 0) return { problem: `the Worker is not configured: it needs ${missing.join("; ")}` };

  // See the header, point 1: queued flushes would start from another request's context.
  // Per isolate, like the batcher: each isolate counts its own requests (README, "Metrics").
  const metrics = createInstruments(promRegistry(), counters.store);
  const shared = createSharedState(
    {
      lingerMs: config.lingerMs,
      maxBytes: config.maxBatchBytes,
      maxInFlight: Number.POSITIVE_INFINITY,
      commitDeadlineMs: commitDeadlineMs(config),
    },
    metrics,
    config.readCacheBytes,
    // Header, point 2: a request waiting on another's GET could be cancelled, or wait on a fetch
    // whose request has ended; each request makes its own GETs here.
    false,
  );
  const storage = new AsyncLocalStorage<Waits>();
  const scope: RequestScope = { run: (waits, work) => storage.run(waits, work), current: () => storage.getStore() };
  trackShared(shared, scope);
  const subscribedTopics = new Set<number>();
  shared.batcher.onCommit((flush) => {
    for (const { topicId } of flush.highWatermarks) subscribedTopics.delete(topicId);
    for (const topicId of flush.subscribedTopicIds) subscribedTopics.add(topicId);
  });
  instance = {
    ...shared,
    databaseUrl: databaseUrl!,
    adminToken: config.adminToken!,
    // The secret binding RESERVOIR_KEY_SECRET; without it, one derived from the operator token
    // (a secret every Worker of the deployment has), so that keys still sign SigV4 requests.
    keySecret: config.keySecret
      ? keySecretFromText(config.keySecret)
      : hmac(sha256, utf8ToBytes(config.adminToken!), utf8ToBytes("reservoir key secret")),
    // workerd's fetch, per operation in the calling request's context; 60 s as on Node.
    store: trackStore(
      countingStore(new S3ObjectStore({ ...config.s3!, requestHandler: new FetchHttpHandler({ requestTimeout: 60_000 }) }), counters.store),
      scope,
    ),
    guard: guard!,
    dispatcher: new Dispatcher({ transport: fetchTransport(guard!), observer: metrics.delivery }),
    transport: fetchTransport(guard!),
    sweepMs: config.sweepSeconds * 1000,
    requestTimeoutMs: config.requestTimeoutMs,
    lifecycle: { graceSeconds: config.gcGraceSeconds, compactionTargetBytes: config.compactionTargetBytes },
    scope,
    subscribedTopics,
  };
  return instance;
}

/** This request's own database client; nothing else may touch its socket. */
function openDatabase(url: string): { db: Database; done(): Promise<void> } {
  const sql = postgres(url, {
    // One connection per request: the request's queries (and a flush it leads) run in order.
    max: 1,
    // No pg_type read per connection (one more round trip per request here): the core needs no
    // array types, since it binds arrays as literals and reads them as JSON (sql-array.ts).
    fetch_types: false,
    types: postgresJsTypes,
    // `prepare` is left to its default (true; `?prepare=false` in DATABASE_URL turns it off,
    // e.g. behind a transaction-mode pooler without prepared statements). Named statements
    // live as long as the connection, i.e. this request, and cost no extra round trip here:
    // postgres.js describes every parameterised statement new to a connection first either way.
    connect_timeout: 10,
    onnotice: () => {},
  });
  return {
    db: translateFailures(countingStatements(counters, (options) => drizzle(sql, options) as unknown as Database)),
    async done() {
      await sql.end({ timeout: 5 });
    },
  };
}

/**
 * Resolves once this isolate is ready to serve: migrations applied and the receipt key read
 * (the same steps as the Node entry's start-up), run on `db` if no request has started them.
 */
function prepared(db: Database): Promise<Prepared> {
  const now = Date.now();
  if (preparation && (preparation.done || now - preparation.started < PREPARATION_STALE_MS)) return preparation.promise;
  const attempt = { started: now, done: false, promise: undefined as unknown as Promise<Prepared> };
  attempt.promise = (async () => {
    const applied = await migrate(db);
    if (applied.length > 0) console.log(`reservoir: applied migrations ${applied.join(", ")}`);
    return { receipts: new ReceiptSigner(await receiptKey(db)) };
  })().then(
    (ready) => {
      attempt.done = true;
      return ready;
    },
    (error: unknown) => {
      if (preparation === attempt) preparation = undefined;
      throw error;
    },
  );
  preparation = attempt;
  return attempt.promise;
}

/** Settles with `work`, holding a timer of this request's own meanwhile (see the header, point 2). */
function withDeadline(work: Promise<Response>, ms: number): Promise<Response> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<Response>((resolve) => {
    timer = setTimeout(
      () => resolve(problemResponse("service_unavailable", `the request did not complete within ${ms / 1000} s; retry it`)),
      ms,
    );
  });
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}

/** Whether this isolate's key secret is the one the database recorded (checked until it is). */
let keySecretAgreed = false;

async function handle(request: Request, instance: Instance, db: Database, ctx: WorkerContext): Promise<Response> {
  let ready: Prepared;
  try {
    ready = await prepared(db);
  } catch (error) {
    console.error(`reservoir: preparing the database failed: ${describeError(error)}`);
    return problemResponse("service_unavailable", "the database is not ready (migrations or settings could not be applied); retry");
  }
  // As the Node entry refuses to start: keys derived from another secret could not be checked here.
  keySecretAgreed ||= await agreesOnKeySecret(db, secretFingerprint(instance.keySecret));
  if (!keySecretAgreed) {
    return problemResponse(
      "service_unavailable",
      "this database's API keys were derived from another key secret: set RESERVOIR_KEY_SECRET to the one the other instances use",
    );
  }
  const runtime: Runtime = {
    batcher: instance.batcher,
    cache: instance.cache,
    commits: instance.commits,
    leaseTurns: instance.leaseTurns,
    partitioner: instance.partitioner,
    topics: instance.topics,
    groups: instance.groups,
    storedBytes: instance.storedBytes,
    metrics: instance.metrics,
    sqsQueues: instance.sqsQueues,
    knownKeys: instance.knownKeys,
    db: trackDatabase(db, instance.scope),
    store: instance.store,
    clock: { now: () => Date.now() },
    adminToken: instance.adminToken,
    keySecret: instance.keySecret,
    receipts: ready.receipts,
    counters,
    pollIntervalMs: 100,
    requestTimeoutMs: instance.requestTimeoutMs,
    lifecycle: instance.lifecycle,
    scope: instance.scope,
    guard: instance.guard,
    push: {
      wake: (topicIds) => ctx.waitUntil(dispatchFor(instance, topicIds, Date.now() + WAIT_UNTIL_DISPATCH_MS)),
      committed: (topicIds) => {
        if (topicIds.some((id) => instance.subscribedTopics.has(id)))
          ctx.waitUntil(dispatchFor(instance, topicIds, Date.now() + WAIT_UNTIL_DISPATCH_MS));
      },
      stats: instance.dispatcher.stats,
    },
  };
  return app.fetch(request, runtime, ctx);
}

/**
 * Delivers what is ready, in the calling event, on a database client of its own (the request's
 * closes when the response is done). Only the subscriptions of `topicIds`, or all of them.
 */
async function dispatchFor(instance: Instance, topicIds: number[] | undefined, until: number): Promise<void> {
  const { db, done } = openDatabase(instance.databaseUrl);
  try {
    await prepared(db);
    await instance.dispatcher.run({ db, store: instance.store, cache: instance.cache }, { topicIds, until, join: true, finishBy: true });
  } catch (error) {
    console.error(`reservoir: dispatching webhooks failed: ${describeError(error)}`);
  } finally {
    await done().catch(() => {});
  }
}

/** The cron: sweeps retries and backlog about once a second for sweepMs. */
async function sweep(instance: Instance): Promise<void> {
  const deadline = Date.now() + instance.sweepMs;
  const { db, done } = openDatabase(instance.databaseUrl);
  try {
    const ready = await prepared(db);
    await pruneAttempts(db, Date.now());
    await usageUpkeep(db).catch((error: unknown) => console.error(`reservoir: usage upkeep failed: ${describeError(error)}`));
    do {
      const started = Date.now();
      // Transactions past their timeout: rolled back, or checked back (functions/transactions/).
      await sweepTransactions({ db, receipts: ready.receipts, transport: instance.transport, now: () => Date.now() }).catch((error) =>
        console.error(`reservoir: the transaction sweep failed: ${describeError(error)}`),
      );
      await instance.dispatcher.run({ db, store: instance.store, cache: instance.cache }, { until: deadline, join: true });
      const pause = SWEEP_INTERVAL_MS - (Date.now() - started);
      if (pause > 0 && Date.now() + pause < deadline) await new Promise((r) => setTimeout(r, pause));
    } while (Date.now() + SWEEP_INTERVAL_MS < deadline);
  } catch (error) {
    console.error(`reservoir: the webhook sweep failed: ${describeError(error)}`);
  } finally {
    await done().catch(() => {});
  }
}

/** The cron's other job: one maintenance pass (retention, collection, orphans) if no instance runs one. */
async function maintain(instance: Instance): Promise<void> {
  const { db, done } = openDatabase(instance.databaseUrl);
  try {
    await prepared(db);
    await maintainIfFree({ db, store: instance.store, now: () => Date.now() }, instance.lifecycle);
  } catch (error) {
    console.error(`reservoir: a maintenance pass failed (the next cron event retries): ${describeError(error)}`);
  } finally {
    await done().catch(() => {});
  }
}

export default {
  async scheduled(_controller: unknown, env: WorkerEnv, ctx: WorkerContext): Promise<void> {
    const setup = setUp(env);
    if ("problem" in setup) {
      console.error(`reservoir: ${setup.problem}`);
      return;
    }
    ctx.waitUntil(sweep(setup));
    ctx.waitUntil(maintain(setup));
  },

  async fetch(request: Request, env: WorkerEnv, ctx: WorkerContext): Promise<Response> {
    const setup = setUp(env);
    if ("problem" in setup) return problemResponse("service_unavailable", setup.problem);
    const { db, done } = openDatabase(setup.databaseUrl);
    const work = handle(request, setup, db, ctx).catch((error: unknown) => {
      console.error(`reservoir: ${request.method} ${new URL(request.url).pathname} failed: ${describeError(error)}`);
      return problemResponse("internal_error", "the service failed; the request may be retried");
    });
    ctx.waitUntil(
      work
        .then(() => done())
        .catch((error: unknown) => console.error(`reservoir: closing the database connection failed: ${describeError(error)}`)),
    );
    return withDeadline(work, REQUEST_DEADLINE_MS);
  },
};
