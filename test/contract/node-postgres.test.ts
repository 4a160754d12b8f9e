// Contract target (b): the Node server on a fresh Postgres database and a real S3-compatible
// server (s3rver), both on 127.0.0.1. One stack for the HTTP contract, the consumer groups and
// the webhook subscriptions. The address guard is not run here: it is the same code on every
// Node server whatever the storage, and node-embedded.test.ts runs it on a server of its own.
import { afterAll } from "vitest";
import { fuzzSuite, malformedHttpSuite } from "./fuzz.ts";
import { produceBatchesSuite } from "./produce-batches.ts";
import { contractSuite } from "./contract.ts";
import { lifecycleSuite } from "./lifecycle.ts";
import { groupsSuite, shareTarget } from "./groups.ts";
import { subscriptionsSuite } from "./subscriptions.ts";
import { transactionsSuite } from "./transactions.ts";
import { tenancySuite } from "./tenancy.ts";
import { metricsSuite } from "./metrics.ts";
import { listingsSuite } from "./listings.ts";
import { sqsSuite } from "./sqs.ts";
import { startNodeServer } from "../support/node-server.ts";
import { onPostgresAndS3 } from "../support/postgres-s3.ts";

const name = "the Node server on Postgres + S3 (s3rver)";
const shared = shareTarget(() =>
  onPostgresAndS3((env) =>
    startNodeServer({
      label: "node-postgres",
      // The webhook sink listens on 127.0.0.1, which the address guard refuses unless allowed.
      env: { ...env, RESERVOIR_WEBHOOK_ALLOW_PRIVATE: "127.0.0.1", RESERVOIR_DISPATCH_INTERVAL_MS: "200" },
    }),
  ),
);
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
