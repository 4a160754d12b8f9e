// A webhook receiver for the subscription tests: a node:http server on 127.0.0.1 (an ephemeral
// port) that records every request it gets and answers each path as the test programmed it.
//
// Times are from performance.now() (monotonic, sub-millisecond): `arrivedAt` is when the request
// line and headers came in, `respondedAt` when the answer was handed to the socket (or when the
// client gave up on it). A sender starts a request before the sink sees it arrive and sees the
// answer only after the sink sent it, so [arrivedAt, respondedAt] lies inside the sender's own
// span of the request: overlaps counted here are never more than the sender had in flight.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface SinkRequest {
  /** 0-based arrival index over the whole sink. */
  seq: number;
  /** 0-based arrival index among the requests to this path. */
  index: number;
  method: string;
  path: string;
  /** Lower-cased names; repeated headers joined with ", " (as node:http does). */
  headers: Record<string, string>;
  /** The raw body, decoded as UTF-8 (what the signature covers). */
  body: string;
  /** performance.now() when the request arrived. */
  arrivedAt: number;
  /** performance.now() when the answer was sent or the client went away; undefined while pending. */
  respondedAt?: number;
  /** The status answered; undefined while pending or when the sink never answered. */
  status?: number;
  /** The client closed the connection before the sink answered (a hang, a client timeout). */
  abandoned?: boolean;
  /** The body parsed as JSON, or undefined when it is not JSON. */
  json?: any;
}

export interface SinkAnswer {
  /** Default 200. */
  status?: number;
  /** Wait this long before answering. */
  delayMs?: number;
  /** Response headers, e.g. { "retry-after": "2" } or { location: sink.url("/elsewhere") }. */
  headers?: Record<string, string>;
  /** Response body (default: none). */
  body?: string;
  /** Never answer: the request stays open until the client gives up or the sink closes. */
  hang?: boolean;
}

/**
 * How a path answers: one answer for every request; a sequence (the n-th request gets the n-th
 * answer, the last one repeats); or a function of the request (its `index` is its place among the
 * requests to the path).
 */
export type SinkBehaviour = SinkAnswer | SinkAnswer[] | ((request: SinkRequest) => SinkAnswer);

export interface WebhookSink {
  /** The port the sink listens on (127.0.0.1). */
  readonly port: number;
  /** `http://127.0.0.1:<port><path>`. */
  url(path: string): string;
  /** Sets how `path` answers from now on (paths without one answer 200). */
  on(path: string, behaviour: SinkBehaviour): void;
  /** Every request so far, in arrival order (or only those to `path`). */
  requests(path?: string): SinkRequest[];
  /**
   * Waits until the requests to `path` (every path when null) satisfy `predicate`, checking on
   * every arrival and answer, then returns them; throws, listing what did arrive, once
   * `timeoutMs` passed.
   */
  waitFor(path: string | null, predicate: (requests: SinkRequest[]) => boolean, timeoutMs?: number, what?: string): Promise<SinkRequest[]>;
  /** Shorthand: waits until at least `n` requests to `path` are over (answered, or given up by the client). */
  waitForCount(path: string, n: number, timeoutMs?: number): Promise<SinkRequest[]>;
  /** Closes the server and every connection (pending hangs included). */
  close(): Promise<void>;
}

function answerFor(behaviour: SinkBehaviour | undefined, request: SinkRequest): SinkAnswer {
  if (behaviour === undefined) return {};
  if (typeof behaviour === "function") return behaviour(request);
  if (Array.isArray(behaviour)) return behaviour[Math.min(request.index, behaviour.length - 1)] ?? {};
  return behaviour;
}

function flatHeaders(req: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.headers)) {
    if (v === undefined) continue;
    out[k.toLowerCase()] = Array.isArray(v) ? v.join(", ") : v;
  }
  return out;
}

