/**
 * The one place that talks HTTP: builds the URL, sends the key, encodes JSON, and turns every
 * answer that is not 2xx, and every request that got no answer, into a ReservoirError. Uses
 * only `fetch`, so it runs in Node 18+, Workers, Deno and browsers.
 */
import { errorFromResponse, ReservoirError } from "./errors.ts";
import { type RetryPolicy, withRetries } from "./retry.ts";

export interface ClientOptions {
  /** The service's origin, e.g. `http://localhost:8787`. */
  url: string;
  /** A tenant API key (`rsv_…`), or the operator token for `admin` calls. */
  apiKey?: string;
  /** A fetch to use instead of the global one (tests, proxies, custom agents). */
  fetch?: typeof fetch;
  /** Per-request timeout in ms, on top of any long-poll wait (default 70,000: past the server's own 65 s deadline). */
  timeoutMs?: number;
  /**
   * Retries of GET, PUT and DELETE calls, which HTTP makes safe to repeat (default 2). POST
   * calls are never retried here: the producer retries produce with idempotency keys.
   */
  retry?: RetryPolicy;
  /** Extra headers on every request (e.g. a user agent). */
  headers?: Record<string, string>;
  /**
   * Check the CRC32C of every stored batch in answers in batches (`groups.receiveBatches`),
   * end to end. Default false: the server checked them as it read them (client/src/batches.ts).
   */
  verifyChecksums?: boolean;
}

export type Query = Record<string, string | number | boolean | undefined>;

export interface RequestOptions {
  query?: Query;
  body?: unknown;
  /** A raw body (e.g. ndjson) and its Content-Type, instead of `body`. */
  raw?: { body: string | Uint8Array<ArrayBuffer>; contentType: string };
  signal?: AbortSignal;
  /** A long-poll's server-side wait, added to the timeout. */
  waitMs?: number;
  /** The answer's form, when not JSON (e.g. an answer in batches). */
  accept?: string;
}

export class Transport {
  readonly baseUrl: string;
  readonly apiKey: string | undefined;
  private readonly fetchFn: typeof fetch;
  private readonly timeoutMs: number;
  private readonly retry: RetryPolicy;
  private readonly headers: Record<string, string>;

  constructor(opts: ClientOptions) {
    if (!opts.url) throw new TypeError("Reservoir: `url` is required (e.g. http://localhost:8787)");
    this.baseUrl = opts.url.replace(/\/+$/, "");
    this.apiKey = opts.apiKey;
    // Bound, so a detached `fetch` still has its global receiver (browsers insist).
    this.fetchFn = opts.fetch ?? ((input, init) => fetch(input, init));
    this.timeoutMs = opts.timeoutMs ?? 70_000;
    this.retry = { retries: 2, ...opts.retry };
    this.headers = opts.headers ?? {};
  }

  /** A request answered with JSON (or nothing, for 204), retried if the method is safe to repeat. */
  async json<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
    const once = async () => {
      const res = await this.send(method, path, opts);
      if (res.status === 204) return undefined as T;
      const text = await res.text();
      return (text === "" ? undefined : JSON.parse(text)) as T;
    };
    if (method === "POST" || method === "PATCH") return once();
    return withRetries(once, this.retry, { signal: opts.signal });
  }

  /** A request answered with bytes (e.g. an answer in batches). */
  async bytes(method: string, path: string, opts: RequestOptions = {}): Promise<Uint8Array> {
    return new Uint8Array(await (await this.send(method, path, opts)).arrayBuffer());
  }

  /** A request answered with text (e.g. CSV). */
  async text(method: string, path: string, opts: RequestOptions = {}): Promise<string> {
    return (await this.send(method, path, opts)).text();
  }

  /** Sends one request; a non-2xx answer or no answer at all is thrown as a ReservoirError. */
  async send(method: string, path: string, opts: RequestOptions = {}): Promise<Response> {
    const url = new URL(this.baseUrl + path);
    for (const [k, v] of Object.entries(opts.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    const headers: Record<string, string> = { accept: opts.accept ?? "application/json", ...this.headers };
    if (this.apiKey) headers.authorization = `Bearer ${this.apiKey}`;
    let body: string | Uint8Array<ArrayBuffer> | undefined;
    if (opts.raw) {
      body = opts.raw.body;
      headers["content-type"] = opts.raw.contentType;
    } else if (opts.body !== undefined) {
      body = JSON.stringify(opts.body);
      headers["content-type"] = "application/json";
    }
    const timeout = AbortSignal.timeout(this.timeoutMs + (opts.waitMs ?? 0));
    const signal = opts.signal ? anySignal([opts.signal, timeout]) : timeout;
    let res: Response;
    try {
      res = await this.fetchFn(url, { method, headers, body, signal });
    } catch (error) {
      // The caller's own abort is not a failure of the service: it goes through as it is.
      if (opts.signal?.aborted) throw opts.signal.reason ?? error;
      const timedOut = timeout.aborted;
      throw new ReservoirError({
        status: 0,
        code: "network_error",
        detail: timedOut ? `no answer within ${this.timeoutMs + (opts.waitMs ?? 0)} ms` : String((error as Error)?.message ?? error),
        cause: error,
      });
    }
    if (!res.ok) throw await errorFromResponse(res);
    return res;
  }
}

/** AbortSignal.any where it exists (Node 20.3+, browsers 2024), else a small equivalent. */
function anySignal(signals: AbortSignal[]): AbortSignal {
  const any = (AbortSignal as { any?: (s: AbortSignal[]) => AbortSignal }).any;
  if (any) return any.call(AbortSignal, signals);
  const controller = new AbortController();
  for (const s of signals) {
    if (s.aborted) return AbortSignal.abort(s.reason);
    s.addEventListener("abort", () => controller.abort(s.reason), { once: true });
  }
  return controller.signal;
}

/** A path segment, escaped (names are `[A-Za-z0-9._-]`, but a caller's typo should not change the route). */
export const seg = (s: string | number) => encodeURIComponent(String(s));
