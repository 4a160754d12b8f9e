/** What one instance (a Node process, a Worker isolate) shares across its requests. */
import { Batcher, type BatcherOptions } from "../storage/log/batcher.ts";
import { BatchCache } from "../storage/log/batch-cache.ts";
import { CommitSignal } from "../storage/log/commit-signal.ts";
import { LeaseTurns } from "../storage/groups/lease-turns.ts";
import { StickyPartitioner } from "../storage/log/partitioner.ts";
import { TopicCache } from "../storage/metadata/topic-cache.ts";
import { TtlCache } from "../storage/metadata/ttl-cache.ts";
import { KnownKeys } from "../storage/tenancy/known-keys.ts";
import type { Group } from "../storage/groups/groups.ts";
import type { QueueRow } from "../storage/sqs/queues.ts";
import type { StoredBytesCache } from "../storage/usage/quota.ts";
import type { Instruments } from "./metrics/instruments.ts";

export interface SharedState {
  batcher: Batcher;
  cache: BatchCache;
  commits: CommitSignal;
  /** Turns for lease transactions, per group (storage/groups/lease-turns.ts). */
  leaseTurns: LeaseTurns;
  partitioner: StickyPartitioner;
  topics: TopicCache;
  /** Consumer groups by topic id and name, for receive and settle (1 s, like topics). */
  groups: TtlCache<Group>;
  /** SQS queues' attributes and tags by topic id (functions/sqs/queue.ts; 1 s, like topics). */
  sqsQueues: TtlCache<QueueRow>;
  /** Tenants' stored bytes for the storage quota (storage/usage/quota.ts; 1 s). */
  storedBytes: StoredBytesCache;
  /** This instance's metrics (GET /metrics). */
  metrics: Instruments;
  /** Keys seen to pass a key check here, for produces that leave theirs to the flush commit. */
  knownKeys: KnownKeys;
}

/**
 * `readCacheBytes`: the read cache's bound (RESERVOIR_READ_CACHE_BYTES; default 256 MiB).
 * `shareLoads`: whether one request may wait on I/O another started (a GET, see BatchCache; a
 * lease transaction, see LeaseTurns).
 */
export function createSharedState(
  batcher: Partial<BatcherOptions>,
  metrics: Instruments,
  readCacheBytes?: number,
  shareLoads = true,
): SharedState {
  const cache = new BatchCache(readCacheBytes, { shareLoads });
  const b = new Batcher({ ...batcher, cache, observer: metrics.flush });
  return {
    batcher: b,
    cache,
    commits: new CommitSignal(b),
    leaseTurns: new LeaseTurns(shareLoads),
    partitioner: new StickyPartitioner(),
    topics: new TopicCache(),
    groups: new TtlCache(),
    storedBytes: new TtlCache(),
    metrics,
    sqsQueues: new TtlCache(),
    knownKeys: new KnownKeys(),
  };
}
