/**
 * Dispatch in a long-lived process (the Node server): pumps stay up, woken by commits
 * (Postgres LISTEN on what the produce commit NOTIFYs), by the app (a subscription created,
 * resumed or replayed), by their own retry timers, and by a sweep every `intervalMs` for
 * whatever nobody announced (another instance's retries, leases of a crashed instance).
 */
import type { Push } from "../runtime.ts";
import { pruneAttempts } from "../../storage/subscriptions/delivery-log.ts";
import type { Dispatcher, DispatchIo } from "./dispatcher.ts";

/** The channel the produce commit notifies, with a comma-separated list of topic ids. */
export const COMMIT_CHANNEL = "reservoir_commit";
const PRUNE_EVERY_MS = 10 * 60 * 1000;

export type Listen = (channel: string, onPayload: (payload: string) => void) => Promise<() => Promise<void>>;

export interface BackgroundDispatch {
  push: Push;
  stop(): Promise<void>;
}

export async function startBackgroundDispatch(
  io: DispatchIo,
  dispatcher: Dispatcher,
  options: { intervalMs: number; listen?: Listen; now?: () => number; log?: (m: string) => void },
): Promise<BackgroundDispatch> {
  const now = options.now ?? (() => Date.now());
  const log = options.log ?? ((m: string) => console.error(m));
  const run = (topicIds?: number[]) => void dispatcher.run(io, { topicIds, until: Number.POSITIVE_INFINITY });
  const unlisten = await options.listen?.(COMMIT_CHANNEL, (payload) => {
    const ids = payload.split(",").map(Number).filter(Number.isSafeInteger);
    if (ids.length > 0) run(ids);
  });
  let lastPrune = 0;
  const timer = setInterval(() => {
    run();
    if (now() - lastPrune > PRUNE_EVERY_MS) {
      lastPrune = now();
      pruneAttempts(io.db, now()).catch((e: unknown) => log(`reservoir: pruning the delivery log failed: ${String(e)}`));
    }
  }, options.intervalMs);
  return {
    push: {
      wake: (topicIds) => run(topicIds),
      // Without LISTEN (a database that cannot), the commit itself is the only signal.
      committed: (topicIds) => (unlisten ? undefined : run(topicIds)),
    },
    async stop() {
      clearInterval(timer);
      await unlisten?.();
      await dispatcher.stop();
    },
  };
}
