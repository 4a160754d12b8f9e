/**
 * Wakes long-polling readers when a flush of this instance commits to their partition. Other
 * instances' commits are seen by polling (the wait below is bounded), so this only cuts latency.
 */
import type { Batcher, CommittedFlush } from "./batcher.ts";

export class CommitSignal {
  private readonly waiting = new Map<string, Set<() => void>>();
  /** Per topic, per group: its receivers waiting for a commit, longest-waiting first. */
  private readonly receivers = new Map<number, Map<number, (() => void)[]>>();
  /** Per topic: how many local commits touched it (the order of `wake` calls). */
  private readonly commitsTo = new Map<number, number>();
  /**
   * Per topic, per group: the last of those commits some receiver of the group is known to see:
   * one that began a receive after it, or one woken by it. A commit above this has been seen by
   * no receiver of the group (all were busy when it landed): the next to wait takes it at once.
   */
  private readonly taken = new Map<number, Map<number, number>>();
  /** Waiting receivers whose receive found every partition with messages held by others. */
  private readonly blocked = new WeakSet<() => void>();
  /** Per topic: local nacks, seeks and the like (`undrain`), which make messages leasable without a commit. */
  private readonly returnsTo = new Map<number, number>();
  /** Per "topic:group": the last lease known to have left nothing to take (see `leased`). */
  private readonly drainedBy = new Map<string, { returns: number; at: number }>();

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
   * A receiver of the group is about to look: every local commit to the topic so far is visible
   * to it. Call before the receive's statements, then `waitReceiver` if it found nothing.
   * Returns the topic's count of undrains so far, for `leased`.
   */
  looking(topicId: number, groupId: number): number {
    const seen = this.commitsTo.get(topicId) ?? 0;
    const groups = this.taken.get(topicId) ?? new Map<number, number>();
    this.taken.set(topicId, groups);
    const taken = groups.get(groupId);
    if (taken === undefined || taken < seen) groups.set(groupId, seen);
    return this.returnsTo.get(topicId) ?? 0;
  }

  /**
   * A lease of the group began at `at`, after `looking` gave `returns`. `drained`: it took every
   * message there was to take (or found none), with none due again, delayed or held by others.
   * Until something brings messages that no receiver of the group has been woken for (a local
   * commit while none waited, `undrain`), or time does (leases timing out, delayed messages
   * coming due, other instances' commits), a new lease of the group would find nothing.
   */
  leased(topicId: number, groupId: number, returns: number, at: number, drained: boolean): void {
    const k = `${topicId}:${groupId}`;
    if (drained && (this.returnsTo.get(topicId) ?? 0) === returns) this.drainedBy.set(k, { returns, at });
    else this.drainedBy.delete(k);
  }

  /**
   * Whether a new receive of the group would find nothing to lease, as far as this instance
   * knows: a lease found the group drained at most `withinMs` before `now`, nothing was undrained
   * since, and every local commit since woke a receiver of the group (which leases what it brought).
   */
  stillDrained(topicId: number, groupId: number, now: number, withinMs: number): boolean {
    const k = `${topicId}:${groupId}`;
    const last = this.drainedBy.get(k);
    if (!last) return false;
    const commits = this.commitsTo.get(topicId) ?? 0;
    const seen = this.taken.get(topicId)?.get(groupId) ?? 0;
    if (now - last.at <= withinMs && (this.returnsTo.get(topicId) ?? 0) === last.returns && seen >= commits) return true;
    this.drainedBy.delete(k);
    return false;
  }

  /**
   * Messages of the topic may be leasable again without a commit (a local nack, a seek, a
   * redrive): no drain recorded before this holds (`stillDrained` compares the count).
   */
  undrain(topicId: number): void {
    this.returnsTo.set(topicId, (this.returnsTo.get(topicId) ?? 0) + 1);
  }

  /**
   * Resolves when this receiver of the group is woken (one per commit to the topic, see wake;
   * or by wakeNext), or after `ms`. Waking every receiver of a group for every flush made them
   * all run a receive for what one of them could take: at a steady rate with four consumers,
   * three empty receives (and their statements) per flush. A commit that landed while every
   * receiver of the group was busy (so woke none) resolves the first to wait at once: its
   * receive may have begun before that commit, and waiting would leave the commit's messages
   * until a later commit or the poll (see `looking`).
   */
  waitReceiver(topicId: number, groupId: number, ms: number, blocked = false): Promise<void> {
    const last = this.commitsTo.get(topicId) ?? 0;
    const taken = this.taken.get(topicId);
    if ((taken?.get(groupId) ?? last) < last) {
      taken!.set(groupId, last);
      return Promise.resolve();
    }
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
      if (blocked) this.blocked.add(done);
      queue.push(done);
    });
  }

  /**
   * Wakes the group's longest-waiting receiver among those that found the partitions with
   * messages held (`waitReceiver(…, blocked)`): a settle of this instance has just let go of the
   * positions it held. Receivers waiting for new messages are left alone.
   */
  wakeBlocked(topicId: number, groupId: number): void {
    this.receivers
      .get(topicId)
      ?.get(groupId)
      ?.find((done) => this.blocked.has(done))?.();
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
      const seq = (this.commitsTo.get(topicId) ?? 0) + 1;
      this.commitsTo.set(topicId, seq);
      // Woken receivers see this commit: their groups are marked as having taken it.
      const groups = this.receivers.get(topicId);
      const taken = this.taken.get(topicId);
      if (groups && taken) for (const groupId of groups.keys()) taken.set(groupId, seq);
      for (const groupId of [...(groups?.keys() ?? [])]) this.wakeNext(topicId, groupId);
    }
  }
}
