// Contract target (a): the Node server in its embedded default — no DATABASE_URL (PGlite under
// the data dir), no S3_* (segments in a folder under the data dir), a fresh temp data dir.
// One server for the HTTP contract, the consumer groups and the webhook subscriptions; the
// address guard needs a second one, started without the allow-list the first one has.
import { afterAll } from "vitest";
import { fuzzSuite, malformedHttpSuite } from "./fuzz.ts";
import { produceBatchesSuite } from "./produce-batches.ts";
import { contractSuite } from "./contract.ts";
import { lifecycleSuite } from "./lifecycle.ts";
import { groupsSuite, shareTarget } from "./groups.ts";
import { addressGuardSuite, subscriptionsSuite } from "./subscriptions.ts";
import { transactionsSuite } from "./transactions.ts";
import { tenancySuite } from "./tenancy.ts";
import { metricsSuite } from "./metrics.ts";
import { listingsSuite } from "./listings.ts";
import { sqsSuite } from "./sqs.ts";
import { startNodeServer } from "../support/node-server.ts";

/**
 * The webhook sink listens on 127.0.0.1, which the address guard refuses unless allowed; a short
 * dispatch interval so that what only the sweep picks up (delayed messages) is not waited for long.
 */
const webhookEnv = { RESERVOIR_WEBHOOK_ALLOW_PRIVATE: "127.0.0.1", RESERVOIR_DISPATCH_INTERVAL_MS: "200" };

const name = "the Node server, embedded (PGlite + folder store)";
const shared = shareTarget(async () => {
  const server = await startNodeServer({ label: "node-embedded", env: webhookEnv });
  return {
    baseUrl: server.baseUrl,
    adminToken: server.adminToken,
    logs: () => server.logs(),
    stop: () => server.stop(),
  };
});
afterAll(() => shared.stop(), 60_000);

contractSuite(name, shared.start);
produceBatchesSuite(name, shared.start);
groupsSuite(name, shared.start);
subscriptionsSuite(name, shared.start);
transactionsSuite(name, shared.start);
tenancySuite(name, shared.start);
metricsSuite(name, shared.start);
listingsSuite(name, shared.start);
sqsSuite(name, shared.start);
fuzzSuite(name, shared.start);
malformedHttpSuite(name, shared.start);
// Last: a maintenance pass acts on every tenant of the target.
lifecycleSuite(name, shared.start);
addressGuardSuite(name, async () => {
  const server = await startNodeServer({ label: "node-embedded-guard" });
  return { baseUrl: server.baseUrl, adminToken: server.adminToken, logs: () => server.logs(), stop: () => server.stop() };
});
