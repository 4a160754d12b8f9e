/**
 * How a delivery leaves the process. The core builds the request; an entry point supplies the
 * transport (Node: undici pinned to checked addresses; Workers: fetch). A transport never
 * throws: every way an attempt can end is an outcome.
 */
export interface WebhookRequest {
  url: URL;
  headers: Record<string, string>;
  body: string;
  timeoutMs: number;
  /** Keep the first MAX_RESPONSE_BYTES of the response body (a check-back reads its answer). */
  keepBody?: boolean;
}

export type WebhookOutcome =
  /** The endpoint answered (any status; redirects are answers, never followed). */
  | { kind: "response"; status: number; retryAfter: string | null; body?: string }
  /** No answer: timeout, connection refused or reset, TLS failure, or an address the guard refused. */
  | { kind: "error"; error: string };

export type WebhookTransport = (request: WebhookRequest) => Promise<WebhookOutcome>;
