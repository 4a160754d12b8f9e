/**
 * The webhook transports (undici on Node, fetch on Workers) against real HTTP sinks on
 * 127.0.0.1. Every request here goes to loopback: the sinks, a closed loopback port, or nowhere
 * (the guard refuses first). Public addresses appear only in test/unit/address-guard.test.ts.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createAddressGuard, type AddressGuard } from "../../functions/push/address-guard.ts";
import { nodeResolver } from "../../functions/runtime/node/resolve.ts";
import { fetchTransport } from "../../functions/push/transport-fetch.ts";
import { nodeTransport } from "../../functions/runtime/node/webhook-transport.ts";
import type { WebhookRequest, WebhookTransport } from "../../functions/push/transport.ts";

interface Received {
  method: string;
  path: string;
  headers: IncomingMessage["headers"];
  body: string;
}

interface Sink {
  port: number;
  received: Received[];
  close(): Promise<void>;
}

async function startSink(handle: (path: string, res: ServerResponse) => void): Promise<Sink> {
  const received: Received[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      received.push({ method: req.method ?? "", path: req.url ?? "", headers: req.headers, body: Buffer.concat(chunks).toString() });
      handle(req.url ?? "/", res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as AddressInfo).port,
    received,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A loopback port nothing listens on (it was just bound and released). */
async function closedPort(): Promise<number> {
  const sink = await startSink(() => undefined);
  await sink.close();
  return sink.port;
}

const SLOW_MS = 3_000;
const TIMEOUT_MS = 300;

let sink: Sink;
let redirectTarget: Sink;
let refusedPort: number;

beforeAll(async () => {
  redirectTarget = await startSink((_path, res) => res.end("you should not be here"));
  sink = await startSink((path, res) => {
    switch (path) {
      case "/ok":
        return res.end("thanks");
      case "/busy":
        res.writeHead(503, { "retry-after": "7" });
        return res.end();
      case "/redirect":
        res.writeHead(302, { location: `http://127.0.0.1:${redirectTarget.port}/target` });
        return res.end();
      case "/slow": {
        const timer = setTimeout(() => res.end("late"), SLOW_MS);
        res.on("close", () => clearTimeout(timer));
        return;
      }
      case "/endless": {
        // A 2xx whose body never ends: the transport must not wait for it.
        res.writeHead(200, { "content-type": "application/octet-stream" });
        const chunk = Buffer.alloc(16 * 1024, 120);
        const timer = setInterval(() => res.write(chunk), 1);
        res.on("close", () => clearInterval(timer));
        return;
      }
      default:
        res.writeHead(404);
        return res.end();
    }
  });
  refusedPort = await closedPort();
});

afterAll(async () => {
  await sink?.close();
  await redirectTarget?.close();
});

afterEach(() => {
  sink.received.length = 0;
  redirectTarget.received.length = 0;
});

function delivery(url: string, timeoutMs = 5_000): WebhookRequest {
  return {
    url: new URL(url),
    headers: { "content-type": "application/json", "webhook-id": "msg_test_0_1", "user-agent": "Reservoir-Webhooks/1" },
    body: JSON.stringify({ id: "msg_test_0_1", value: "hello" }),
    timeoutMs,
  };
}

const transports: { name: string; make: (guard: AddressGuard) => WebhookTransport & { close?: () => Promise<void> } }[] = [
  { name: "undici (Node)", make: (guard) => nodeTransport(guard) },
  { name: "fetch (Workers)", make: (guard) => fetchTransport(guard) },
];

