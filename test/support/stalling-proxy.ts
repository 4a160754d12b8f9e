/**
 * A loopback HTTP proxy in front of a real server (s3rver) that can stop answering: while
 * stalled, the requests it is told to hold are read and then neither forwarded nor answered,
 * as a hung dependency would do. release() forwards what it held and passes everything again.
 * watch() shows a test every request that passes, body included (what a PUT declared and sent).
 */
import { createServer, request, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from "node:http";

export interface SeenRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export interface StallingProxy {
  /** The proxy's origin (http://127.0.0.1:port). */
  url: string;
  /** From now on, requests for which `hold` is true go unanswered. */
  stall(hold: (method: string, path: string) => boolean): void;
  /** How many requests are held right now. */
  held(): number;
  /** Forwards the held requests and stops stalling. */
  release(): void;
  /** From now on, `observer` sees each request as it arrives (undefined: none). */
  watch(observer: ((request: SeenRequest) => void) | undefined): void;
  /** Drops the held requests (their connections are destroyed, nothing is forwarded) and stops stalling. */
  drop(): void;
  close(): Promise<void>;
}

export async function startStallingProxy(target: string): Promise<StallingProxy> {
  const upstream = new URL(target);
  let hold: ((method: string, path: string) => boolean) | undefined;
  let observer: ((request: SeenRequest) => void) | undefined;
  const waiting: { send: () => void; drop: () => void }[] = [];

  const forward = (req: IncomingMessage, body: Buffer, res: ServerResponse) => {
    const out = request(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    out.on("error", () => res.destroy());
    out.end(body);
  };

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      observer?.({ method: req.method ?? "", path: req.url ?? "", headers: req.headers, body });
      if (hold?.(req.method ?? "", req.url ?? "")) waiting.push({ send: () => forward(req, body, res), drop: () => res.destroy() });
      else forward(req, body, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (!address || typeof address === "string") throw new Error("the proxy has no port");
  return {
    url: `http://127.0.0.1:${address.port}`,
    stall(predicate) {
      hold = predicate;
    },
    held: () => waiting.length,
    watch(next) {
      observer = next;
    },
    release() {
      hold = undefined;
      for (const held of waiting.splice(0)) held.send();
    },
    drop() {
      hold = undefined;
      for (const held of waiting.splice(0)) held.drop();
    },
    async close() {
      hold = undefined;
      waiting.length = 0;
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
