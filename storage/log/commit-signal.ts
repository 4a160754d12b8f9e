/**
 * Wakes long-polling readers when a flush of this instance commits to their partition. Other
 * instances' commits are seen by polling (the wait below is bounded), so this only cuts latency.
 */
import type { Batcher, CommittedFlush } from "./batcher.ts";

export class CommitSignal {
  private readonly waiting = new Map<string, Set<() => void>>();

  constructor(batcher: Batcher) {
    batcher.onCommit((flush) => this.wake(flush));
  }

  /** Resolves on the next local commit to the partition, or after `ms`. */
  wait(topicId: number, partition: number, ms: number): Promise<void> {
    const k = `${topicId}:${partition}`;
    return new Promise((resolve) => {
      const set = this.waiting.get(k) ?? new Set();
      this.waiting.set(k, set);
      const done = () => {
        clearTimeout(timer);
        set.delete(done);
        if (set.size === 0 && this.waiting.get(k) === set) this.waiting.delete(k);
        resolve();
      };
      const timer = setTimeout(done, ms);
      set.add(done);
    });
  }

  /** Resolves on the next local commit to any partition of the topic, or after `ms`. */
  waitTopic(topicId: number, ms: number): Promise<void> {
    return this.wait(topicId, -1, ms);
  }

  /** Wakes the readers of the flush's partitions (also called for a transaction's commit). */
  wake(flush: Pick<CommittedFlush, "highWatermarks">): void {
    for (const hw of flush.highWatermarks) {
      for (const k of [`${hw.topicId}:${hw.partition}`, `${hw.topicId}:-1`]) {
        const set = this.waiting.get(k);
        if (set) for (const done of [...set]) done();
      }
    }
  }
}
