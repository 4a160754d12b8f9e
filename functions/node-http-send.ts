/** The S3 store's HTTP client on Node: `node:http`/`node:https` with keep-alive sockets. */
import { Agent as HttpAgent, request as httpRequest } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import { HTTP_TIMEOUT_MS, type HttpSend } from "../storage/objects/http-send.ts";

export function nodeHttpSend(): HttpSend {
  const agents = { http: new HttpAgent({ keepAlive: true, maxSockets: 256 }), https: new HttpsAgent({ keepAlive: true, maxSockets: 256 }) };
  return (request) =>
    new Promise((resolve, reject) => {
      const url = new URL(request.url);
      const secure = url.protocol === "https:";
      const send = secure ? httpsRequest : httpRequest;
      const headers = request.body ? { ...request.headers, "content-length": String(request.body.byteLength) } : request.headers;
      const req = send(
        url,
        { method: request.method, headers, agent: secure ? agents.https : agents.http, timeout: HTTP_TIMEOUT_MS },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (chunk: Buffer) => chunks.push(chunk));
          res.on("error", reject);
          res.on("end", () => {
            const body = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
            resolve({
              status: res.statusCode ?? 0,
              header: (name) => {
                const value = res.headers[name.toLowerCase()];
                return value === undefined ? null : Array.isArray(value) ? value.join(", ") : value;
              },
              body: new Uint8Array(body.buffer, body.byteOffset, body.byteLength),
            });
          });
        },
      );
      req.on("timeout", () => req.destroy(new Error(`no answer from ${url.host} within ${HTTP_TIMEOUT_MS} ms`)));
      req.on("error", reject);
      req.end(request.body);
    });
}
