/**
 * CI fails when the drizzle schema and the committed migrations disagree, or when the
 * migrations embedded for the runtimes are stale; and the migrations apply on real Postgres.
 */
import { execFileSync } from "node:child_process";
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { drizzle } from "drizzle-orm/postgres-js";
import postgres from "postgres";
import { afterAll, describe, expect, it } from "vitest";
import { migrate } from "../../storage/metadata/migrate.ts";
import type { Database } from "../../storage/metadata/db.ts";
import { freshDatabase } from "../support/postgres.ts";

const root = resolve(import.meta.dirname, "../..");
const migrationsDir = join(root, "infra/migrations");

describe("migrations", () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  it("drizzle-kit generates nothing new from the schema (schema and migrations agree)", () => {
    const work = mkdtempSync(join(tmpdir(), "reservoir-migrations-"));
    cleanups.push(() => rmSync(work, { recursive: true, force: true }));
    cpSync(migrationsDir, join(work, "migrations"), { recursive: true });
    writeFileSync(
      join(work, "drizzle.config.ts"),
      `export default ${JSON.stringify({
        dialect: "postgresql",
        schema: relative(work, join(root, "storage/metadata/schema.ts")),
        out: "./migrations",
      })};\n`,
    );
    const before = readdirSync(join(work, "migrations")).sort();
    const output = execFileSync(join(root, "node_modules/.bin/drizzle-kit"), ["generate", "--config", "drizzle.config.ts"], {
      cwd: work,
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
    });
    expect(output).toContain("No schema changes");
    const after = readdirSync(join(work, "migrations")).sort();
    expect(after, `drizzle-kit produced a migration; run npm run db:generate\n${output}`).toEqual(before);
  });

  it("the embedded copy equals the committed migrations", async () => {
    const { renderEmbeddedMigrations } = await import(pathToFileURL(join(root, "infra/embed-migrations.mjs")).href);
    const expected = renderEmbeddedMigrations(pathToFileURL(migrationsDir + "/"));
    expect(readFileSync(join(root, "infra/migrations.generated.ts"), "utf8")).toBe(expected);
  });

  it("apply on a fresh Postgres database, and again as a no-op (concurrent start-ups)", async () => {
    const database = await freshDatabase({ migrated: false });
    cleanups.push(() => database.drop());
    const sql = postgres(database.url, { max: 4, onnotice: () => {} });
    cleanups.push(() => sql.end());
    const db = drizzle(sql) as unknown as Database;
    const results = await Promise.all([migrate(db), migrate(db), migrate(db)]);
    expect(results.flat().sort()).toEqual(
      readdirSync(migrationsDir)
        .filter((f) => f.endsWith(".sql"))
        .map((f) => f.replace(/\.sql$/, ""))
        .sort(),
    );
    expect(await migrate(db)).toEqual([]);
    const tables = await sql`SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1`;
    expect(tables.map((t) => t.table_name)).toEqual(
      expect.arrayContaining(["api_keys", "idempotency_keys", "partitions", "segment_index", "segments", "tenants", "topics"]),
    );
  });
});
