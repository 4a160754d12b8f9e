/**
 * Wakes long-polling readers when a flush of this instance commits to their partition. Other
 * instances' commits are seen by polling (the wait below is bounded), so this only cuts latency.
 */
import type { Batcher, CommittedFlush } from "./batcher.ts";

export class CommitSignal {
  private readonly waiting = new Map<string, Set<() => void>>();
  /** Per topic, per group: its receivers waiting for a commit, longest-waiting first. */
  private readonly receivers = new Map<number, Map<number, (() => void)[]>>();

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

  /**
   * Resolves when this receiver of the group is woken (one per commit to the topic, see wake;
   * or by wakeNext), or after `ms`. Waking every receiver of a group for every flush made them
   * all run a receive for what one of them could take: at a steady rate with four consumers,
   * three empty receives (and their statements) per flush.
   */
  waitReceiver(topicId: number, groupId: number, ms: number): Promise<void> {
    return new Promise((resolve) => {
      const groups = this.receivers.get(topicId) ?? new Map<number, (() => void)[]>();
      this.receivers.set(topicId, groups);
      const queue = groups.get(groupId) ?? [];
      groups.set(groupId, queue);
      const done = () => {
        clearTimeout(timer);
        const at = queue.indexOf(done);
        if (at >= 0) queue.splice(at, 1);
        if (queue.length === 0 && groups.get(groupId) === queue) groups.delete(groupId);
        if (groups.size === 0 && this.receivers.get(topicId) === groups) this.receivers.delete(topicId);
        resolve();
      };
      const timer = setTimeout(done, ms);
      queue.push(done);
    });
  }

  /** Wakes the group's longest-waiting receiver: one that received a full batch leaves more behind. */
  wakeNext(topicId: number, groupId: number): void {
    this.receivers.get(topicId)?.get(groupId)?.[0]?.();
  }

  /**
   * Wakes the readers of the flush's partitions, and one receiver of each group of its topics
   * (also called for a transaction's commit).
   */
  wake(flush: Pick<CommittedFlush, "highWatermarks">): void {
    const topics = new Set<number>();
    for (const hw of flush.highWatermarks) {
      topics.add(hw.topicId);
      const set = this.waiting.get(`${hw.topicId}:${hw.partition}`);
      if (set) for (const done of [...set]) done();
    }
    for (const topicId of topics) {
      for (const groupId of [...(this.receivers.get(topicId)?.keys() ?? [])]) this.wakeNext(topicId, groupId);
    }
  }
}
