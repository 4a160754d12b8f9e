/**
 * What a test file waits for before its server can serve: a fresh database from
 * test/support/postgres.ts plus the start-up migrate the server runs on it. Compares the two
 * ways, interleaved so that the machine's load hits both alike: an empty database migrated
 * (as before the template) and a clone of the migrated template (a no-op migrate).
 * `npx tsx bench/test-db-setup.ts [runs]` (default 8) prints the median of each part.
 */
import { drizzle } from "drizzle-orm/postgres-js";
import postgres from "postgres";
import type { Database } from "../storage/metadata/db.ts";
import { migrate } from "../storage/metadata/migrate.ts";
import { freshDatabase } from "../test/support/postgres.ts";

const runs = Number(process.argv[2] ?? 8);
type Times = { create: number[]; migrate: number[]; total: number[] };
const modes: Record<"empty + migrate" | "template clone", Times> = {
  "empty + migrate": { create: [], migrate: [], total: [] },
  "template clone": { create: [], migrate: [], total: [] },
};

async function once(migrated: boolean, into: Times): Promise<void> {
  const started = performance.now();
  const database = await freshDatabase({ migrated });
  const created = performance.now();
  const sql = postgres(database.url, { max: 1, onnotice: () => {} });
  await migrate(drizzle(sql) as unknown as Database);
  await sql.end();
  const done = performance.now();
  into.create.push(created - started);
  into.migrate.push(done - created);
  into.total.push(done - started);
  await database.drop();
}

await once(true, { create: [], migrate: [], total: [] }); // builds the template if absent: not a per-file cost
for (let i = 0; i < runs; i++) {
  await once(false, modes["empty + migrate"]);
  await once(true, modes["template clone"]);
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)].toFixed(0);
for (const [mode, t] of Object.entries(modes)) {
  console.log(`${mode.padEnd(16)} median ms: create ${median(t.create)}, migrate ${median(t.migrate)}, total ${median(t.total)}`);
}
