/**
 * The address guard (docs/webhooks.md, "Address guard"): outbound calls reach only public
 * unicast addresses, unless RESERVOIR_WEBHOOK_ALLOW_PRIVATE names the target.
 *
 * It allows rather than denies: an address passes only if it is public unicast or listed, so a
 * special range nobody thought of is refused, not let through.
 */
import ipaddr from "ipaddr.js";
import { ReservoirError } from "../../storage/errors.ts";

/** Resolves a host name to IP address strings (IPv4 dotted, IPv6 without brackets). */
export type Resolver = (hostname: string) => Promise<string[]>;

export interface AddressGuard {
  /**
   * The addresses `url` may be reached at. Throws ReservoirError("url_not_allowed") with a
   * detail naming the reason (scheme, a refused address and its range, or no address).
   */
  check(url: URL): Promise<string[]>;
  /** Whether connecting to `address` for `hostname` is allowed (for transports that pin). */
  permits(hostname: string, address: string): boolean;
}

type IP = ipaddr.IPv4 | ipaddr.IPv6;
type Cidr = [IP, number];

const labels: Record<string, string> = {
  unspecified: "unspecified",
  broadcast: "broadcast",
  multicast: "multicast",
  linkLocal: "link-local",
  loopback: "loopback",
  carrierGradeNat: "carrier-grade NAT",
  private: "private",
  as112: "AS112 (reserved)",
  amt: "AMT (reserved)",
  uniqueLocal: "unique-local",
  deprecatedSiteLocal: "site-local",
  discard: "discard-only",
  rfc6145: "IPv4-translated",
  rfc6052: "local-use NAT64",
  teredo: "Teredo (reserved)",
  benchmarking: "benchmarking",
  as112v6: "AS112 (reserved)",
  deprecatedOrchid: "ORCHID (reserved)",
  orchid2: "ORCHIDv2 (reserved)",
  droneRemoteIdProtocolEntityTags: "DET (reserved)",
  segmentRouting: "segment routing (reserved)",
};

/** ipaddr.js calls all of these "reserved"; the finer names make a refusal easier to act on. */
const ipv4Reserved: Record<string, [ipaddr.IPv4, number][]> = {
  documentation: ["192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"].map((c) => ipaddr.IPv4.parseCIDR(c)),
  benchmarking: [ipaddr.IPv4.parseCIDR("198.18.0.0/15")],
  "IETF protocol assignments": [ipaddr.IPv4.parseCIDR("192.0.0.0/24")],
};
const ipv6Reserved: Record<string, [ipaddr.IPv6, number][]> = {
  documentation: ["2001:db8::/32", "3fff::/20"].map((c) => ipaddr.IPv6.parseCIDR(c)),
};
const nat64 = ipaddr.IPv6.parseCIDR("64:ff9b::/96");
// Every global unicast allocation is in 2000::/3; ipaddr.js calls the rest of the space unicast.
const globalUnicast = ipaddr.IPv6.parseCIDR("2000::/3");

function embeddedIPv4(parts: number[], high: number): ipaddr.IPv4 {
  return new ipaddr.IPv4([parts[high] >> 8, parts[high] & 0xff, parts[high + 1] >> 8, parts[high + 1] & 0xff]);
}

/** "unicast" for a public unicast address, else the name of the range that makes it special. */
function rangeOf(ip: IP): string {
  if (ip instanceof ipaddr.IPv4) {
    const range = ip.range();
    if (range === "reserved") return ipaddr.subnetMatch(ip, ipv4Reserved, "reserved");
    return range === "unicast" ? range : (labels[range] ?? range);
  }
  // Forms that carry an IPv4 address reach that address: they are judged by it.
  const range = ip.range();
  if (range === "ipv4Mapped") return viaIPv4("IPv4-mapped", ip.toIPv4Address());
  if (ip.match(nat64)) return viaIPv4("NAT64 of", embeddedIPv4(ip.parts, 6));
  if (range === "6to4") return viaIPv4("6to4 of", embeddedIPv4(ip.parts, 1));
  if (range === "reserved") return ipaddr.subnetMatch(ip, ipv6Reserved, "IETF reserved");
  if (range !== "unicast") return labels[range] ?? range;
  if (ip.parts.slice(0, 6).every((p) => p === 0)) return "IPv4-compatible (deprecated)";
  if (!ip.match(globalUnicast)) return "reserved (outside 2000::/3)";
  return "unicast";
}

function viaIPv4(form: string, ip: ipaddr.IPv4): string {
  const range = rangeOf(ip);
  return range === "unicast" ? range : `${range} (${form} ${ip.toString()})`;
}

