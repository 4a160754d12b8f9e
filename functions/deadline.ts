/**
 * Every request has a server-side deadline: a handler stuck on something that never settles is
 * answered with a retryable 503 (`deadline_exceeded`, Retry-After) and logged with its route, its
 * tenant and what it was waiting on (waiting-on.ts), instead of leaving the client waiting
 * forever (a Worker burning its time, a consumer's messages staying leased).
 *
 * The bound is the runtime's `requestTimeoutMs` (RESERVOIR_REQUEST_TIMEOUT_MS, default 65 s:
 * above the produce batcher's commit deadline of 60 s after a segment's PUT starts, so a slow
 * produce is answered by its own flush first). A long-poll gets its `waitMs` on top (see
 * allowWait). What the handler does after its deadline is dropped; its transaction, if any,
 * still ends as it would have (a produce answered 503 may yet commit: retry it with
 * idempotency keys; a receive gives back what it leased too late, see pastDeadline).
 */
import type { Context, MiddlewareHandler } from "hono";
import { problemResponse } from "./problem.ts";
import type { AppEnv } from "./runtime.ts";
import { Waits } from "./waiting-on.ts";

export const DEFAULT_REQUEST_TIMEOUT_MS = 65_000;

export interface Deadline {
  /** Moves the deadline to `waitMs` after the bound (once per request, by long-polls). */
  allowWait(waitMs: number): void;
  /** Whether the request has been answered 503 already. */
  readonly expired: boolean;
}

/** Whether the request was answered 503 deadline_exceeded already: what it does now, nobody sees. */
export function pastDeadline(c: Context<AppEnv>): boolean {
  return c.get("deadline")?.expired ?? false;
}

/** A long-poll's deadline: its wait plus the bound every request gets. */
export function allowWait(c: Context<AppEnv>, waitMs: number): void {
  if (waitMs > 0) c.get("deadline")?.allowWait(waitMs);
}

export const requestDeadline: MiddlewareHandler<AppEnv> = async (c, next) => {
  const boundMs = c.env.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  const started = Date.now();
  const waits = new Waits();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let limitMs = boundMs;
  let isExpired = false;
  let expire!: () => void;
  // (Promise.withResolvers is not in Node 20.)
  const expired = new Promise<"expired">((resolve) => {
    expire = () => {
      isExpired = true;
      resolve("expired");
    };
  });
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(expire, Math.max(0, started + limitMs - Date.now()));
  };
  // In the context, not keyed by the Request: middleware may replace c.req.raw (app.ts does
  // to normalise a Content-Type).
  c.set("deadline", {
    allowWait(waitMs) {
      limitMs = boundMs + waitMs;
      arm();
    },
    get expired() {
      return isExpired;
    },
  });
  arm();
  const work = c.env.scope ? c.env.scope.run(waits, next) : next();
  try {
    const outcome = await Promise.race([work.then(() => "done" as const), expired]);
    if (outcome === "done") return;
  } finally {
    clearTimeout(timer);
  }
  // The handler goes on in the background; whatever it answers later is dropped.
  work.catch(() => {});
  const seconds = limitMs / 1000;
  const tenant = c.get("principal")?.tenantId ?? "(not yet authenticated)";
  console.error(
    `reservoir: ${c.req.method} ${c.req.path} (tenant ${tenant}) did not finish within ${seconds} s; answered 503 deadline_exceeded. ` +
      `Waiting on: ${waits.describe()}`,
  );
  c.res = problemResponse("deadline_exceeded", `the request did not finish within ${seconds} s; retry it`, { timeoutMs: limitMs });
  return c.res;
};
