/**
 * Start-up's database work (migrations, the deployment's shared keys), retried while the
 * database does not answer: an instance restarted during a database outage or a dropped
 * connection waits for it, within a bound, instead of exiting. The reliability campaign's long
 * mode found three instances, restarted while Postgres faults were active, gone for good this
 * way (docs/reliability.md, anomaly 5).
 */
import { ReservoirError } from "../../../storage/errors.ts";

export async function untilDatabaseAnswers<T>(what: string, work: () => Promise<T>, boundMs = 120_000): Promise<T> {
  const until = Date.now() + boundMs;
  for (let pause = 100; ; pause = Math.min(pause * 2, 5_000)) {
    try {
      return await work();
    } catch (error) {
      const unavailable = error instanceof ReservoirError && error.code === "service_unavailable";
      if (!unavailable || Date.now() + pause > until) throw error;
      console.error(`reservoir: ${what}: the database did not answer (${error.message}); trying again in ${pause} ms`);
      await new Promise((resolve) => setTimeout(resolve, pause));
    }
  }
}
