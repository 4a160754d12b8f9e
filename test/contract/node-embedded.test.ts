// Contract target (a): the Node server in its embedded default — no DATABASE_URL (PGlite under
// the data dir), no S3_* (segments in a folder under the data dir), a fresh temp data dir.
// One server for both suites of this file (the HTTP contract and the consumer groups).
import { afterAll } from "vitest";
import { contractSuite } from "./contract.ts";
import { groupsSuite, shareTarget } from "./groups.ts";
import { startNodeServer } from "../support/node-server.ts";

const name = "the Node server, embedded (PGlite + folder store)";
const shared = shareTarget(async () => {
  const server = await startNodeServer({ label: "node-embedded" });
  return {
    baseUrl: server.baseUrl,
    adminToken: server.adminToken,
    logs: () => server.logs(),
    stop: () => server.stop(),
  };
});
afterAll(() => shared.stop(), 60_000);

contractSuite(name, shared.start);
groupsSuite(name, shared.start);
