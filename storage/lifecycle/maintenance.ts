/**
 * One maintenance pass (API.md "Storage lifecycle (operator)"): retention, then collection of
 * segments no row names any more (deleted topics' among them), then orphans. Run by the Node
 * timer, the Worker's Cron Trigger and POST /v1/admin/maintenance, one at a time across every
 * instance (lease.ts). Retention and compaction come first: what they unreference is marked
 * by the same pass and deleted by a pass at least the grace period later.
 */
import type { Database } from "../metadata/db.ts";
import type { ObjectStore } from "../objects/object-store.ts";
import { collectUnreferenced, type Collected } from "./collect.ts";
import { compactSmallSegments, type CompactionReport } from "./compact.ts";
import { collectOrphans } from "./orphans.ts";
import { applyRetention, type RetentionReport } from "./retention.ts";
import { releaseMaintenanceLease, renewMaintenanceLease, takeMaintenanceLease } from "./lease.ts";

export interface MaintenanceReport {
  retention: RetentionReport;
  compaction: CompactionReport;
  collected: Collected;
  orphans: Collected;
}

export interface MaintenanceIo {
  db: Database;
  store: ObjectStore;
  now: () => number;
}

export interface MaintenanceOptions {
  graceSeconds: number;
  /** Compaction merges segments under half of this into objects of about this size. */
  compactionTargetBytes: number;
  /** Retention by time is judged as of this instant (ms); default now. The grace period is not. */
  asOf?: number;
}

/** How long a lease lasts unrenewed: how long a pass killed midway blocks the next one. */
export const LEASE_MS = 15_000;
const RENEW_EVERY_MS = 5_000;

/** The pass itself; the caller holds the lease. */
export async function maintenancePass(io: MaintenanceIo, options: MaintenanceOptions): Promise<MaintenanceReport> {
  const retention = await applyRetention(io.db, options.asOf ?? io.now());
  const compaction = await compactSmallSegments(io.db, io.store, {
    targetBytes: options.compactionTargetBytes,
    graceSeconds: options.graceSeconds,
    now: io.now,
  });
  const collected = await collectUnreferenced(io.db, io.store, { graceSeconds: options.graceSeconds });
  const orphans = await collectOrphans(io.db, io.store, { graceSeconds: options.graceSeconds, now: io.now() });
  return { retention, compaction, collected, orphans };
}

/** Runs a pass if no other instance is running one; null if one is. */
export async function maintainIfFree(io: MaintenanceIo, options: MaintenanceOptions): Promise<MaintenanceReport | null> {
  const holder = crypto.randomUUID();
  if (!(await takeMaintenanceLease(io.db, holder, LEASE_MS))) return null;
  const renewal = setInterval(() => {
    renewMaintenanceLease(io.db, holder, LEASE_MS).catch(() => {
      // The next renewal tries again; a lost lease only risks an overlapping pass (lease.ts).
    });
  }, RENEW_EVERY_MS);
  try {
    return await maintenancePass(io, options);
  } finally {
    clearInterval(renewal);
    await releaseMaintenanceLease(io.db, holder);
  }
}
