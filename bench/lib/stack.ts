/** Starts what a benchmark measures: s3rver (own process), a fresh Postgres database, the Node server. */
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { freshDatabase } from "../../test/support/postgres.ts";
import { startNodeServer, repoRoot, type NodeServer } from "../../test/support/node-server.ts";

export interface Stack {
  server: NodeServer;
  stop(): Promise<void>;
}

/**
 * BENCH_S3_NODE_ARGS: more flags for s3rver's Node, space-separated (e.g. `--cpu-prof
 * --cpu-prof-dir=DIR` to see what the object store's stand-in spends per PUT).
 */
export async function startS3Process(): Promise<{ env: Record<string, string>; stop(): Promise<void> }> {
  const extra = process.env.BENCH_S3_NODE_ARGS?.split(" ").filter(Boolean) ?? [];
  const child = spawn(process.execPath, [...extra, "--import", "tsx", "bench/s3-server.ts"], {
    cwd: repoRoot,
    stdio: ["ignore", "pipe", "inherit"],
  });
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once("line", resolve);
    child.once("exit", (code) => reject(new Error(`s3rver exited with ${code}`)));
  });
  return {
    env: JSON.parse(line),
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) {
          resolve();
          return;
        }
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}

export async function startStack(
  kind: "postgres-s3" | "embedded",
  extraEnv: Record<string, string> = {},
  nodeArgs: string[] = [],
  /** Run the server from this source tree (e.g. an older commit's, for a same-run comparison). */
  root?: string,
): Promise<Stack> {
  const env = { DATABASE_POOL_MAX: "20", ...extraEnv }; // the production default, not the tests' small pool
  if (kind === "embedded") {
    const server = await startNodeServer({ env, label: "bench-embedded", nodeArgs, root });
    return { server, stop: () => server.stop() };
  }
  const s3 = await startS3Process();
  // Another tree migrates its own schema: it gets an empty database, not this tree's template.
  const db = await freshDatabase({ migrated: root === undefined });
  // For per-statement costs: BENCH_PG_DB_SETTINGS="log_statement_stats=on" (or auto_explain's
  // settings) applies to this database's sessions only, written to the Postgres server's log;
  // BENCH_KEEP_DB=1 keeps the database afterwards, to EXPLAIN statements on its data.
  if (process.env.BENCH_PG_DB_SETTINGS) {
    const { default: postgres } = await import("postgres");
    const admin = postgres(db.url, { max: 1, onnotice: () => {} });
    const name = new URL(db.url).pathname.slice(1);
    for (const kv of process.env.BENCH_PG_DB_SETTINGS.split(";")) {
      const [k, v] = kv.split("=");
      await admin.unsafe(`alter database "${name}" set ${k} = '${v}'`);
    }
    await admin.end();
    console.error(`bench database: ${name}`);
  }
  const server = await startNodeServer({ env: { ...s3.env, DATABASE_URL: db.url, ...env }, label: "bench-s3", nodeArgs, root });
  return {
    server,
    async stop() {
      await server.stop();
      if (!process.env.BENCH_KEEP_DB) await db.drop();
      await s3.stop();
    },
  };
}
