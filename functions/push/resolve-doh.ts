/**
 * The address guard's resolver on Workers, which have no DNS API: DNS over HTTPS, JSON form
 * (RFC 8484 servers such as Cloudflare's and Google's also answer application/dns-json).
 */
import ipaddr from "ipaddr.js";
import type { Resolver } from "./address-guard.ts";

const TIMEOUT_MS = 5_000;
const A = 1;
const AAAA = 28;
const NXDOMAIN = 3;

interface DnsJson {
  Status?: number;
  Answer?: { type?: number; data?: string }[];
}

export function dohResolver(endpoint = "https://cloudflare-dns.com/dns-query", fetchFn: typeof fetch = fetch): Resolver {
  const query = async (hostname: string, type: typeof A | typeof AAAA): Promise<string[]> => {
    const url = new URL(endpoint);
    url.searchParams.set("name", hostname);
    url.searchParams.set("type", type === A ? "A" : "AAAA");
    const response = await fetchFn(url, {
      headers: { accept: "application/dns-json" },
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
    if (!response.ok) throw new Error(`DNS over HTTPS answered HTTP ${response.status}`);
    const body = (await response.json()) as DnsJson;
    if (body.Status === NXDOMAIN) return [];
    if (body.Status !== 0) throw new Error(`DNS over HTTPS answered DNS status ${String(body.Status)}`);
    // The answer also lists the CNAME chain; only the addresses it ends in are wanted, and only
    // well-formed ones of the family asked for, since they are what the guard judges.
    const isFamily = (data: string) => (type === A ? ipaddr.IPv4.isValidFourPartDecimal(data) : ipaddr.IPv6.isValid(data));
    return (body.Answer ?? [])
      .filter((record) => record.type === type && typeof record.data === "string" && isFamily(record.data))
      .map((record) => record.data as string);
  };

  return async (hostname) => {
    const [v4, v6] = await Promise.all([query(hostname, A), query(hostname, AAAA)]);
    return [...v4, ...v6];
  };
}
