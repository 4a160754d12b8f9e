/**
 * The fixture of the Postgres fault regressions: a fresh database, the fault proxy in front of
 * it, a Node server that reaches the database only through the proxy, a tenant, and one topic.
 * Tests then stall, cut or refuse the server's connections with `proxy` and watch the server.
 */
import { api, assertStatus, type Api } from "../../support/http.ts";
import { startNodeServer, type NodeServer } from "../../support/node-server.ts";
import { freshDatabase, type FreshDatabase } from "../../support/postgres.ts";
import { startPgFaultProxy, type PgFaultProxy } from "./pg-fault-proxy.ts";

export interface ServerBehindPgProxy {
  db: FreshDatabase;
  proxy: PgFaultProxy;
  server: NodeServer;
  /** The tenant's client. */
  client: Api;
  close(): Promise<void>;
}

export async function startServerBehindPgProxy(options: {
  label: string;
  /** The server's environment besides DATABASE_URL. */
  env?: Record<string, string>;
  /** Topic `t`'s settings. */
  topic?: { partitions?: number };
}): Promise<ServerBehindPgProxy> {
  const db = await freshDatabase();
  const proxy = await startPgFaultProxy(db.url);
  const server = await startNodeServer({ env: { DATABASE_URL: proxy.url, ...options.env }, label: options.label });
  const close = async () => {
    await server.stop().catch(() => {});
    await proxy.close().catch(() => {});
    await db.drop().catch(() => {});
  };
  try {
    const tenant = await api(server.baseUrl, server.adminToken).post("/v1/admin/tenants", { name: options.label });
    assertStatus(tenant, 201);
    const client = api(server.baseUrl, tenant.body.apiKey);
    assertStatus(await client.put("/v1/topics/t", options.topic ?? {}), 201);
    return { db, proxy, server, client, close };
  } catch (error) {
    await close();
    throw error;
  }
}
