// Contract target (a): the Node server in its embedded default — no DATABASE_URL (PGlite under
// the data dir), no S3_* (segments in a folder under the data dir), a fresh temp data dir.
import { contractSuite } from "./contract.ts";
import { startNodeServer } from "../support/node-server.ts";

contractSuite("the Node server, embedded (PGlite + folder store)", async () => {
  const server = await startNodeServer({ label: "node-embedded" });
  return {
    baseUrl: server.baseUrl,
    adminToken: server.adminToken,
    logs: () => server.logs(),
    stop: () => server.stop(),
  };
});
