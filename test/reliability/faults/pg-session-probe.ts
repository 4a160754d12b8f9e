/**
 * A bare postgres.js client behind the Postgres fault proxy, with the driver loaded as the Node
 * server loads it (functions/runtime/node/postgres-write-guard.ts), in a process of its own: the
 * guard is a module load hook, and it must be in place before the driver's first import.
 *
 *   node --import tsx test/reliability/faults/pg-session-probe.ts <database url> <loop seconds> [seed]
 *
 * Prints one JSON line (ProbeReport). Every answer is checked against what was sent
 * (`select $1::int`), so an answer paired with another statement shows as `wrong`.
 */
import { guardPostgresWrites } from "../../../functions/runtime/node/postgres-write-guard.ts";

export interface ProbeReport {
  /** The transaction cut mid-statement, then the same connection's next transaction and query. */
  cut: { firstTransaction: string; nextTransaction: string; nextQuery: string };
  /** The loop under drops: statements answered right, failed (retryable), answered wrong, unanswered. */
  loop: { seconds: number; seed: number; drops: number; ok: number; failed: number; wrong: number; hung: number; wrongs: string[] };
  /** After the faults: does the pool answer, and which of its sessions wait in the middle of a statement? */
  afterFaults: string;
  stuckSessions: string[];
}

const [databaseUrl, secondsArg, seedArg] = process.argv.slice(2);
guardPostgresWrites();
// Imported after the guard: the proxy's module imports the driver too.
const { default: postgres } = await import("postgres");
const { startPgFaultProxy } = await import("./pg-fault-proxy.ts");
const proxy = await startPgFaultProxy(databaseUrl);
const app = `pg-session-probe-${process.pid}`;
const admin = postgres(databaseUrl, { max: 1, fetch_types: false, onnotice: () => {} });
/** A statement with no answer in this long counts as hung (nothing here takes more than a few ms). */
const HANG_MS = 8_000;
const bounded = <T>(p: Promise<T>): Promise<T | "hung"> => {
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<"hung">((resolve) => (timer = setTimeout(() => resolve("hung"), HANG_MS)));
  return Promise.race([p.finally(() => clearTimeout(timer)), hung]);
};
const outcome = (p: Promise<unknown>) =>
  bounded(
    p.then(
      (v) => JSON.stringify(v),
      (e: { code?: string; message: string }) => `rejected ${e.code ?? e.message}`,
    ),
  );

// 1. One connection: a transaction's statement is held by a stalled link and the link is cut.
//    The statement fails, and begin() sends its ROLLBACK on the connection it had; the pool then
//    opens the same Connection object again for the next transaction.
const one = postgres(proxy.url, { max: 1, fetch_types: false, onnotice: () => {}, connection: { application_name: app } });
await one`select 1`;
const firstTransaction = outcome(
  one.begin(async (tx) => {
    await tx`select ${0}::int as n`;
    proxy.stall(60_000); // the next statement is sent into the stalled link
    return tx`select ${1}::int as n`;
  }),
);
await proxy.whenHoldingServerBytes();
proxy.dropAll();
proxy.stall(0);
const cut = {
  firstTransaction: String(await firstTransaction),
  nextTransaction: String(await outcome(one.begin(async (tx) => tx`select ${42}::int as n`))),
  nextQuery: String(await outcome(one`select ${7}::int as n`)),
};
await one.end({ timeout: 1 });

// 2. A pool of 6 and 10 workers, plain statements and two-statement transactions, every
//    connection cut every 150–600 ms (seeded).
const seconds = Number(secondsArg ?? 10);
let seed = Number(seedArg ?? 1);
const rand = () => {
  seed = (seed * 1103515245 + 12345) & 0x7fffffff;
  return seed / 0x7fffffff;
};
const loop = { seconds, seed, drops: 0, ok: 0, failed: 0, wrong: 0, hung: 0, wrongs: [] as string[] };
const POOL = 6;
const sql = postgres(proxy.url, { max: POOL, fetch_types: false, onnotice: () => {}, connection: { application_name: app } });
const until = Date.now() + seconds * 1000;
const faults = (async () => {
  while (Date.now() < until) {
    await new Promise((resolve) => setTimeout(resolve, 150 + rand() * 450));
    loop.drops++;
    proxy.dropAll();
  }
})();
const check = (got: unknown, want: number, what: string) => {
  if (got === want) return;
  loop.wrong++;
  if (loop.wrongs.length < 5) loop.wrongs.push(`${what}: sent ${want}, got ${JSON.stringify(got)}`);
};
async function worker(w: number) {
  for (let i = 0; Date.now() < until; i++) {
    const n = w * 1_000_000 + i;
    const run =
      i % 3 === 0
        ? sql`select ${n}::int as n`.then((r) => check(r[0]?.n, n, "plain"))
        : sql.begin(async (tx) => {
            check((await tx`select ${n}::int as n`)[0]?.n, n, "transaction, first");
            await new Promise((resolve) => setTimeout(resolve, rand() * 5));
            check((await tx`select ${n + 1}::int as m, 'x' as s`)[0]?.m, n + 1, "transaction, second");
          });
    const r = await bounded(
      run.then(
        () => "ok" as const,
        () => "failed" as const,
      ),
    );
    loop[r]++;
  }
}
await Promise.all([faults, ...Array.from({ length: 10 }, (_, w) => worker(w))]);
// The last cut may have closed connections whose close the pool has not seen yet: a statement
// after it may fail as CONNECTION_CLOSED on each of them (never hang), so it is tried once per
// connection of the pool and once more.
let afterFaults = "";
for (let attempt = 0; attempt <= POOL && !afterFaults.startsWith("["); attempt++)
  afterFaults = String(await outcome(sql`select ${5}::int as n`));
const stuck = await admin<{ query: string }[]>`
  SELECT query FROM pg_stat_activity WHERE application_name = ${app} AND state = 'active' AND wait_event = 'ClientRead'`;
const report: ProbeReport = { cut, loop, afterFaults, stuckSessions: stuck.map((s) => s.query) };
console.log(JSON.stringify(report));
await proxy.close();
process.exit(0);
