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
  // Wake-ups that arrive while the search for ready subscriptions runs are merged into the
  // next search: one query at a time, however many commits notify.
  let searching = false;
  let pending: Set<number> | "all" | null = null;
  const run = (topicIds?: number[]) => {
    if (!topicIds) pending = "all";
    else if (pending !== "all") {
      const merged: Set<number> = pending ?? new Set();
      for (const id of topicIds) merged.add(id);
      pending = merged;
    }
    if (searching) return;
    searching = true;
    void (async () => {
      try {
        while (pending) {
          const wanted: Set<number> | "all" = pending;
          pending = null;
          await dispatcher.start(io, { topicIds: wanted === "all" ? undefined : [...wanted], until: Number.POSITIVE_INFINITY });
        }
      } catch (error) {
        log(`reservoir: searching for subscriptions to dispatch failed: ${error instanceof Error ? error.message : String(error)}`);
      } finally {
        // Whatever happened, the next wake-up (a commit, the sweep) searches again.
        searching = false;
      }
    })();
  };
  // Without LISTEN (a database that allows one connection, like PGlite over a socket), the
  // commits of this instance still wake it, and the sweep finds the rest.
  let unlisten: (() => Promise<void>) | undefined;
  try {
    unlisten = await options.listen?.(COMMIT_CHANNEL, (payload) => {
      const ids = payload.split(",").map(Number).filter(Number.isSafeInteger);
      if (ids.length > 0) run(ids);
    });
  } catch (error) {
    log(
      `reservoir: LISTEN ${COMMIT_CHANNEL} failed (${String(error)}); webhooks are woken by this instance's commits and a sweep every ${options.intervalMs} ms`,
    );
  }
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
      committed: (topicIds) => (unlisten ? undefined : run(topicIds)),
      stats: dispatcher.stats,
    },
    async stop() {
      clearInterval(timer);
      await unlisten?.();
      await dispatcher.stop();
    },
  };
}
