// A fresh, empty Postgres database per test file.
//
// Order: TEST_DATABASE_URL (if set; an unreachable one is an error, never silently replaced),
// else the local server postgres://postgres@127.0.0.1:5432/postgres if it answers quickly,
// else an in-memory PGlite served over the wire protocol by @electric-sql/pglite-socket.
// RESERVOIR_TEST_FORCE_PGLITE=1 forces the PGlite fallback.
//
// PGlite-socket limits (measured against @electric-sql/pglite-socket 0.2.17, see the report):
// - PGlite is one single-user backend. The socket server accepts `maxConnections` clients
//   (default 1; a client beyond that gets "Too many connections" and postgres.js then hangs),
//   and serialises their protocol messages on the one backend. Messages of different
//   connections interleave outside explicit transactions, so with several connections
//   extended-protocol queries clash (observed: `portal "" does not exist` with 4-8 connections).
//   => exactly one client connection: pool `max: 1` (the URL carries `?max=1`, which postgres.js
//   honours unless the code passes `max` explicitly).
// - LISTEN/NOTIFY does not work across connections: a notification is written to the connection
//   whose statement raised it, not to the listening one. `sql.listen()` also needs a second
//   connection, which is refused. The server must not depend on LISTEN to be correct here.
// - Sessions are shared (SET, temp tables, advisory locks belong to the single backend).
// - Two server processes cannot share one PGlite-socket database (that needs >1 connection).

import { randomBytes } from "node:crypto";
import postgres from "postgres";

export const LOCAL_POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/postgres";

/** Pool size the server must use against the PGlite-socket fallback (also in its URL as `?max=1`). */
export const pgMaxConnections = 1;
export const PGLITE_SOCKET_MAX_CONNECTIONS = pgMaxConnections;

export type DatabaseKind = "postgres" | "pglite-socket";

export interface FreshDatabase {
  /** Connection URL of the new, empty database. */
  url: string;
  kind: DatabaseKind;
  /** Maximum client connections the database accepts at once (undefined: as the server allows). */
  maxConnections: number | undefined;
  /** Whether LISTEN/NOTIFY works across connections (false for PGlite-socket). */
  supportsListenNotify: boolean;
  /** Whether several server processes may share this database at once. */
  supportsMultipleClients: boolean;
  /** Terminates its connections and drops it (or stops the PGlite-socket server). */
  drop(): Promise<void>;
}

export interface FreshDatabaseOptions {
  /** Force the PGlite-socket fallback (also: env RESERVOIR_TEST_FORCE_PGLITE=1). */
  forcePglite?: boolean;
}

function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = "/" + encodeURIComponent(database);
  return u.toString();
}

async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: timed out after ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

function adminClient(url: string) {
  return postgres(url, { max: 1, connect_timeout: 3, idle_timeout: 1, onnotice: () => {}, prepare: false });
}

/** Whether a Postgres server answers at `url` within `timeoutMs`. */
export async function postgresReachable(url: string, timeoutMs = 2_500): Promise<boolean> {
  const sql = adminClient(url);
  try {
    await withTimeout(sql`select 1`, timeoutMs, `connect to ${url}`);
    return true;
  } catch {
    return false;
  } finally {
    await sql.end({ timeout: 1 }).catch(() => {});
  }
}

async function createOnServer(serverUrl: string): Promise<FreshDatabase> {
  const name = `reservoir_test_${randomBytes(6).toString("hex")}`;
  const admin = adminClient(serverUrl);
  try {
    await withTimeout(admin.unsafe(`create database "${name}"`), 30_000, `create database ${name}`);
  } finally {
    await admin.end({ timeout: 2 }).catch(() => {});
  }
  let dropped = false;
  return {
    url: withDatabase(serverUrl, name),
    kind: "postgres",
    maxConnections: undefined,
    supportsListenNotify: true,
    supportsMultipleClients: true,
    async drop() {
      if (dropped) return;
      dropped = true;
      const sql = adminClient(serverUrl);
      try {
        for (let attempt = 1; ; attempt++) {
          try {
            await sql`select pg_terminate_backend(pid) from pg_stat_activity where datname = ${name} and pid <> pg_backend_pid()`;
            await sql.unsafe(`drop database if exists "${name}"`);
            return;
          } catch (err) {
            // "database is being accessed by other users": a connection raced in; try again.
            if (attempt >= 5) throw err;
            await new Promise((r) => setTimeout(r, 200 * attempt));
          }
        }
      } finally {
        await sql.end({ timeout: 2 }).catch(() => {});
      }
    },
  };
}

async function startPgliteSocket(): Promise<FreshDatabase> {
  const { PGlite } = await import("@electric-sql/pglite");
  const { PGLiteSocketServer } = await import("@electric-sql/pglite-socket");
  const db = await PGlite.create();
  const server = new PGLiteSocketServer({ db, host: "127.0.0.1", port: 0, maxConnections: pgMaxConnections });
  await server.start();
  const conn = server.getServerConn(); // "127.0.0.1:<port>" once listening
  let stopped = false;
  return {
    url: `postgres://postgres@${conn}/postgres?max=${pgMaxConnections}`,
    kind: "pglite-socket",
    maxConnections: pgMaxConnections,
    supportsListenNotify: false,
    supportsMultipleClients: false,
    async drop() {
      if (stopped) return;
      stopped = true;
      await withTimeout(server.stop(), 5_000, "stop pglite-socket").catch(() => {});
      await db.close().catch(() => {});
    },
  };
}

export async function freshDatabase(opts: FreshDatabaseOptions = {}): Promise<FreshDatabase> {
  const force = opts.forcePglite ?? /^(1|true|yes)$/i.test(process.env.RESERVOIR_TEST_FORCE_PGLITE ?? "");
  if (force) return startPgliteSocket();
  const explicit = process.env.TEST_DATABASE_URL;
  if (explicit) {
    if (!(await postgresReachable(explicit, 5_000))) {
      throw new Error(`TEST_DATABASE_URL is set but no Postgres answers there (${explicit.replace(/:[^:@/]*@/, ":***@")})`);
    }
    return createOnServer(explicit);
  }
  if (await postgresReachable(LOCAL_POSTGRES_URL)) return createOnServer(LOCAL_POSTGRES_URL);
  return startPgliteSocket();
}

/** Fails with a clear message when the database cannot serve several server processes at once. */
export function requireMultipleClients(db: FreshDatabase, why: string): void {
  if (!db.supportsMultipleClients) {
    throw new Error(
      `${why} needs a real Postgres server (got the ${db.kind} fallback, which accepts one connection at a time). ` +
        `Start Postgres on 127.0.0.1:5432 or set TEST_DATABASE_URL.`,
    );
  }
}
