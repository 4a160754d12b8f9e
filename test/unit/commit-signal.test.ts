/**
 * CommitSignal: one waiting receiver of a group is woken per local commit to its topic, and a
 * commit that landed while every receiver was busy (woke nobody) is not lost: the first receiver
 * to wait afterwards goes again at once (issue 15: its receive may have begun before the commit,
 * and its messages waited for the next commit or the poll).
 */
import { describe, expect, it } from "vitest";
import { Batcher } from "../../storage/log/batcher.ts";
import { CommitSignal } from "../../storage/log/commit-signal.ts";

const TOPIC = 7;
const GROUP = 3;
const FOREVER = 60_000;
const commitTo = (signal: CommitSignal, topicId = TOPIC) => signal.wake({ highWatermarks: [{ topicId, partition: 0, next: 1 }] });

/** Whether each promise has settled once pending callbacks have run (no timers involved). */
async function settled(...promises: Promise<unknown>[]): Promise<boolean[]> {
  const done = promises.map(() => false);
  promises.forEach((p, i) => void p.then(() => (done[i] = true)));
  await new Promise((resolve) => setImmediate(resolve));
  return done;
}

describe("CommitSignal's receivers", () => {
  it("wakes one waiting receiver of the group per commit", async () => {
    const signal = new CommitSignal(new Batcher());
    signal.looking(TOPIC, GROUP);
    signal.looking(TOPIC, GROUP);
    const a = signal.waitReceiver(TOPIC, GROUP, FOREVER);
    const b = signal.waitReceiver(TOPIC, GROUP, FOREVER);
    expect(await settled(a, b)).toEqual([false, false]);
    commitTo(signal);
    expect(await settled(a, b)).toEqual([true, false]);
    commitTo(signal);
    expect(await settled(b)).toEqual([true]);
  });

  it("lets the first receiver to wait after a commit that woke nobody go again at once, and only the first", async () => {
    const signal = new CommitSignal(new Batcher());
    // Two receives under way (both began before the commit), none waiting when it lands.
    signal.looking(TOPIC, GROUP);
    signal.looking(TOPIC, GROUP);
    commitTo(signal);
    const first = signal.waitReceiver(TOPIC, GROUP, FOREVER);
    const second = signal.waitReceiver(TOPIC, GROUP, FOREVER);
    expect(await settled(first, second)).toEqual([true, false]);
    commitTo(signal);
    expect(await settled(second)).toEqual([true]);
  });

  it("lets a receiver wait when a receive began after the commit (it saw its messages)", async () => {
    const signal = new CommitSignal(new Batcher());
    commitTo(signal);
    signal.looking(TOPIC, GROUP);
    const waiting = signal.waitReceiver(TOPIC, GROUP, FOREVER);
    expect(await settled(waiting)).toEqual([false]);
    commitTo(signal);
    expect(await settled(waiting)).toEqual([true]);
  });

  it("keeps groups and topics apart", async () => {
    const signal = new CommitSignal(new Batcher());
    signal.looking(TOPIC, GROUP);
    signal.looking(TOPIC, GROUP + 1);
    commitTo(signal, TOPIC + 1); // another topic's commit: nothing missed here
    const a = signal.waitReceiver(TOPIC, GROUP, FOREVER);
    expect(await settled(a)).toEqual([false]);
    commitTo(signal); // woke the waiting receiver of GROUP; GROUP + 1 had none waiting
    expect(await settled(a)).toEqual([true]);
    const other = signal.waitReceiver(TOPIC, GROUP + 1, FOREVER);
    const again = signal.waitReceiver(TOPIC, GROUP, FOREVER);
    expect(await settled(other, again)).toEqual([true, false]);
    commitTo(signal);
    await again;
  });

  it("still ends a wait after its time when nothing commits", async () => {
    const signal = new CommitSignal(new Batcher());
    signal.looking(TOPIC, GROUP);
    const started = performance.now();
    await signal.waitReceiver(TOPIC, GROUP, 20);
    expect(performance.now() - started).toBeGreaterThanOrEqual(19);
  });
});

/**
 * A receive that comes right after a lease of the same instance left nothing to take may wait
 * before its first lease (functions/receive-leases.ts): `stillDrained` says when that holds.
 */
describe("CommitSignal's drained groups", () => {
  const WITHIN = 25;

  /** A lease of the group at `at` that found it drained (or not). */
  function lease(signal: CommitSignal, at: number, drained = true, groupId = GROUP) {
    const returns = signal.looking(TOPIC, groupId);
    signal.leased(TOPIC, groupId, returns, at, drained);
  }

  it("holds after a lease that drained the group, within the window only", () => {
    const signal = new CommitSignal(new Batcher());
    expect(signal.stillDrained(TOPIC, GROUP, 1_000, WITHIN)).toBe(false); // no lease yet
    lease(signal, 1_000);
    expect(signal.stillDrained(TOPIC, GROUP, 1_000 + WITHIN, WITHIN)).toBe(true);
    expect(signal.stillDrained(TOPIC, GROUP + 1, 1_000, WITHIN)).toBe(false); // another group
    expect(signal.stillDrained(TOPIC, GROUP, 1_001 + WITHIN, WITHIN)).toBe(false); // leases time out, others commit
    expect(signal.stillDrained(TOPIC, GROUP, 1_000, WITHIN)).toBe(false); // and it was forgotten
  });

  it("ends with a lease that left messages (or met them held)", () => {
    const signal = new CommitSignal(new Batcher());
    lease(signal, 1_000);
    lease(signal, 1_005, false);
    expect(signal.stillDrained(TOPIC, GROUP, 1_006, WITHIN)).toBe(false);
  });

  it("ends with a local commit that woke no receiver of the group, not with one that woke a receiver", async () => {
    const signal = new CommitSignal(new Batcher());
    lease(signal, 1_000);
    const waiting = signal.waitReceiver(TOPIC, GROUP, FOREVER);
    commitTo(signal); // a waiting receiver of the group was woken: it leases what this brought
    expect(await settled(waiting)).toEqual([true]);
    expect(signal.stillDrained(TOPIC, GROUP, 1_001, WITHIN)).toBe(true);
    commitTo(signal); // nobody of the group waits: nobody will lease what this brought
    expect(signal.stillDrained(TOPIC, GROUP, 1_002, WITHIN)).toBe(false);
  });

  it("ends with an undrain of the topic (a nack, a seek, a redrive), also for a lease under way then", () => {
    const signal = new CommitSignal(new Batcher());
    lease(signal, 1_000);
    signal.undrain(TOPIC + 1); // another topic's
    expect(signal.stillDrained(TOPIC, GROUP, 1_001, WITHIN)).toBe(true);
    signal.undrain(TOPIC);
    expect(signal.stillDrained(TOPIC, GROUP, 1_001, WITHIN)).toBe(false);
    // A lease whose statement ran while messages were returned may not have seen them.
    const returns = signal.looking(TOPIC, GROUP);
    signal.undrain(TOPIC);
    signal.leased(TOPIC, GROUP, returns, 1_002, true);
    expect(signal.stillDrained(TOPIC, GROUP, 1_003, WITHIN)).toBe(false);
    lease(signal, 1_004);
    expect(signal.stillDrained(TOPIC, GROUP, 1_005, WITHIN)).toBe(true);
  });
});
