// Issue 19: "four consumer calls hung" in `npm run bench -- --quick`. What happened: one run
// of reservoir-embedded failed (one produce request of its fixed-rate run got a connection
// reset: 9,970 of 10,000 messages were committed), and that run's consumer loops went on in the
// background. They read the system's current topic and API key at every call, so once the next
// run (a warm-up) was set up, they consumed *its* messages, acked them, and left its own
// consumer long-polling an empty group for ever: a receive every second, each answered, the
// run never done. (A failed publish's other lanes went on publishing into the next run's topic
// the same way.) Here, against the real embedded server: runs that fail, then the next run,
// which must get exactly its own messages.
import { afterAll, describe, expect, it } from "vitest";
import { guarded } from "../../bench/compare/guard.ts";
import { payloadFor, ReceivedCheck } from "../../bench/compare/payload.ts";
import type { Payloads } from "../../bench/compare/system.ts";
import { reservoir } from "../../bench/compare/systems/reservoir.ts";
import { CallTimeout } from "../../bench/lib/timeout.ts";

const workload = { name: "1p-1KiB", partitions: 1, messageBytes: 1024 };

/** The next run: exactly its own messages, all of them, reach its own consumer. */
async function nextRunGetsItsOwn(sut: ReturnType<typeof reservoir>) {
  await sut.setup(workload);
  const next = guarded(sut, 15_000);
  await next.publish(50, payloadFor(workload.messageBytes));
  const check = new ReceivedCheck(50, workload.messageBytes);
  await next.consume(50, (received) => void check.take(received));
  check.assertComplete();
}

describe("the benchmark's Reservoir client after a failed run", () => {
  // Small produce requests in two lanes: a failed publish still has requests to send.
  const sut = reservoir({ stack: "embedded", consumers: 4, batch: 10, window: 2 });
  afterAll(() => sut.close?.(), 60_000);

  it("leaves the next run's messages to the next run's consumer", async () => {
    // A run that fails: 3 messages published, 6 awaited; the stall watch ends it.
    await sut.setup(workload); // starts the server, outside the stall watch
    const failing = guarded(sut, 3_000);
    await failing.publish(3, payloadFor(workload.messageBytes));
    const failure = await failing.consume(6).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(CallTimeout);

    await nextRunGetsItsOwn(sut);
  }, 180_000);

  it("publishes nothing into the next run's topic after a failed publish", async () => {
    // Message 15 is over the 1 MiB limit: its request answers 413 and the publish fails.
    const normal = payloadFor(workload.messageBytes);
    const tooLarge = new Uint8Array(1024 * 1024 + 1).fill(97);
    const payload: Payloads = Object.assign((i: number) => (i === 15 ? tooLarge : normal(i)), { jsonSafeText: true });
    await sut.setup(workload);
    await expect(sut.publish(200, payload)).rejects.toThrow(/answered 413/);
    await nextRunGetsItsOwn(sut);
  }, 180_000);
});