describe.each(transports)("$name transport", ({ make }) => {
  const allowing = make(createAddressGuard("127.0.0.1,::1,localhost", nodeResolver));
  const strict = make(createAddressGuard(undefined, nodeResolver));
  const base = () => `http://127.0.0.1:${sink.port}`;

  afterAll(async () => {
    await allowing.close?.();
    await strict.close?.();
  });

  it("delivers a POST and reports a 200", async () => {
    const outcome = await allowing(delivery(`${base()}/ok`));
    expect(outcome).toEqual({ kind: "response", status: 200, retryAfter: null });
    expect(sink.received).toHaveLength(1);
    const [got] = sink.received;
    expect(got.method).toBe("POST");
    expect(got.path).toBe("/ok");
    expect(got.headers["content-type"]).toBe("application/json");
    expect(got.headers["webhook-id"]).toBe("msg_test_0_1");
    expect(got.headers["user-agent"]).toBe("Reservoir-Webhooks/1");
    expect(JSON.parse(got.body)).toEqual({ id: "msg_test_0_1", value: "hello" });
  });

  it("reports a 503 with its Retry-After", async () => {
    expect(await allowing(delivery(`${base()}/busy`))).toEqual({ kind: "response", status: 503, retryAfter: "7" });
  });

  it("reports a 302 without following it", async () => {
    expect(await allowing(delivery(`${base()}/redirect`))).toEqual({ kind: "response", status: 302, retryAfter: null });
    expect(sink.received).toHaveLength(1);
    expect(redirectTarget.received).toEqual([]);
  });

  it("times out after timeoutMs", async () => {
    const started = performance.now();
    const outcome = await allowing(delivery(`${base()}/slow`, TIMEOUT_MS));
    expect(outcome).toEqual({ kind: "error", error: `timed out after ${TIMEOUT_MS} ms` });
    expect(performance.now() - started).toBeLessThan(SLOW_MS - 500);
  });

  it("reports the status of a 2xx whose body never ends, without waiting for the body", async () => {
    const started = performance.now();
    expect(await allowing(delivery(`${base()}/endless`, 2_000))).toEqual({ kind: "response", status: 200, retryAfter: null });
    expect(performance.now() - started).toBeLessThan(1_500);
  });

  it("reports a refused connection", async () => {
    expect(await allowing(delivery(`http://127.0.0.1:${refusedPort}/ok`))).toEqual({ kind: "error", error: "connection refused" });
  });

  it("sends nothing to 127.0.0.1 without an allow-list", async () => {
    expect(await strict(delivery(`${base()}/ok`))).toEqual({ kind: "error", error: "url_not_allowed: 127.0.0.1 is loopback" });
    expect(sink.received).toEqual([]);
  });

  it("sends nothing to [::1] or to a mapped 127.0.0.1 without an allow-list", async () => {
    expect(await strict(delivery(`http://[::1]:${sink.port}/ok`))).toEqual({ kind: "error", error: "url_not_allowed: ::1 is loopback" });
    expect(await strict(delivery(`http://[::ffff:127.0.0.1]:${sink.port}/ok`))).toEqual({
      kind: "error",
      error: "url_not_allowed: ::ffff:7f00:1 is loopback (IPv4-mapped 127.0.0.1)",
    });
    expect(await strict(delivery(`http://2130706433:${sink.port}/ok`))).toEqual({
      kind: "error",
      error: "url_not_allowed: 127.0.0.1 is loopback",
    });
    expect(sink.received).toEqual([]);
  });

  it("sends nothing to localhost without an allow-list", async () => {
    const outcome = await strict(delivery(`http://localhost:${sink.port}/ok`));
    expect(outcome.kind).toBe("error");
    expect(outcome.kind === "error" && outcome.error).toMatch(/^url_not_allowed: localhost.*(127\.[\d.]+|::1)/);
    expect(sink.received).toEqual([]);
  });

  it("reaches localhost when the allow-list names it", async () => {
    expect(await allowing(delivery(`http://localhost:${sink.port}/ok`))).toEqual({ kind: "response", status: 200, retryAfter: null });
    expect(sink.received).toHaveLength(1);
  });

  it("refuses other schemes", async () => {
    expect(await allowing(delivery(`ftp://127.0.0.1:${sink.port}/ok`))).toEqual({
      kind: "error",
      error: "url_not_allowed: the URL must be http: or https:, not ftp:",
    });
  });
});

describe("undici (Node) transport pins the connection to the checked addresses", () => {
  it("refuses inside the connection's own lookup, so a name never reaches an address the guard did not pass", async () => {
    // Only literal addresses are checked before connecting; for a name the refusal can only come
    // from the lookup the socket connects with.
    const transport = nodeTransport(createAddressGuard(undefined, nodeResolver));
    try {
      const outcome = await transport(delivery(`http://localhost:${sink.port}/ok`));
      expect(outcome).toEqual({
        kind: "error",
        error: expect.stringMatching(/^url_not_allowed: localhost resolves to (127\.[\d.]+|::1), which is not allowed$/),
      });
      expect(sink.received).toEqual([]);
    } finally {
      await transport.close();
    }
  });

  it("lets a connection through when every address of the name is allowed", async () => {
    const resolved = await nodeResolver("localhost");
    const transport = nodeTransport(createAddressGuard(resolved.join(","), nodeResolver));
    try {
      expect(await transport(delivery(`http://localhost:${sink.port}/ok`))).toEqual({ kind: "response", status: 200, retryAfter: null });
    } finally {
      await transport.close();
    }
  });
});

describe("Node resolver", () => {
  it("resolves localhost to loopback addresses", async () => {
    const addresses = await nodeResolver("localhost");
    expect(addresses.length).toBeGreaterThan(0);
    for (const address of addresses) expect(address).toMatch(/^(127\.\d+\.\d+\.\d+|::1)$/);
  });

  it("the guard refuses localhost without asking it, and lets the listed name through", async () => {
    expect(await createAddressGuard("localhost", nodeResolver).check(new URL("http://localhost/"))).toEqual(["127.0.0.1", "::1"]);
    await expect(createAddressGuard(undefined, nodeResolver).check(new URL("http://localhost/"))).rejects.toThrow(
      "localhost: 127.0.0.1 is loopback",
    );
  });
});
