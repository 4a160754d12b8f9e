/**
 * A Node server on a fresh Postgres database with one tenant and its topic `t`, for tests of one
 * server's behaviour through HTTP; stop() tears the server and the database down.
 */
import { api, type Api } from "./http.ts";
import { startNodeServer, type NodeServer } from "./node-server.ts";
import { freshDatabase } from "./postgres.ts";

export interface TenantServer {
  server: NodeServer;
  /** The operator's client. */
  admin: Api;
  /** The tenant's client, and its key. */
  client: Api;
  apiKey: string;
  stop(): Promise<void>;
}

export async function serverWithTenant(opts: { label: string; env?: Record<string, string>; partitions?: number }): Promise<TenantServer> {
  const db = await freshDatabase();
  let server: NodeServer | undefined;
  try {
    server = await startNodeServer({ env: { DATABASE_URL: db.url, ...opts.env }, label: opts.label });
    const admin = api(server.baseUrl, server.adminToken);
    const apiKey = (await admin.post("/v1/admin/tenants", { name: opts.label })).body.apiKey as string;
    const client = api(server.baseUrl, apiKey);
    await client.put("/v1/topics/t", { partitions: opts.partitions ?? 1 });
    const started = server;
    return {
      server,
      admin,
      client,
      apiKey,
      async stop() {
        try {
          await started.stop();
        } finally {
          await db.drop();
        }
      },
    };
  } catch (error) {
    await server?.stop().catch(() => {});
    await db.drop().catch(() => {});
    throw error;
  }
}
