/**
 * The transaction sweep in a long-lived process (the Node server): one pass every `intervalMs`,
 * never two at once in this process (other instances are kept apart by the claims in SQL).
 */
import { describeError } from "../../storage/errors.ts";
import { sweepTransactions, type TransactionSweepIo } from "./check-back.ts";

export function startTransactionSweep(io: TransactionSweepIo, options: { intervalMs: number; log?: (m: string) => void }) {
  const log = options.log ?? ((m: string) => console.error(m));
  let running: Promise<void> | null = null;
  const timer = setInterval(() => {
    if (running) return;
    running = sweepTransactions(io)
      .then(() => undefined)
      .catch((error: unknown) => log(`reservoir: the transaction sweep failed: ${describeError(error)}`))
      .finally(() => {
        running = null;
      });
  }, options.intervalMs);
  return {
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
