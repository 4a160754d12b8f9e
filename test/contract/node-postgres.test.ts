// Contract target (b): the Node server on a fresh Postgres database and a real S3-compatible
// server (s3rver), both on 127.0.0.1. One stack for both suites of this file (the HTTP contract
// and the consumer groups).
import { afterAll } from "vitest";
import { contractSuite } from "./contract.ts";
import { groupsSuite, shareTarget } from "./groups.ts";
import { startNodeServer } from "../support/node-server.ts";
import { freshDatabase } from "../support/postgres.ts";
import { startS3 } from "../support/s3.ts";

const name = "the Node server on Postgres + S3 (s3rver)";
const shared = shareTarget(async () => {
  const db = await freshDatabase();
  const s3 = await startS3().catch(async (err) => {
    await db.drop();
    throw err;
  });
  try {
    const server = await startNodeServer({ label: "node-postgres", env: { DATABASE_URL: db.url, ...s3.env } });
    return {
      baseUrl: server.baseUrl,
      adminToken: server.adminToken,
    logs: () => server.logs(),
      async stop() {
        try {
          await server.stop();
        } finally {
          await s3.stop().catch(() => {});
          await db.drop();
        }
      },
    };
  } catch (err) {
    await s3.stop().catch(() => {});
    await db.drop().catch(() => {});
    throw err;
  }
});
afterAll(() => shared.stop(), 60_000);

contractSuite(name, shared.start);
groupsSuite(name, shared.start);
