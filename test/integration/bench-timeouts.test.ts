// The benchmark never waits forever (issue 19): an HTTP call to a server that stops answering
// fails with a CallTimeout naming the request (and frees its socket), and a system whose
// publish or consume stops making progress fails its run, naming the call and how far it got.
import { createServer, Agent, type Server } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { guarded } from "../../bench/compare/guard.ts";
import type { SystemUnderTest } from "../../bench/compare/system.ts";
import { requestJson } from "../../bench/lib/http-json.ts";
import { CallTimeout } from "../../bench/lib/timeout.ts";

describe("bench call timeouts", () => {
  let server: Server;
  let base: string;
  let closedByClient = 0;

  beforeAll(async () => {
    // Reads every request and never answers, as a hung server does.
    server = createServer((req) => {
      req.resume();
      req.socket.on("close", () => closedByClient++);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const address = server.address();
    if (!address || typeof address === "string") throw new Error("no port");
    base = `http://127.0.0.1:${address.port}`;
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it("a request nobody answers fails with a CallTimeout naming it, and its socket is closed", async () => {
    const agent = new Agent({ keepAlive: true });
    const url = new URL("/v1/topics/t/groups/bench/receive", base);
    const failure = await requestJson(agent, "POST", url, { "content-type": "application/json" }, { max: 10, waitMs: 50 }, 200).catch(
      (e: unknown) => e,
    );
    expect(failure).toBeInstanceOf(CallTimeout);
    expect((failure as Error).message).toBe(
      'POST /v1/topics/t/groups/bench/receive {"max":10,"waitMs":50}: no answer within 0.2 s (the call hung)',
    );
    await expect.poll(() => closedByClient).toBeGreaterThanOrEqual(1);
    agent.destroy();
  });

  it("a system whose publish stops acknowledging, or whose consume stops delivering, fails naming the call", async () => {
    // A stand-in for a broker that takes the first messages and then stops answering.
    const stalling: SystemUnderTest = {
      name: "nats-jetstream",
      settings: {},
      setup: async () => {},
      publish: (_count, _payload, options = {}) =>
        new Promise(() => {
          for (let i = 0; i < 3; i++) options.onAck?.(i);
        }),
      consume: (_count, onMessage) =>
        new Promise(() => {
          onMessage?.("first");
        }),
      teardown: () => new Promise(() => {}),
    };
    const sut = guarded(stalling, 300);
    const published = await sut.publish(10, () => new Uint8Array(1)).catch((e: unknown) => e);
    expect(published).toBeInstanceOf(CallTimeout);
    expect((published as Error).message).toBe(
      "nats-jetstream publish: no acknowledgement (3 of 10 acked): no answer within 0.3 s (the call hung)",
    );
    const consumed = await sut.consume(10).catch((e: unknown) => e);
    expect((consumed as Error).message).toBe(
      "nats-jetstream consume: no message (1 of 10 received): no answer within 0.3 s (the call hung)",
    );
    const tornDown = await sut.teardown().catch((e: unknown) => e);
    expect((tornDown as Error).message).toBe("nats-jetstream teardown: no answer within 0.3 s (the call hung)");
  });
});
