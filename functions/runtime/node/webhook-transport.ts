/**
 * The webhook transport on Node: undici, with the address guard inside the connection's DNS
 * lookup. The socket connects to exactly the addresses the guard judged, so a name cannot
 * resolve to a public address for the check and to a private one for the connection.
 */
import { lookup as dnsLookup } from "node:dns";
import { isIP, type LookupFunction } from "node:net";
import { Agent, request } from "undici";
import { ReservoirError } from "../../../storage/errors.ts";
import type { AddressGuard } from "../../push/address-guard.ts";
import type { WebhookTransport } from "../../push/transport.ts";
import { MAX_RESPONSE_BYTES, failure } from "../../push/transport-fetch.ts";

const KEEP_ALIVE_MS = 30_000;

/** All of a name's addresses or none: the same rule as AddressGuard.check. */
function guardedLookup(guard: AddressGuard): LookupFunction {
  return (hostname, options, callback) => {
    dnsLookup(hostname, { all: true, verbatim: true, family: options.family ?? 0 }, (error, addresses) => {
      if (error) return callback(error, []);
      const refused = addresses.find(({ address }) => !guard.permits(hostname, address));
      if (refused) {
        return callback(new ReservoirError("url_not_allowed", `${hostname} resolves to ${refused.address}, which is not allowed`), []);
      }
      if (addresses.length === 0) {
        return callback(new ReservoirError("url_not_allowed", `${hostname} did not resolve to any address`), []);
      }
      // net asks for every address when it races IPv4 and IPv6 (autoSelectFamily), else for one.
      if (options.all) return callback(null, addresses);
      callback(null, addresses[0].address, addresses[0].family);
    });
  };
}

export function nodeTransport(guard: AddressGuard): WebhookTransport & { close(): Promise<void> } {
  const agent = new Agent({
    keepAliveTimeout: KEEP_ALIVE_MS,
    connect: { lookup: guardedLookup(guard) },
  });

  const transport: WebhookTransport = async ({ url, headers, body, timeoutMs, keepBody }) => {
    try {
      const host = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname;
      // Literal addresses never reach the lookup; the scheme is not the lookup's business.
      if (isIP(host) !== 0 || (url.protocol !== "http:" && url.protocol !== "https:")) await guard.check(url);
      const response = await request(url, {
        method: "POST",
        headers,
        body,
        dispatcher: agent,
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
        signal: AbortSignal.timeout(timeoutMs),
      });
      const kept = await discard(response.body, keepBody === true);
      const retryAfter = response.headers["retry-after"];
      return {
        kind: "response",
        status: response.statusCode,
        retryAfter: (Array.isArray(retryAfter) ? retryAfter[0] : retryAfter) ?? null,
        ...(kept !== undefined && { body: kept }),
      };
    } catch (error) {
      return failure(error, timeoutMs);
    }
  };

  return Object.assign(transport, { close: () => agent.close() });
}

/** Once the status is in, a body that fails or times out changes nothing (kept: what arrived, if asked). */
async function discard(body: AsyncIterable<Buffer> & { destroy(): unknown }, keep: boolean): Promise<string | undefined> {
  let read = 0;
  const chunks: Buffer[] = [];
  try {
    for await (const chunk of body) {
      read += chunk.length;
      if (keep && read <= MAX_RESPONSE_BYTES) chunks.push(chunk);
      // Leaving the loop destroys the stream, which closes the connection instead of draining it.
      if (read > MAX_RESPONSE_BYTES) break;
    }
  } catch {
    body.destroy();
  }
  return keep ? Buffer.concat(chunks).toString("utf8") : undefined;
}
