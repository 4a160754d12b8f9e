/**
 * The produce path after parsing, shared by /v1's produce route (JSON, ndjson or batches) and
 * the SQS endpoint's SendMessage(Batch): the tenant's byte and storage quotas, then the batcher,
 * then the wake-up of the topic's webhook subscriptions.
 */
import type { Context } from "hono";
import type { ProduceEntry } from "../../storage/log/batcher.ts";
import type { EncodedRecords } from "../../storage/log/encoded-records.ts";
import type { Topic } from "../../storage/metadata/topics.ts";
import { admitProduce } from "../../storage/usage/quota.ts";
import type { AppEnv } from "../runtime.ts";

/** Takes the entries' bytes from the tenant's quotas (429 quota_exceeded when they are spent). */
export function admitEntries(c: Context<AppEnv>, entries: ProduceEntry[]): Promise<void> {
  return admitBytes(c, () => entries.reduce((n, e) => n + (e.usageBytes ?? 0), 0));
}

/** The same for records produced in batches. */
export function admitEncoded(c: Context<AppEnv>, parts: EncodedRecords[]): Promise<void> {
  return admitBytes(c, () => parts.reduce((n, part) => part.usageBytes.reduce((m, b) => m + b, n), 0));
}

async function admitBytes(c: Context<AppEnv>, metered: () => number): Promise<void> {
  const principal = c.get("principal");
  // The key check took the declared body length from the bytes bucket; a chunked body pays here.
  const quotas = principal.bytesCharged ? { ...principal.quotas, bytesPerSecond: undefined } : principal.quotas;
  if (quotas.bytesPerSecond !== undefined || quotas.storageBytes !== undefined) {
    await admitProduce(c.env.db, principal.tenantId, quotas, metered(), c.env.storedBytes);
  }
}

/**
 * Commits admitted entries of one topic; their offsets in entry order. A produce whose key check
 * was left to its commit (functions/auth.ts) is checked there: KeyCheckRefused if its key no longer holds.
 */
export async function commitEntries(c: Context<AppEnv>, topic: Topic, entries: ProduceEntry[]) {
  const { tenantId, deferred } = c.get("principal");
  const offsets = await c.env.batcher.submit(tenantId, entries, { db: c.env.db, store: c.env.store }, deferred);
  c.env.push.committed([topic.id]);
  return offsets;
}

/** Commits admitted records produced in batches; one range of offsets per part, in part order. */
export async function commitEncoded(c: Context<AppEnv>, topic: Topic, parts: EncodedRecords[]) {
  const { tenantId, deferred } = c.get("principal");
  const ranges = await c.env.batcher.submitEncoded(tenantId, parts, { db: c.env.db, store: c.env.store }, deferred);
  c.env.push.committed([topic.id]);
  return ranges;
}
