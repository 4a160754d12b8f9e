/**
 * A fresh Postgres database and a fresh s3rver, with a server started on them; stop() tears
 * all three down (also when the server fails to start).
 */
import { freshDatabase, requireMultipleClients } from "./postgres.ts";
import { startS3 } from "./s3.ts";

export interface StartedServer {
  baseUrl: string;
  adminToken: string;
  logs(): string;
  stop(): Promise<void>;
}

export async function onPostgresAndS3(
  start: (env: Record<string, string>) => Promise<StartedServer>,
  options: { multipleClients?: string } = {},
): Promise<StartedServer> {
  const db = await freshDatabase();
  try {
    if (options.multipleClients) requireMultipleClients(db, options.multipleClients);
  } catch (err) {
    await db.drop();
    throw err;
  }
  const s3 = await startS3().catch(async (err) => {
    await db.drop();
    throw err;
  });
  try {
    const server = await start({ DATABASE_URL: db.url, ...s3.env });
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
}
