// Tiny HTTP client for the test suites. Every call goes through `request`, which throws at once
// (failing the test loudly) when the service answers with a 5xx: API.md says no client request
// may ever produce one.

export interface ApiResponse<T = any> {
  status: number;
  headers: Headers;
  /** Parsed JSON for application/json and application/problem+json; otherwise the text (or undefined when empty). */
  body: T;
  /** The raw response text. */
  text: string;
  /** Wall-clock milliseconds the call took (for long-poll sanity checks only). */
  elapsedMs: number;
}

export interface RequestOptions {
  /** A JS value sent as JSON (`application/json; charset=utf-8`). */
  json?: unknown;
  /** A raw body, sent as is (string or bytes); set `contentType` for it. */
  raw?: string | Uint8Array;
  /** Content-Type to send (overrides the JSON default; `null` sends none). */
  contentType?: string | null;
  /** Extra headers. */
  headers?: Record<string, string>;
  /** Overrides the client's token for this call (`null`: no Authorization header). */
  token?: string | null;
  /** Query parameters (undefined values are left out). */
  query?: Record<string, string | number | boolean | undefined>;
  /** Abort after this many ms (default 60 s, enough for a 30 s long-poll). */
  timeoutMs?: number;
  /** Permit a 5xx without throwing (only for tests that deliberately break the service). */
  allow5xx?: boolean;
}

export class ServerError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly text: string,
  ) {
    super(message);
    this.name = "ServerError";
  }
}

type BodyArg = unknown;

export interface Api {
  readonly baseUrl: string;
  readonly token: string | null;
  request<T = any>(method: string, path: string, opts?: RequestOptions): Promise<ApiResponse<T>>;
  get<T = any>(path: string, opts?: RequestOptions): Promise<ApiResponse<T>>;
  delete<T = any>(path: string, opts?: RequestOptions): Promise<ApiResponse<T>>;
  post<T = any>(path: string, body?: BodyArg, opts?: RequestOptions): Promise<ApiResponse<T>>;
  put<T = any>(path: string, body?: BodyArg, opts?: RequestOptions): Promise<ApiResponse<T>>;
  patch<T = any>(path: string, body?: BodyArg, opts?: RequestOptions): Promise<ApiResponse<T>>;
  /** The same client with another token (`null`: unauthenticated). */
  as(token: string | null): Api;
}

function isJsonType(contentType: string | null): boolean {
  if (!contentType) return false;
  const t = contentType.split(";")[0]!.trim().toLowerCase();
  return t === "application/json" || t === "application/problem+json" || t.endsWith("+json");
}

export function api(baseUrl: string, token: string | null = null): Api {
  const base = baseUrl.replace(/\/+$/, "");

  async function request<T = any>(method: string, path: string, opts: RequestOptions = {}): Promise<ApiResponse<T>> {
    let url = base + path;
    if (opts.query) {
      const qs = new URLSearchParams();
      for (const [k, v] of Object.entries(opts.query)) if (v !== undefined) qs.set(k, String(v));
      const s = qs.toString();
      if (s) url += (url.includes("?") ? "&" : "?") + s;
    }
    const headers: Record<string, string> = { accept: "application/json, application/problem+json", ...opts.headers };
    const tok = opts.token === undefined ? token : opts.token;
    if (tok !== null && tok !== undefined) headers.authorization = `Bearer ${tok}`;
    let body: string | Uint8Array | undefined;
    if (opts.raw !== undefined) {
      body = opts.raw;
      if (opts.contentType) headers["content-type"] = opts.contentType;
    } else if (opts.json !== undefined) {
      body = JSON.stringify(opts.json);
      if (opts.contentType !== null) headers["content-type"] = opts.contentType ?? "application/json; charset=utf-8";
    } else if (opts.contentType) {
      headers["content-type"] = opts.contentType;
    }
    const started = Date.now();
    let res: Response;
    let text: string;
    try {
      res = await fetch(url, {
        method,
        headers,
        body: body as BodyInit | undefined,
        signal: AbortSignal.timeout(opts.timeoutMs ?? 60_000),
      });
      text = await res.text();
    } catch (err) {
      const cause = (err as Error & { cause?: Error }).cause;
      throw new Error(`${method} ${path}: ${(err as Error).message}${cause?.message ? ` (${cause.message})` : ""}`, { cause: err });
    }
    const elapsedMs = Date.now() - started;
    if (res.status >= 500 && !opts.allow5xx) {
      throw new ServerError(
        `${method} ${path} answered ${res.status} (a 5xx is never acceptable for a client request): ${text.slice(0, 2000)}`,
        res.status,
        text,
      );
    }
    let parsed: unknown = text === "" ? undefined : text;
    if (text !== "" && isJsonType(res.headers.get("content-type"))) {
      try {
        parsed = JSON.parse(text);
      } catch {
        throw new Error(`${method} ${path} answered ${res.status} with unparseable JSON: ${text.slice(0, 500)}`);
      }
    }
    return { status: res.status, headers: res.headers, body: parsed as T, text, elapsedMs };
  }

  const withBody =
    (method: string) =>
    <T = any>(path: string, body?: BodyArg, opts: RequestOptions = {}) =>
      request<T>(method, path, body === undefined ? opts : { ...opts, json: body });

  return {
    baseUrl: base,
    token,
    request,
    get: (path, opts) => request("GET", path, opts),
    delete: (path, opts) => request("DELETE", path, opts),
    post: withBody("POST"),
    put: withBody("PUT"),
    patch: withBody("PATCH"),
    as: (t) => api(base, t),
  };
}

/** A compact description of a response for assertion messages. */
export function describeResponse(res: ApiResponse): string {
  return `${res.status} ${res.headers.get("content-type") ?? "(no content-type)"} ${res.text.slice(0, 1000)}`;
}

/**
 * Asserts an RFC 9457 problem response: the status, `application/problem+json`, and the fields
 * type, title, status (equal to the HTTP status), detail and code (equal to `code` when given).
 * Throws an Error naming the whole response otherwise; returns the problem body.
 */
export function assertProblem(res: ApiResponse, status: number, code?: string): Record<string, any> {
  const fail = (why: string): never => {
    throw new Error(`expected a ${status}${code ? ` ${code}` : ""} problem (${why}); got ${describeResponse(res)}`);
  };
  if (res.status !== status) fail(`status ${res.status}`);
  const ct = (res.headers.get("content-type") ?? "").split(";")[0]!.trim().toLowerCase();
  if (ct !== "application/problem+json") fail(`content-type ${ct || "missing"}`);
  const b = res.body as Record<string, unknown> | undefined;
  if (!b || typeof b !== "object") fail("no JSON object body");
  if (typeof b!.type !== "string" || b!.type === "") fail("type is not a non-empty string");
  if (typeof b!.title !== "string" || b!.title === "") fail("title is not a non-empty string");
  if (b!.status !== status) fail(`body status ${String(b!.status)}`);
  if (typeof b!.detail !== "string" || b!.detail === "") fail("detail is not a non-empty string");
  if (typeof b!.code !== "string" || b!.code === "") fail("code is not a non-empty string");
  if (code !== undefined && b!.code !== code) fail(`code ${String(b!.code)}`);
  return b as Record<string, any>;
}

/** Asserts a status, with the whole response in the failure message. */
export function assertStatus(res: ApiResponse, ...statuses: number[]): void {
  if (!statuses.includes(res.status)) {
    throw new Error(`expected status ${statuses.join(" or ")}; got ${describeResponse(res)}`);
  }
}
