// A fresh Postgres database per test file, migrated (cloned from a template) unless asked empty.
//
// Template: the first caller of a run migrates one database, `reservoir_tmpl_<hash of the
// embedded migrations>`, marks it a template, and every test file then gets
// `CREATE DATABASE x TEMPLATE reservoir_tmpl_<hash>`: a file copy, instead of a migration per
// file (bench/test-db-setup.ts measures both). Building and cloning hold one advisory lock, so
// parallel test files (and parallel runs sharing the server) build it once and never clone one
// half-built; a template whose hash is stale is dropped when the new one is built. A database
// from a template still gets the server's start-up migrate, which then finds nothing to apply.
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

import { createHash, randomBytes } from "node:crypto";
import { drizzle } from "drizzle-orm/postgres-js";
import postgres from "postgres";
import { migrations } from "../../infra/migrations.generated.ts";
import type { Database } from "../../storage/metadata/db.ts";
import { migrate } from "../../storage/metadata/migrate.ts";

export const LOCAL_POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/postgres";

/** Pool size the server must use against the PGlite-socket fallback (also in its URL as `?max=1`). */
export const pgMaxConnections = 1;
export const PGLITE_SOCKET_MAX_CONNECTIONS = pgMaxConnections;

export type DatabaseKind = "postgres" | "pglite-socket";

export interface FreshDatabase {
  /** Connection URL of the new database (migrated, unless `migrated: false` was asked). */
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
  /** With the committed migrations applied (default), or empty (to test migrating itself). */
  migrated?: boolean;
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

/** Any stable number: serialises building and cloning the template across test files and runs. */
const TEMPLATE_LOCK = 7_264_190_332;
const TEMPLATE_PREFIX = "reservoir_tmpl_";

/** The template's name: it changes whenever the migrations do, so a stale one is never cloned. */
export function templateName(): string {
  return TEMPLATE_PREFIX + createHash("sha256").update(JSON.stringify(migrations)).digest("hex").slice(0, 16);
}

type Admin = ReturnType<typeof adminClient>;

/** Under TEMPLATE_LOCK: makes sure the migrated template exists (building it if not). */
async function ensureTemplate(admin: Admin, serverUrl: string, template: string): Promise<void> {
  const [found] = await admin<{ datistemplate: boolean }[]>`select datistemplate from pg_database where datname = ${template}`;
  if (found?.datistemplate) return;
  // Absent, or left half-built by a run that died before marking it: (re)build it.
  await admin.unsafe(`drop database if exists "${template}" with (force)`);
  await admin.unsafe(`create database "${template}"`);
  const sql = postgres(withDatabase(serverUrl, template), { max: 1, onnotice: () => {} });
  try {
    await migrate(drizzle(sql) as unknown as Database);
  } finally {
    await sql.end({ timeout: 5 });
  }
  // Marked only once complete: the mark is what "ready to clone" means above.
  await admin.unsafe(`alter database "${template}" is_template true`);
  // Templates of older migrations: nobody clones them any more.
  const stale = await admin<{ datname: string }[]>`
    select datname from pg_database where datname like ${`${TEMPLATE_PREFIX}%`} and datname <> ${template}`;
  for (const { datname } of stale) {
    await admin.unsafe(`alter database "${datname}" is_template false`);
    await admin.unsafe(`drop database if exists "${datname}" with (force)`);
  }
}

async function createOnServer(serverUrl: string, migrated: boolean): Promise<FreshDatabase> {
  const name = `reservoir_test_${randomBytes(6).toString("hex")}`;
  const admin = adminClient(serverUrl);
  try {
    if (migrated) {
      const template = templateName();
      // The admin client has one connection, so the session lock covers every statement here.
      await withTimeout(admin`select pg_advisory_lock(${TEMPLATE_LOCK})`, 60_000, "lock the test template");
      try {
        await withTimeout(ensureTemplate(admin, serverUrl, template), 60_000, `build the template ${template}`);
        await withTimeout(admin.unsafe(`create database "${name}" template "${template}"`), 30_000, `create database ${name}`);
      } finally {
        await admin`select pg_advisory_unlock(${TEMPLATE_LOCK})`;
      }
    } else {
      await withTimeout(admin.unsafe(`create database "${name}"`), 30_000, `create database ${name}`);
    }
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
        // WITH (FORCE) terminates the connections still open on it, atomically (Postgres 13+).
        await sql.unsafe(`drop database if exists "${name}" with (force)`);
      } finally {
        await sql.end({ timeout: 2 }).catch(() => {});
      }
    },
  };
}

async function startPgliteSocket(migrated: boolean): Promise<FreshDatabase> {
  const { PGlite } = await import("@electric-sql/pglite");
  const { PGLiteSocketServer } = await import("@electric-sql/pglite-socket");
  const { drizzle: drizzlePglite } = await import("drizzle-orm/pglite");
  const db = await PGlite.create();
  // No templates in a one-database PGlite: it is migrated in process, before it is served.
  if (migrated) await migrate(drizzlePglite(db) as unknown as Database);
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
  const migrated = opts.migrated ?? true;
  if (force) return startPgliteSocket(migrated);
  const explicit = process.env.TEST_DATABASE_URL;
  if (explicit) {
    if (!(await postgresReachable(explicit, 5_000))) {
      throw new Error(`TEST_DATABASE_URL is set but no Postgres answers there (${explicit.replace(/:[^:@/]*@/, ":***@")})`);
    }
    return createOnServer(explicit, migrated);
  }
  if (await postgresReachable(LOCAL_POSTGRES_URL)) return createOnServer(LOCAL_POSTGRES_URL, migrated);
  return startPgliteSocket(migrated);
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
