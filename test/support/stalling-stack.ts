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
  // Torn down in the reverse order, once, also when a later part fails to start.
  const started: (() => Promise<void>)[] = [];
  const stop = async () => {
    for (const teardown of started.splice(0).reverse()) await teardown();
  };
  try {
    const db = await freshDatabase();
    started.push(() => db.drop());
    const s3 = await startS3();
    started.push(() => s3.stop());
    const proxy = await startStallingProxy(s3.env.S3_ENDPOINT);
    started.push(() => proxy.close());
    const server = await start({ ...env, DATABASE_URL: db.url, ...s3.env, S3_ENDPOINT: proxy.url });
    started.push(() => server.stop());
    return { db, s3, proxy, server, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
