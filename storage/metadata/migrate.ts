import { sql } from "drizzle-orm";
import { migrations } from "../../infra/migrations.generated.ts";
import type { Database } from "./db.ts";
import { rows } from "./db.ts";

/** Any stable number: serialises concurrent start-ups of several instances. */
const MIGRATION_LOCK = 7_264_190_331;

/** Applies the committed drizzle-kit migrations that this database has not seen, in order. */
export async function migrate(db: Database): Promise<string[]> {
  return db.transaction(async (tx) => {
    await tx.execute(sql`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK})`);
    await tx.execute(
      sql`CREATE TABLE IF NOT EXISTS reservoir_migrations (tag text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`,
    );
    const done = new Set((await rows<{ tag: string }>(tx, sql`SELECT tag FROM reservoir_migrations`)).map((r) => r.tag));
    const applied: string[] = [];
    for (const migration of migrations) {
      if (done.has(migration.tag)) continue;
      for (const statement of migration.statements) await tx.execute(sql.raw(statement));
      await tx.execute(sql`INSERT INTO reservoir_migrations (tag) VALUES (${migration.tag})`);
      applied.push(migration.tag);
    }
    return applied;
  });
}