function parseAddress(address: string): IP | undefined {
  const bare = unbracket(address);
  return ipaddr.isValid(bare) ? ipaddr.parse(bare) : undefined;
}

function unbracket(host: string): string {
  return host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
}

/** The form host names are compared in: lower case, without the root's trailing dot. */
function canonicalHost(host: string): string {
  const lower = unbracket(host).toLowerCase();
  return lower.endsWith(".") ? lower.slice(0, -1) : lower;
}

function isLocalhost(host: string): boolean {
  return host === "localhost" || host.endsWith(".localhost");
}

/** An IPv4-mapped address reaches its IPv4 address, so IPv4 entries must match it. */
function unmapped(ip: IP): IP {
  return ip instanceof ipaddr.IPv6 && ip.isIPv4MappedAddress() ? ip.toIPv4Address() : ip;
}

function network(ip: IP, bits = ip instanceof ipaddr.IPv4 ? 32 : 128): Cidr {
  return ip instanceof ipaddr.IPv6 && ip.isIPv4MappedAddress() && bits >= 96 ? [ip.toIPv4Address(), bits - 96] : [ip, bits];
}

const hostLabel = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;

interface AllowList {
  hosts: Set<string>;
  networks: Cidr[];
}

function parseAllowList(value: string | undefined): AllowList {
  const list: AllowList = { hosts: new Set(), networks: [] };
  for (const raw of (value ?? "").split(",")) {
    const entry = raw.trim();
    if (entry === "") continue;
    const invalid = () => new Error(`RESERVOIR_WEBHOOK_ALLOW_PRIVATE: "${entry}" is not a host name, an IP address or a CIDR`);
    if (entry.includes("/")) {
      if (!ipaddr.isValidCIDR(entry)) throw invalid();
      list.networks.push(network(...ipaddr.parseCIDR(entry)));
      continue;
    }
    const ip = parseAddress(entry);
    if (ip) {
      list.networks.push(network(ip));
      continue;
    }
    if (/[?#@:\\]/.test(entry)) throw invalid();
    // Parsed as a URL host so that the entry is compared in the form URL.hostname has
    // (lower case, punycode).
    let host: string;
    try {
      host = canonicalHost(new URL(`http://${entry}/`).hostname);
    } catch {
      throw invalid();
    }
    if (host.length > 253 || !host.split(".").every((label) => hostLabel.test(label))) throw invalid();
    list.hosts.add(host);
  }
  return list;
}

export function createAddressGuard(allowList: string | undefined, resolve: Resolver): AddressGuard {
  const allowed = parseAllowList(allowList);

  const listed = (ip: IP): boolean => {
    const target = unmapped(ip);
    return allowed.networks.some(([net, bits]) => net.kind() === target.kind() && target.match(net, bits));
  };

  /** Why `address` is refused, or undefined if it may be reached. */
  const refusal = (address: string): string | undefined => {
    const ip = parseAddress(address);
    if (!ip) return `${address} is not an IP address`;
    if (listed(ip)) return undefined;
    const range = rangeOf(ip);
    return range === "unicast" ? undefined : `${address} is ${range}`;
  };

  const addressesOf = async (host: string): Promise<string[]> => {
    if (parseAddress(host)) return [host];
    // RFC 6761: localhost is loopback whatever a resolver says, and is never sent to one.
    if (isLocalhost(host)) return ["127.0.0.1", "::1"];
    let addresses: string[];
    try {
      addresses = await resolve(host);
    } catch (error) {
      const reason = error instanceof Error ? `: ${error.message}` : "";
      throw new ReservoirError("url_not_allowed", `${host} did not resolve${reason}`);
    }
    if (addresses.length === 0) throw new ReservoirError("url_not_allowed", `${host} did not resolve to any address`);
    return addresses;
  };

  return {
    async check(url) {
      if (url.protocol !== "http:" && url.protocol !== "https:") {
        throw new ReservoirError("url_not_allowed", `the URL must be http: or https:, not ${url.protocol}`);
      }
      const host = canonicalHost(url.hostname);
      const addresses = await addressesOf(host);
      if (allowed.hosts.has(host)) return addresses;
      for (const address of addresses) {
        const reason = refusal(address);
        if (reason !== undefined) {
          const named = address === host ? reason : `${host}: ${reason}`;
          throw new ReservoirError("url_not_allowed", named);
        }
      }
      return addresses;
    },

    permits(hostname, address) {
      return allowed.hosts.has(canonicalHost(hostname)) || refusal(address) === undefined;
    },
  };
}