/** One line per request, for failure messages. */
export function describeRequests(requests: SinkRequest[]): string {
  if (requests.length === 0) return "(no requests)";
  return requests
    .map((r) => {
      const span = r.respondedAt === undefined ? "pending" : `${(r.respondedAt - r.arrivedAt).toFixed(0)} ms`;
      const status = r.abandoned ? "abandoned" : (r.status ?? "-");
      return `#${r.seq} ${r.method} ${r.path} at ${r.arrivedAt.toFixed(0)} (${span}) -> ${status}; id=${r.headers["webhook-id"] ?? "-"} body=${r.body.slice(0, 300)}`;
    })
    .join("\n");
}

export async function startWebhookSink(): Promise<WebhookSink> {
  const recorded: SinkRequest[] = [];
  const perPath = new Map<string, number>();
  const behaviours = new Map<string, SinkBehaviour>();
  let closing = false;
  /** Wakes every waitFor: called whenever a request arrives, is answered or is given up. */
  const watchers = new Set<() => void>();
  const changed = () => {
    for (const wake of [...watchers]) wake();
  };

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const arrivedAt = performance.now();
    const path = (req.url ?? "/").split("?")[0]!;
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      const index = perPath.get(path) ?? 0;
      perPath.set(path, index + 1);
      let json: unknown;
      try {
        json = body === "" ? undefined : JSON.parse(body);
      } catch {
        json = undefined;
      }
      const entry: SinkRequest = {
        seq: recorded.length,
        index,
        method: req.method ?? "",
        path,
        headers: flatHeaders(req),
        body,
        arrivedAt,
        json,
      };
      recorded.push(entry);
      changed();
      let answer: SinkAnswer;
      try {
        answer = answerFor(behaviours.get(path), entry);
      } catch (err) {
        // A broken behaviour is a test bug: answer something unmistakable rather than hang.
        answer = { status: 599, body: String(err) };
      }
      let done = false;
      res.on("close", () => {
        if (done) return;
        done = true;
        entry.abandoned = true;
        entry.respondedAt = performance.now();
        changed();
      });
      if (answer.hang) return;
      const send = () => {
        if (done || closing) return;
        done = true;
        entry.status = answer.status ?? 200;
        entry.respondedAt = performance.now();
        res.writeHead(entry.status, answer.headers ?? {});
        res.end(answer.body ?? "");
        changed();
      };
      if (answer.delayMs && answer.delayMs > 0) setTimeout(send, answer.delayMs);
      else send();
    });
  };

  const server: Server = createServer(handle);
  // Nothing here may make a client wait on the server's own limits.
  server.requestTimeout = 0;
  server.headersTimeout = 0;
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as AddressInfo).port;

  const select = (path: string | null) => (path === null ? recorded.slice() : recorded.filter((r) => r.path === path));

  async function waitFor(
    path: string | null,
    predicate: (requests: SinkRequest[]) => boolean,
    timeoutMs = 20_000,
    what = "the expected requests",
  ) {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const seen = select(path);
      if (predicate(seen)) return seen;
      const left = deadline - performance.now();
      if (left <= 0) {
        throw new Error(
          `webhook sink: ${what} did not arrive at ${path ?? "any path"} within ${timeoutMs} ms; got:\n${describeRequests(seen)}`,
        );
      }
      // Until the next arrival or answer (no polling), or the deadline.
      await new Promise<void>((resolve) => {
        const wake = () => {
          clearTimeout(timer);
          watchers.delete(wake);
          resolve();
        };
        const timer = setTimeout(wake, left);
        watchers.add(wake);
      });
    }
  }

  return {
    port,
    url: (path: string) => `http://127.0.0.1:${port}${path.startsWith("/") ? path : `/${path}`}`,
    on(path, behaviour) {
      behaviours.set(path, behaviour);
    },
    requests: (path?: string) => select(path ?? null),
    waitFor,
    waitForCount: (path, n, timeoutMs = 20_000) =>
      waitFor(path, (rs) => rs.filter((r) => r.respondedAt !== undefined).length >= n, timeoutMs, `${n} answered request(s)`),
    async close() {
      closing = true;
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
