/**
 * A server (the Node server or the Worker) on a fresh Postgres database whose object store is
 * s3rver behind a stalling proxy (stalling-proxy.ts), so that a test can hang the store and let
 * it go again; stop() tears all of it down.
 */
import { freshDatabase, type FreshDatabase } from "./postgres.ts";
import { startS3, type S3Server } from "./s3.ts";
import { startStallingProxy, type StallingProxy } from "./stalling-proxy.ts";

export interface StallingStack<Server> {
  db: FreshDatabase;
  s3: S3Server;
  proxy: StallingProxy;
  server: Server;
  stop(): Promise<void>;
}

/** `start` gets DATABASE_URL and the S3 settings (S3_ENDPOINT the proxy's), over `env`. */
export async function stallingStack<Server extends { stop(): Promise<void> }>(
  start: (env: Record<string, string>) => Promise<Server>,
  env: Record<string, string> = {},
): Promise<StallingStack<Server>> {
  const db = await freshDatabase();
  const s3 = await startS3().catch(async (error: unknown) => {
    await db.drop();
    throw error;
  });
  const proxy = await startStallingProxy(s3.env.S3_ENDPOINT);
  const server = await start({ ...env, DATABASE_URL: db.url, ...s3.env, S3_ENDPOINT: proxy.url }).catch(async (error: unknown) => {
    await proxy.close();
    await s3.stop();
    await db.drop();
    throw error;
  });
  return {
    db,
    s3,
    proxy,
    server,
    async stop() {
      await server.stop();
      await proxy.close();
      await s3.stop();
      await db.drop();
    },
  };
}
