/**
 * The Node entry: `npm start`. Embedded default (PGlite and a folder under the data dir), or
 * Postgres and S3 when DATABASE_URL and S3_* are set. Injects them into the shared app.
 */
import { getRequestListener } from "@hono/node-server";
import { createServer } from "node:http";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { AsyncLocalStorage } from "node:async_hooks";
import { createApp } from "../../app.ts";
import { commitDeadlineMs, ConfigError, readConfig, type Config } from "../../config.ts";
import { startMaintenanceTimer } from "./maintenance-timer.ts";
import { createSharedState } from "../../instance.ts";
import type { Runtime } from "../../runtime.ts";
import { newSecret } from "../../../storage/metadata/secrets.ts";
import { migrate } from "../../../storage/metadata/migrate.ts";
import { agreesOnKeySecret, receiptKey } from "../../../storage/metadata/settings.ts";
import { keySecretFromText, secretFingerprint } from "../../../storage/tenancy/derived-keys.ts";
import { ReceiptSigner } from "../../../storage/groups/receipts.ts";
import { FolderObjectStore } from "./folder-store.ts";
import { countingStore, type ObjectStore } from "../../../storage/objects/object-store.ts";
import { nodeS3Store } from "./s3.ts";
import { nativeCrc32c } from "./native-crc32c.ts";
import { useNativeCrc32c } from "../../../storage/segment/crc32c.ts";
import { useNativeUtf8Check } from "../../../storage/segment/utf8.ts";
import { isUtf8 } from "node:buffer";
import { createAddressGuard } from "../../push/address-guard.ts";
import { startBackgroundDispatch } from "../../push/background.ts";
import { Dispatcher } from "../../push/dispatcher.ts";
import { nodeResolver } from "./resolve.ts";
import { startTransactionSweep } from "../../transactions/background.ts";
import { nodeTransport } from "./webhook-transport.ts";
import { openDatabase } from "./database.ts";
import { untilDatabaseAnswers } from "./startup-retry.ts";
import { answerParserErrors, requestError } from "./parser-errors.ts";
import { trackDatabase, trackShared, trackStore, type RequestScope, type Waits } from "../../waiting-on.ts";
import { describeError } from "../../../storage/errors.ts";
import { usageUpkeep } from "../../../storage/usage/rollup.ts";
import { createInstruments } from "../../metrics/instruments.ts";
import { promRegistry } from "../prom-registry.ts";
import { declaredBodies } from "./declared-body.ts";
import { unzeroedArray } from "./unzeroed.ts";

/** How often each Node instance rolls usage deltas up and samples storage (API.md: hourly storage samples). */
const USAGE_UPKEEP_MS = 60_000;

const counters = { dbStatements: 0, store: { puts: 0, gets: 0 } };

function openStore(config: Config): { store: ObjectStore; kind: string } {
  if (config.s3) {
    const store = nodeS3Store(config.s3);
    return { store, kind: `s3 (${config.s3.endpoint ?? "aws"}/${config.s3.bucket})` };
  }
  const dir = join(config.dataDir, "segments");
  mkdirSync(dir, { recursive: true });
  return { store: new FolderObjectStore(dir), kind: `folder (${dir})` };
}

/** Without RESERVOIR_ADMIN_TOKEN: one generated token, kept (mode 600) so restarts keep it. */
function generatedAdminToken(dataDir: string): string {
  const file = join(dataDir, "operator-token");
  if (existsSync(file)) return readFileSync(file, "utf8").trim();
  mkdirSync(dataDir, { recursive: true });
  const token = newSecret("rsv_op_");
  writeFileSync(file, token + "\n", { mode: 0o600 });
  return token;
}

/**
 * Without RESERVOIR_KEY_SECRET: one generated secret, kept (mode 600) so restarts keep it.
 * Several instances on one Postgres must share one secret: set RESERVOIR_KEY_SECRET on each
 * (start-up refuses a secret other than the one the first instance recorded the fingerprint of).
 */
function generatedKeySecret(dataDir: string): string {
  const file = join(dataDir, "key-secret");
  if (existsSync(file)) return readFileSync(file, "utf8").trim();
  mkdirSync(dataDir, { recursive: true });
  const secret = newSecret("rsv_ks_");
  writeFileSync(file, secret + "\n", { mode: 0o600 });
  return secret;
}

/** The request whose code runs now, for the deadline's "waiting on" labels (waiting-on.ts). */
function asyncScope(): RequestScope {
  const storage = new AsyncLocalStorage<Waits>();
  return { run: (waits, work) => storage.run(waits, work), current: () => storage.getStore() };
}

/** The configuration, or exit 1 naming each variable that does not parse (nothing starts). */
function configOrExit(env: NodeJS.ProcessEnv): Config {
  try {
    return readConfig(env);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    console.error(`reservoir: not starting, the configuration is invalid:\n${error.problems.map((p) => `  ${p}`).join("\n")}`);
    process.exit(1);
  }
}

