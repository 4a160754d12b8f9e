/**
 * Turns for a group's lease transactions within one instance: at most as many at once as the
 * topic has partitions. A lease locks the partitions it takes and (with more than one) skips
 * those another holds, so receivers beyond that number could only find every partition held and
 * come back empty, each empty attempt a transaction of its own (with one partition and four
 * consumers, about one empty transaction per lease: docs/benchmarks.md). With one partition the
 * one-statement lease now waits for the lock instead; the turn still keeps the general way's
 * transactions from skipping it (without turns, the same run measured no difference). Waiting
 * here costs no statement. Only where one
 * request may wait on another's I/O (a Node process; not a Worker isolate, where a cancelled
 * request would never hand its turn on).
 */
interface Turns {
  running: number;
  /** Longest-waiting first; a turn handed on keeps `running` as it is. */
  waiting: (() => void)[];
}

export class LeaseTurns {
  private readonly groups = new Map<number, Turns>();

  constructor(private readonly enabled = true) {}

  /** Resolves once fewer than `limit` lease transactions of the group run here; call the release after yours. */
  async take(groupId: number, limit: number): Promise<() => void> {
    if (!this.enabled) return () => {};
    let turns = this.groups.get(groupId);
    if (!turns) {
      turns = { running: 0, waiting: [] };
      this.groups.set(groupId, turns);
    }
    const mine = turns;
    if (mine.running >= Math.max(1, limit)) await new Promise<void>((resolve) => mine.waiting.push(resolve));
    else mine.running++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = mine.waiting.shift();
      if (next) return next();
      mine.running--;
      if (mine.running === 0 && this.groups.get(groupId) === mine) this.groups.delete(groupId);
    };
  }
}
