// The deployment secret API keys are derived from (docs/sqs.md): generated and kept with mode
// 600 when RESERVOIR_KEY_SECRET is unset, the same after a restart (keys made before still sign
// SigV4 requests), and one secret per database: an instance with another one refuses to start.
import { statSync } from "node:fs";
import { join } from "node:path";
import { ListQueuesCommand, SQSClient } from "@aws-sdk/client-sqs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { api, assertStatus } from "../support/http.ts";
import { startNodeServer, type NodeServer } from "../support/node-server.ts";
import { freshDatabase, type FreshDatabase } from "../support/postgres.ts";

describe("the API key secret on Node", () => {
  let db: FreshDatabase;
  let server: NodeServer | undefined;

  beforeAll(async () => {
    db = await freshDatabase();
  }, 120_000);

  afterAll(async () => {
    await server?.stop();
    await db?.drop();
  }, 60_000);

  it("is generated (mode 600) when unset, survives a restart, and another secret on the same database is refused at start", async () => {
    // "" counts as unset: the server generates one in its data dir.
    server = await startNodeServer({ label: "key-secret", env: { DATABASE_URL: db.url, RESERVOIR_KEY_SECRET: "" } });
    const file = join(server.dataDir, "key-secret");
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const created = await api(server.baseUrl, server.adminToken).post("/v1/admin/tenants", { name: "k" });
    assertStatus(created, 201);
    const sqs = () =>
      new SQSClient({
        endpoint: `${server!.baseUrl}/sqs`,
        region: "us-east-1",
        credentials: { accessKeyId: created.body.keyId, secretAccessKey: created.body.apiKey },
        maxAttempts: 1,
      });
    expect((await sqs().send(new ListQueuesCommand({}))).$metadata.httpStatusCode).toBe(200);
    await server.restart();
    expect((await sqs().send(new ListQueuesCommand({}))).$metadata.httpStatusCode).toBe(200);

    const other = startNodeServer({
      label: "key-secret-other",
      env: { DATABASE_URL: db.url, RESERVOIR_KEY_SECRET: "another-secret-of-at-least-32-characters" },
    });
    await expect(other).rejects.toThrow(/derived from another key secret/);
  }, 180_000);
});
