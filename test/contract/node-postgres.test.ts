// Contract target (b): the Node server on a fresh Postgres database and a real S3-compatible
// server (s3rver), both on 127.0.0.1. One stack for both suites of this file (the HTTP contract
// and the consumer groups).
import { afterAll } from "vitest";
import { contractSuite } from "./contract.ts";
import { groupsSuite, shareTarget } from "./groups.ts";
import { startNodeServer } from "../support/node-server.ts";
import { onPostgresAndS3 } from "../support/postgres-s3.ts";

const name = "the Node server on Postgres + S3 (s3rver)";
const shared = shareTarget(() =>
  onPostgresAndS3((env) => startNodeServer({ label: "node-postgres", env })),
);
afterAll(() => shared.stop(), 60_000);

contractSuite(name, shared.start);
groupsSuite(name, shared.start);
