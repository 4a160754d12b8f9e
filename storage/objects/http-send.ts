/**
 * The one HTTP exchange the S3 store needs, so each runtime can bring its cheapest client:
 * Workers their native fetch, Node a keep-alive `node:http` agent (undici's fetch measured
 * several times the CPU per request).
 */
export interface HttpRequest {
  method: "GET" | "PUT" | "HEAD" | "DELETE";
  url: string;
  headers: Record<string, string>;
  body?: Uint8Array;
}

export interface HttpResponse {
  status: number;
  header(name: string): string | null;
  body: Uint8Array;
}

export type HttpSend = (request: HttpRequest) => Promise<HttpResponse>;

/** Requests not answered within this long fail (and the flush or read that made them, with 503). */
export const HTTP_TIMEOUT_MS = 60_000;

export const fetchSend: HttpSend = async (request) => {
  const res = await fetch(request.url, {
    method: request.method,
    headers: request.headers,
    body: request.body as Uint8Array<ArrayBuffer> | undefined,
    signal: AbortSignal.timeout(HTTP_TIMEOUT_MS),
  });
  const body = request.method === "HEAD" ? new Uint8Array(0) : new Uint8Array(await res.arrayBuffer());
  return { status: res.status, header: (name) => res.headers.get(name), body };
};
