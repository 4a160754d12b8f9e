// `npm run db:check`: fails (exit 1) when the drizzle schema (storage/metadata/schema.ts) and
// the committed migrations (infra/migrations) disagree, or when the copy embedded for the
// runtimes (infra/migrations.generated.ts) is stale. It runs `drizzle-kit generate` on a copy
// of the migrations in a temporary folder, so the working tree is never touched: a schema
// change without its migration makes drizzle-kit write a new one there.
// The fix for either failure is `npm run db:generate`. CI runs this in .ci/run.
import { execFileSync } from "node:child_process";
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { renderEmbeddedMigrations } from "./embed-migrations.mjs";

const root = fileURLToPath(new URL("..", import.meta.url));
const migrationsDir = join(root, "infra", "migrations");

/** What is out of date, as sentences; empty when schema, migrations and embedded copy agree. */
export function checkMigrations() {
  const problems = [];
  const work = mkdtempSync(join(tmpdir(), "reservoir-db-check-"));
  try {
    cpSync(migrationsDir, join(work, "migrations"), { recursive: true });
    const config = { dialect: "postgresql", schema: relative(work, join(root, "storage/metadata/schema.ts")), out: "./migrations" };
    writeFileSync(join(work, "drizzle.config.ts"), `export default ${JSON.stringify(config)};\n`);
    const before = readdirSync(join(work, "migrations")).sort();
    let output;
    try {
      output = execFileSync(join(root, "node_modules", ".bin", "drizzle-kit"), ["generate", "--config", "drizzle.config.ts"], {
        cwd: work,
        encoding: "utf8",
        stdio: ["ignore", "pipe", "pipe"],
      });
    } catch (error) {
      problems.push(`drizzle-kit generate failed:\n${error.stdout ?? ""}${error.stderr ?? error.message}`);
      return problems;
    }
    const added = readdirSync(join(work, "migrations")).filter((f) => !before.includes(f));
    if (added.length > 0 || !output.includes("No schema changes")) {
      const sql = added.filter((f) => f.endsWith(".sql")).map((f) => readFileSync(join(work, "migrations", f), "utf8"));
      problems.push(
        `the schema has changes no committed migration holds (drizzle-kit would write ${added.join(", ") || "a migration"}):\n${sql.join("\n")}`,
      );
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  const embedded = readFileSync(join(root, "infra", "migrations.generated.ts"), "utf8");
  if (embedded !== renderEmbeddedMigrations(pathToFileURL(migrationsDir + "/"))) {
    problems.push("infra/migrations.generated.ts is stale: it does not embed the committed migrations");
  }
  return problems;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const problems = checkMigrations();
  if (problems.length > 0) {
    for (const p of problems) console.error(`db:check: ${p}`);
    console.error("db:check: run `npm run db:generate` and commit the result");
    process.exit(1);
  }
  console.log("db:check: the schema, the committed migrations and their embedded copy agree");
}
