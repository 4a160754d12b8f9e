/**
 * A loopback HTTP proxy in front of the S3 server (s3rver) that injects the faults an object
 * store shows in production: 5xx answers, 429 with Retry-After, stalls, connections reset in the
 * middle of a body, and bodies that drip slowly. Which request gets which fault is drawn from a
 * seeded PRNG (see ../schedule.ts), so a run is reproducible in what it injects, if not in the
 * exact interleaving of requests.
 */
import { createServer, request, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export type S3Fault =
  | { kind: "status"; status: 500 | 503 }
  | { kind: "throttle"; retryAfterSeconds: number }
  | { kind: "stall"; ms: number }
  /** "request": the request is dropped before it reaches s3rver; "response": s3rver did the work, the answer is cut halfway. */
  | { kind: "reset"; when: "request" | "response" }
  | { kind: "slow"; chunkBytes: number; delayMs: number };

/** Decides the fault (or none) for each request; `n` counts the requests the proxy has seen. */
export type S3FaultPicker = (method: string, path: string, n: number) => S3Fault | undefined;

export interface S3FaultProxy {
  /** The proxy's origin (http://127.0.0.1:port): what the server gets as S3_ENDPOINT. */
  url: string;
  /** From now on, faults come from `pick` (undefined: none). */
  setPicker(pick: S3FaultPicker | undefined): void;
  /** Faults injected so far, by kind. */
  injected(): Record<string, number>;
  /** Requests forwarded so far. */
  requests(): number;
  close(): Promise<void>;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function s3Error(res: ServerResponse, status: number, code: string, headers: Record<string, string> = {}): void {
  const body = `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>injected by the fault proxy</Message></Error>`;
  res.writeHead(status, { "content-type": "application/xml", "content-length": Buffer.byteLength(body), ...headers });
  res.end(body);
}

export async function startS3FaultProxy(target: string): Promise<S3FaultProxy> {
  const upstream = new URL(target);
  let pick: S3FaultPicker | undefined;
  let seen = 0;
  const counts: Record<string, number> = {};
  const count = (k: string) => {
    counts[k] = (counts[k] ?? 0) + 1;
  };

  /** Forwards the request; `onAnswer` gets s3rver's answer to relay as the fault wants. */
  const forward = (req: IncomingMessage, body: Buffer, res: ServerResponse, onAnswer: (answer: IncomingMessage) => void) => {
    const out = request(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers },
      onAnswer,
    );
    out.on("error", () => res.destroy());
    out.end(body);
  };
  const relay = (res: ServerResponse) => (answer: IncomingMessage) => {
    res.writeHead(answer.statusCode ?? 502, answer.headers);
    answer.pipe(res);
  };

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("error", () => res.destroy());
    req.on("end", async () => {
      const body = Buffer.concat(chunks);
      const fault = pick?.(req.method ?? "", req.url ?? "", seen++);
      if (!fault) return forward(req, body, res, relay(res));
      count(fault.kind === "reset" ? `reset-${fault.when}` : fault.kind === "status" ? `status-${fault.status}` : fault.kind);
      switch (fault.kind) {
        case "status":
          return s3Error(res, fault.status, fault.status === 503 ? "SlowDown" : "InternalError");
        case "throttle":
          return s3Error(res, 429, "TooManyRequests", { "retry-after": String(fault.retryAfterSeconds) });
        case "stall":
          await sleep(fault.ms);
          if (res.destroyed) return;
          return forward(req, body, res, relay(res));
        case "reset":
          if (fault.when === "request") return res.socket?.destroy();
          return forward(req, body, res, (answer) => {
            // Headers promise the whole body; half of it arrives, then the connection dies.
            const length = Number(answer.headers["content-length"] ?? 0);
            res.writeHead(answer.statusCode ?? 502, answer.headers);
            if (length < 2) {
              answer.resume();
              res.socket?.destroy();
              return;
            }
            let sent = 0;
            answer.on("data", (c: Buffer) => {
              if (sent >= length / 2) return;
              const part = c.subarray(0, Math.max(1, Math.ceil(length / 2) - sent));
              sent += part.length;
              res.write(part);
              if (sent >= length / 2) res.socket?.destroy();
            });
          });
        case "slow":
          return forward(req, body, res, (answer) => {
            res.writeHead(answer.statusCode ?? 502, answer.headers);
            const parts: Buffer[] = [];
            answer.on("data", (c: Buffer) => parts.push(c));
            answer.on("end", async () => {
              const all = Buffer.concat(parts);
              for (let at = 0; at < all.length && !res.destroyed; at += fault.chunkBytes) {
                res.write(all.subarray(at, at + fault.chunkBytes));
                await sleep(fault.delayMs);
              }
              res.end();
            });
          });
      }
    });
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    setPicker(p) {
      pick = p;
    },
    injected: () => ({ ...counts }),
    requests: () => seen,
    async close() {
      pick = undefined;
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
