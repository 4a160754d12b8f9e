/**
 * test/support/postgres.ts: every test file gets a database of its own, cloned from one
 * migrated template; parallel files clone at once without clashing.
 */
import { readdirSync } from "node:fs";
import { join } from "node:path";
import postgres from "postgres";
import { afterAll, describe, expect, it } from "vitest";
import { repoRoot } from "../support/node-server.ts";
import { type FreshDatabase, freshDatabase } from "../support/postgres.ts";

const tags = readdirSync(join(repoRoot, "infra/migrations"))
  .filter((f) => f.endsWith(".sql"))
  .map((f) => f.replace(/\.sql$/, ""))
  .sort();

describe("the per-file test database", () => {
  const databases: FreshDatabase[] = [];
  afterAll(async () => {
    for (const d of databases) await d.drop();
  });

  it("is migrated, separate from its siblings, even when created concurrently", async () => {
    databases.push(...(await Promise.all([freshDatabase(), freshDatabase(), freshDatabase()])));
    expect(new Set(databases.map((d) => d.url)).size).toBe(3);
    for (const [i, d] of databases.entries()) {
      const sql = postgres(d.url, { max: 1, onnotice: () => {} });
      try {
        const applied = await sql<{ tag: string }[]>`select tag from reservoir_migrations order by tag`;
        expect(applied.map((r) => r.tag)).toEqual(tags);
        await sql`insert into tenants (id, name) values (${`t${i}`}, ${`tenant ${i}`})`;
        expect((await sql`select id from tenants`).map((r) => r.id)).toEqual([`t${i}`]);
      } finally {
        await sql.end();
      }
    }
  });

  it("is empty when asked (to test migrating itself)", async () => {
    const d = await freshDatabase({ migrated: false });
    databases.push(d);
    const sql = postgres(d.url, { max: 1, onnotice: () => {} });
    try {
      const tables = await sql`select table_name from information_schema.tables where table_schema = 'public'`;
      expect(tables).toHaveLength(0);
    } finally {
      await sql.end();
    }
  });
});