export async function main(env = process.env): Promise<void> {
  const config = configOrExit(env);
  const scope = asyncScope();
  const crc = await nativeCrc32c();
  if (crc) useNativeCrc32c(crc);
  useNativeUtf8Check(isUtf8);
  const database = await openDatabase(config, counters);
  trackDatabase(database.db, scope);
  await untilDatabaseAnswers("migrations", () => migrate(database.db));
  const receipts = new ReceiptSigner(await untilDatabaseAnswers("the receipt key", () => receiptKey(database.db)));
  const opened = openStore(config);
  const store = trackStore(countingStore(opened.store, counters.store), scope);
  const storeKind = opened.kind;
  const adminToken = config.adminToken ?? generatedAdminToken(config.dataDir);
  const keySecret = keySecretFromText(config.keySecret ?? generatedKeySecret(config.dataDir));
  if (!(await untilDatabaseAnswers("the key secret", () => agreesOnKeySecret(database.db, secretFingerprint(keySecret))))) {
    console.error(
      "reservoir: not starting: this database's API keys were derived from another key secret; set RESERVOIR_KEY_SECRET to the one the other instances use",
    );
    process.exit(1);
  }
  const metrics = createInstruments(promRegistry(), counters.store);
  const shared = createSharedState(
    { lingerMs: config.lingerMs, maxBytes: config.maxBatchBytes, commitDeadlineMs: commitDeadlineMs(config), allocate: unzeroedArray },
    metrics,
    config.readCacheBytes,
  );
  trackShared(shared, scope);
  const guard = createAddressGuard(config.webhookAllowPrivate, nodeResolver);
  const transport = nodeTransport(guard);
  const dispatcher = new Dispatcher({ transport, observer: metrics.delivery });
  const dispatch = await startBackgroundDispatch({ db: database.db, store, cache: shared.cache }, dispatcher, {
    intervalMs: config.dispatchIntervalMs,
    listen: database.listen,
  });
  // Transactions past their timeout: rolled back, or checked back (functions/transactions/).
  const transactionSweep = startTransactionSweep(
    { db: database.db, receipts, transport, now: () => Date.now(), committed: (topicIds) => dispatch.push.wake(topicIds) },
    { intervalMs: config.dispatchIntervalMs },
  );
  // Usage upkeep (storage/usage/rollup.ts): the hourly storage sample and the roll-up of deltas,
  // at start and every minute; every instance may run it at once.
  const upkeep = () =>
    void usageUpkeep(database.db).catch((error: unknown) => console.error(`reservoir: usage upkeep failed: ${describeError(error)}`));
  upkeep();
  const upkeepTimer = setInterval(upkeep, USAGE_UPKEEP_MS);
  upkeepTimer.unref();
  const bodies = declaredBodies();
  const runtime: Runtime = {
    ...shared,
    db: database.db,
    store,
    clock: { now: () => Date.now() },
    adminToken,
    keySecret,
    receipts,
    counters,
    pollIntervalMs: 100,
    requestTimeoutMs: config.requestTimeoutMs,
    scope,
    guard,
    push: dispatch.push,
    lifecycle: { graceSeconds: config.gcGraceSeconds, compactionTargetBytes: config.compactionTargetBytes },
    declaredBody: bodies.read,
    releaseBody: bodies.release,
  };
  const maintenance = startMaintenanceTimer({ db: database.db, store, now: () => Date.now() }, runtime.lifecycle, config);
  const app = createApp();
  const listener = getRequestListener(
    (request, { incoming }) => {
      bodies.track(request, incoming);
      return app.fetch(request, runtime);
    },
    {
      hostname: config.host,
      errorHandler: requestError,
    },
  );
  const server = createServer(listener);
  answerParserErrors(server);
  server.listen(config.port, config.host, () => {
    console.log(`Reservoir listening on http://localhost:${config.port}`);
    console.log(`  metadata: ${database.kind}`);
    console.log(`  segments: ${storeKind}`);
    console.log(`  checksums: ${crc ? "native CRC32C" : "CRC32C in JavaScript"}`);
    if (!config.keySecret) {
      console.log(
        `  API key secret: generated, kept in ${join(config.dataDir, "key-secret")} (set RESERVOIR_KEY_SECRET to share one between instances)`,
      );
    }
    if (!config.adminToken) {
      console.log(`  operator token (RESERVOIR_ADMIN_TOKEN was unset; kept in ${join(config.dataDir, "operator-token")}): ${adminToken}`);
    }
  });
  // Idle keep-alive connections are closed by the client first: Node's default of 5 s lets a
  // client reuse a connection the server is closing that instant (ECONNRESET/EPIPE on the
  // client, seen in the benchmark on a loaded machine); 65 s also outlasts the 60 s idle
  // timeout of common load balancers. Clients that honour the Keep-Alive hint stop at 64 s.
  server.keepAliveTimeout = 65_000;
  const shutdown = () => {
    server.close();
    clearInterval(upkeepTimer);
    maintenance.stop();
    // Deliveries in flight get to finish and be settled (bounded by their timeouts).
    void Promise.all([dispatch.stop(), transactionSweep.stop()])
      .then(() => transport.close())
      .finally(() => database.close().finally(() => process.exit(0)));
  };
  process.once("SIGINT", shutdown);
  process.once("SIGTERM", shutdown);
}

await main();
