/**
 * The address guard's classification and allow-list (docs/webhooks.md, "Address guard"), with
 * an in-memory resolver: nothing here sends a packet, so public addresses may appear.
 */
import { describe, expect, it } from "vitest";
import { createAddressGuard, type Resolver } from "../../functions/push/address-guard.ts";
import { dohResolver } from "../../functions/push/resolve-doh.ts";
import { ReservoirError } from "../../storage/errors.ts";

/** A resolver that knows a fixed table and records what it was asked. */
function fakeResolver(table: Record<string, string[] | Error>): Resolver & { asked: string[] } {
  const asked: string[] = [];
  const resolve = async (hostname: string) => {
    asked.push(hostname);
    const answer = table[hostname];
    if (answer instanceof Error) throw answer;
    return answer ?? [];
  };
  return Object.assign(resolve, { asked });
}

const noDns = fakeResolver({});

async function refusal(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(ReservoirError);
    expect((error as ReservoirError).code).toBe("url_not_allowed");
    return (error as ReservoirError).detail;
  }
  throw new Error("expected url_not_allowed");
}

describe("classification of literal addresses (no allow-list)", () => {
  const guard = createAddressGuard(undefined, noDns);

  it.each([
    ["http://127.0.0.1/", "127.0.0.1 is loopback"],
    ["http://127.1.2.3/", "127.1.2.3 is loopback"],
    ["http://10.0.0.1/", "10.0.0.1 is private"],
    ["http://10.255.255.255/", "10.255.255.255 is private"],
    ["http://172.16.0.1/", "172.16.0.1 is private"],
    ["http://172.31.255.254/", "172.31.255.254 is private"],
    ["http://192.168.1.1/", "192.168.1.1 is private"],
    ["http://169.254.169.254/", "169.254.169.254 is link-local"],
    ["http://100.64.0.1/", "100.64.0.1 is carrier-grade NAT"],
    ["http://100.127.255.254/", "100.127.255.254 is carrier-grade NAT"],
    ["http://0.0.0.0/", "0.0.0.0 is unspecified"],
    ["http://0.1.2.3/", "0.1.2.3 is unspecified"],
    ["http://255.255.255.255/", "255.255.255.255 is broadcast"],
    ["http://224.0.0.1/", "224.0.0.1 is multicast"],
    ["http://239.255.255.250/", "239.255.255.250 is multicast"],
    ["http://240.0.0.1/", "240.0.0.1 is reserved"],
    ["http://192.0.2.1/", "192.0.2.1 is documentation"],
    ["http://198.51.100.7/", "198.51.100.7 is documentation"],
    ["http://203.0.113.9/", "203.0.113.9 is documentation"],
    ["http://198.18.0.1/", "198.18.0.1 is benchmarking"],
    ["http://198.19.255.1/", "198.19.255.1 is benchmarking"],
    ["http://192.0.0.8/", "192.0.0.8 is IETF protocol assignments"],
    ["http://[::]/", ":: is unspecified"],
    ["http://[::1]/", "::1 is loopback"],
    ["http://[fe80::1]/", "fe80::1 is link-local"],
    ["http://[fc00::1]/", "fc00::1 is unique-local"],
    ["http://[fd12::1]/", "fd12::1 is unique-local"],
    ["http://[ff02::1]/", "ff02::1 is multicast"],
    ["http://[fec0::1]/", "fec0::1 is site-local"],
    ["http://[100::1]/", "100::1 is discard-only"],
    ["http://[2001:db8::1]/", "2001:db8::1 is documentation"],
    ["http://[3fff::1]/", "3fff::1 is documentation"],
    ["http://[2001::1]/", "2001::1 is Teredo (reserved)"],
    ["http://[2001:2::1]/", "2001:2::1 is benchmarking"],
    ["http://[2001:1ff::1]/", "2001:1ff::1 is IETF reserved"],
    ["http://[::ffff:127.0.0.1]/", "::ffff:7f00:1 is loopback (IPv4-mapped 127.0.0.1)"],
    ["http://[::ffff:7f00:1]/", "::ffff:7f00:1 is loopback (IPv4-mapped 127.0.0.1)"],
    ["http://[::ffff:10.0.0.1]/", "::ffff:a00:1 is private (IPv4-mapped 10.0.0.1)"],
    ["http://[::ffff:169.254.169.254]/", "::ffff:a9fe:a9fe is link-local (IPv4-mapped 169.254.169.254)"],
    ["http://[64:ff9b::7f00:1]/", "64:ff9b::7f00:1 is loopback (NAT64 of 127.0.0.1)"],
    ["http://[64:ff9b::a9fe:a9fe]/", "64:ff9b::a9fe:a9fe is link-local (NAT64 of 169.254.169.254)"],
    ["http://[64:ff9b:1::1]/", "64:ff9b:1::1 is local-use NAT64"],
    ["http://[2002:7f00:1::]/", "2002:7f00:1:: is loopback (6to4 of 127.0.0.1)"],
    ["http://[2002:c0a8:101::1]/", "2002:c0a8:101::1 is private (6to4 of 192.168.1.1)"],
    ["http://[::7f00:1]/", "::7f00:1 is IPv4-compatible (deprecated)"],
    ["http://[::808:808]/", "::808:808 is IPv4-compatible (deprecated)"],
    ["http://[::ffff:0:7f00:1]/", "::ffff:0:7f00:1 is IPv4-translated"],
    ["http://[4000::1]/", "4000::1 is reserved (outside 2000::/3)"],
    // The URL parser turns every IPv4 spelling into dotted decimal before the guard sees it.
    ["http://2130706433/", "127.0.0.1 is loopback"],
    ["http://0x7f.1/", "127.0.0.1 is loopback"],
    ["http://0177.0.0.1/", "127.0.0.1 is loopback"],
    ["http://127.1/", "127.0.0.1 is loopback"],
    ["http://0/", "0.0.0.0 is unspecified"],
    ["https://[::ffff:a9fe:a9fe]:8443/path", "::ffff:a9fe:a9fe is link-local (IPv4-mapped 169.254.169.254)"],
  ])("refuses %s", async (url, detail) => {
    expect(await refusal(guard.check(new URL(url)))).toBe(detail);
  });

  it.each([
    ["http://8.8.8.8/", "8.8.8.8"],
    ["https://1.1.1.1:8443/hook", "1.1.1.1"],
    ["http://100.63.255.255/", "100.63.255.255"],
    ["http://100.128.0.1/", "100.128.0.1"],
    ["http://172.15.255.255/", "172.15.255.255"],
    ["http://172.32.0.1/", "172.32.0.1"],
    ["http://198.20.0.1/", "198.20.0.1"],
    ["http://223.255.255.254/", "223.255.255.254"],
    ["http://[2606:4700::1111]/", "2606:4700::1111"],
    ["http://[2a00:1450:4001::200e]/", "2a00:1450:4001::200e"],
    ["http://[::ffff:8.8.8.8]/", "::ffff:808:808"],
    ["http://[64:ff9b::808:808]/", "64:ff9b::808:808"],
    ["http://[2002:808:808::1]/", "2002:808:808::1"],
  ])("permits the public %s", async (url, address) => {
    expect(await guard.check(new URL(url))).toEqual([address]);
    expect(guard.permits("any.example", address)).toBe(true);
  });

  it("does not resolve literal addresses", async () => {
    const resolver = fakeResolver({});
    const g = createAddressGuard(undefined, resolver);
    await g.check(new URL("http://8.8.8.8/"));
    await refusal(g.check(new URL("http://[::1]/")));
    expect(resolver.asked).toEqual([]);
  });

  it.each(["ftp://8.8.8.8/", "file:///etc/passwd", "ws://8.8.8.8/", "data:text/plain,x", "javascript:alert(1)"])(
    "refuses the scheme of %s",
    async (url) => {
      expect(await refusal(guard.check(new URL(url)))).toMatch(/must be http: or https:/);
    },
  );

  it("permits() judges single addresses the same way", () => {
    expect(guard.permits("hook.example", "127.0.0.1")).toBe(false);
    expect(guard.permits("hook.example", "::ffff:10.0.0.1")).toBe(false);
    expect(guard.permits("hook.example", "fe80::1%eth0")).toBe(false);
    expect(guard.permits("hook.example", "not an address")).toBe(false);
    expect(guard.permits("hook.example", "93.184.215.14")).toBe(true);
  });
});

describe("host names", () => {
  const resolver = fakeResolver({
    "public.example": ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"],
    "mixed.example": ["93.184.215.14", "10.0.0.5"],
    "mixed6.example": ["2606:4700::1111", "::ffff:127.0.0.1"],
    "rebind.example": ["127.0.0.1"],
    "metadata.example": ["169.254.169.254"],
    "empty.example": [],
    "broken.example": new Error("SERVFAIL"),
  });
  const guard = createAddressGuard(undefined, resolver);

  it("permits a name whose every address is public, and returns them", async () => {
    expect(await guard.check(new URL("https://public.example/hook"))).toEqual(["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"]);
  });

  it("refuses a name if any address is refused, naming it and its range", async () => {
    expect(await refusal(guard.check(new URL("http://mixed.example/")))).toBe("mixed.example: 10.0.0.5 is private");
    expect(await refusal(guard.check(new URL("http://mixed6.example/")))).toBe(
      "mixed6.example: ::ffff:127.0.0.1 is loopback (IPv4-mapped 127.0.0.1)",
    );
    expect(await refusal(guard.check(new URL("http://rebind.example/")))).toBe("rebind.example: 127.0.0.1 is loopback");
    expect(await refusal(guard.check(new URL("http://metadata.example/")))).toBe("metadata.example: 169.254.169.254 is link-local");
  });

  it("refuses a name that resolves to nothing or whose resolution fails", async () => {
    expect(await refusal(guard.check(new URL("http://empty.example/")))).toBe("empty.example did not resolve to any address");
    expect(await refusal(guard.check(new URL("http://broken.example/")))).toBe("broken.example did not resolve: SERVFAIL");
    expect(await refusal(guard.check(new URL("http://unknown.example/")))).toMatch(/unknown\.example did not resolve/);
  });

  it("compares names case-insensitively and without the trailing dot", async () => {
    expect(await refusal(guard.check(new URL("http://REBIND.Example./")))).toBe("rebind.example: 127.0.0.1 is loopback");
  });

  it("treats localhost and *.localhost as loopback without resolving them", async () => {
    const r = fakeResolver({ localhost: ["8.8.8.8"], "app.localhost": ["8.8.8.8"] });
    const g = createAddressGuard(undefined, r);
    expect(await refusal(g.check(new URL("http://localhost:8080/")))).toBe("localhost: 127.0.0.1 is loopback");
    expect(await refusal(g.check(new URL("http://LOCALHOST./")))).toBe("localhost: 127.0.0.1 is loopback");
    expect(await refusal(g.check(new URL("http://app.localhost/")))).toBe("app.localhost: 127.0.0.1 is loopback");
    expect(r.asked).toEqual([]);
  });
});

describe("allow-list (RESERVOIR_WEBHOOK_ALLOW_PRIVATE)", () => {
  const resolver = fakeResolver({
    "svc.internal": ["10.1.2.3", "fd00::3"],
    "other.internal": ["10.1.2.3"],
    "db.internal": ["10.9.9.9"],
  });

  it("a CIDR lets its addresses through, and only those", async () => {
    const guard = createAddressGuard("10.0.0.0/8", resolver);
    expect(await guard.check(new URL("http://10.200.0.1/"))).toEqual(["10.200.0.1"]);
    expect(await guard.check(new URL("http://other.internal/"))).toEqual(["10.1.2.3"]);
    expect(await refusal(guard.check(new URL("http://192.168.0.1/")))).toBe("192.168.0.1 is private");
    expect(await refusal(guard.check(new URL("http://127.0.0.1/")))).toBe("127.0.0.1 is loopback");
    // Every address of a name must pass: fd00::3 is not listed.
    expect(await refusal(guard.check(new URL("http://svc.internal/")))).toBe("svc.internal: fd00::3 is unique-local");
    expect(guard.permits("x", "10.255.0.1")).toBe(true);
    expect(guard.permits("x", "11.0.0.1")).toBe(true); // public anyway
    expect(guard.permits("x", "172.16.0.1")).toBe(false);
  });

  it("a single address lets exactly that address through", async () => {
    const guard = createAddressGuard("127.0.0.1", resolver);
    expect(await guard.check(new URL("http://127.0.0.1:9000/"))).toEqual(["127.0.0.1"]);
    expect(await refusal(guard.check(new URL("http://127.0.0.2/")))).toBe("127.0.0.2 is loopback");
    expect(await refusal(guard.check(new URL("http://[::1]/")))).toBe("::1 is loopback");
  });

  it("an IPv4-mapped address matches IPv4 entries, and a mapped entry matches IPv4", async () => {
    const guard = createAddressGuard("127.0.0.0/8, 192.168.7.7", resolver);
    expect(await guard.check(new URL("http://[::ffff:127.0.0.1]/"))).toEqual(["::ffff:7f00:1"]);
    expect(guard.permits("x", "::ffff:192.168.7.7")).toBe(true);
    expect(guard.permits("x", "::ffff:192.168.7.8")).toBe(false);
    const mapped = createAddressGuard("::ffff:10.0.0.0/104", resolver);
    expect(mapped.permits("x", "10.3.4.5")).toBe(true);
    expect(mapped.permits("x", "11.0.0.1")).toBe(true);
    expect(mapped.permits("x", "192.168.0.1")).toBe(false);
  });

  it("NAT64 and 6to4 forms are not unwrapped for the allow-list", () => {
    const guard = createAddressGuard("10.0.0.0/8", resolver);
    expect(guard.permits("x", "64:ff9b::a00:1")).toBe(false);
    expect(guard.permits("x", "2002:a00:1::")).toBe(false);
  });

  it("IPv6 CIDRs and addresses (bracketed or not)", async () => {
    const guard = createAddressGuard("fd00::/8,[::1], fe80::/10", resolver);
    expect(await guard.check(new URL("http://[fd12:3456::1]/"))).toEqual(["fd12:3456::1"]);
    expect(await guard.check(new URL("http://[::1]/"))).toEqual(["::1"]);
    expect(await guard.check(new URL("http://[fe80::abcd]/"))).toEqual(["fe80::abcd"]);
    expect(await refusal(guard.check(new URL("http://[fc00::1]/")))).toBe("fc00::1 is unique-local");
    expect(await refusal(guard.check(new URL("http://127.0.0.1/")))).toBe("127.0.0.1 is loopback");
    // IPv4 addresses never match IPv6 entries, and the other way round.
    expect(createAddressGuard("::/0", resolver).permits("x", "10.0.0.1")).toBe(false);
    expect(createAddressGuard("0.0.0.0/0", resolver).permits("x", "fd00::1")).toBe(false);
  });

  it("a host name entry lets that host through, whatever its addresses", async () => {
    const guard = createAddressGuard("SVC.internal", resolver);
    expect(await guard.check(new URL("http://svc.internal:8080/x"))).toEqual(["10.1.2.3", "fd00::3"]);
    expect(await guard.check(new URL("http://Svc.Internal./"))).toEqual(["10.1.2.3", "fd00::3"]);
    expect(guard.permits("svc.internal", "127.0.0.1")).toBe(true);
    // Exact names: neither another name with the same address nor a subdomain.
    expect(await refusal(guard.check(new URL("http://other.internal/")))).toBe("other.internal: 10.1.2.3 is private");
    expect(await refusal(guard.check(new URL("http://a.svc.internal/")))).toMatch(/did not resolve/);
    expect(guard.permits("other.internal", "10.1.2.3")).toBe(false);
    expect(await refusal(guard.check(new URL("http://10.1.2.3/")))).toBe("10.1.2.3 is private");
  });

  it("a listed host still has to resolve", async () => {
    const guard = createAddressGuard("gone.internal", resolver);
    expect(await refusal(guard.check(new URL("http://gone.internal/")))).toBe("gone.internal did not resolve to any address");
  });

  it("localhost can be listed by name or by its addresses", async () => {
    const r = fakeResolver({});
    expect(await createAddressGuard("localhost", r).check(new URL("http://localhost/"))).toEqual(["127.0.0.1", "::1"]);
    expect(await createAddressGuard("127.0.0.1,::1", r).check(new URL("http://localhost/"))).toEqual(["127.0.0.1", "::1"]);
    expect(await refusal(createAddressGuard("127.0.0.1", r).check(new URL("http://localhost/")))).toBe("localhost: ::1 is loopback");
    expect(r.asked).toEqual([]);
  });

  it("ignores blanks and surrounding spaces", async () => {
    const guard = createAddressGuard(" , 10.0.0.0/8 ,, 192.168.0.1 ,", resolver);
    expect(guard.permits("x", "10.0.0.1")).toBe(true);
    expect(guard.permits("x", "192.168.0.1")).toBe(true);
    expect(createAddressGuard("", resolver).permits("x", "10.0.0.1")).toBe(false);
  });

  it.each([
    "10.0.0.0/33",
    "fd00::/129",
    "10.0.0.0/",
    "not a host",
    "*.internal",
    "host.internal:8080",
    "http://host.internal",
    "user@host.internal",
    "-bad.internal",
    "bad-.internal",
    "a..b",
    "256.1.2.3/8",
    "::1::2",
  ])("refuses the invalid entry %j at creation, naming it", (entry) => {
    expect(() => createAddressGuard(`10.0.0.0/8,${entry}`, resolver)).toThrow(`"${entry}"`);
  });
});

describe("DNS over HTTPS resolver", () => {
  /** A fetch that answers from a table of JSON bodies by query type, recording the requests. */
  function fakeDoh(answers: Record<string, unknown>, status = 200) {
    const requests: { url: URL; accept: string | null }[] = [];
    const fetchFn = (async (input: RequestInfo | URL, init?: RequestInit) => {
      const url = new URL(String(input));
      requests.push({ url, accept: new Headers(init?.headers).get("accept") });
      const body = answers[url.searchParams.get("type") ?? ""];
      if (body instanceof Error) throw body;
      return new Response(JSON.stringify(body ?? { Status: 0 }), { status });
    }) as typeof fetch;
    return { fetchFn, requests };
  }

  it("asks for A and AAAA and keeps only address records", async () => {
    const { fetchFn, requests } = fakeDoh({
      A: {
        Status: 0,
        Answer: [
          { name: "hook.example", type: 5, data: "edge.example." },
          { name: "edge.example", type: 1, data: "93.184.215.14" },
          { name: "edge.example", type: 1, data: "not-an-ip" },
        ],
      },
      AAAA: { Status: 0, Answer: [{ name: "edge.example", type: 28, data: "2606:2800:21f::1" }] },
    });
    const resolve = dohResolver("https://doh.test/dns-query", fetchFn);
    expect(await resolve("hook.example")).toEqual(["93.184.215.14", "2606:2800:21f::1"]);
    expect(
      requests.map((r) => [r.url.origin + r.url.pathname, r.url.searchParams.get("name"), r.url.searchParams.get("type"), r.accept]),
    ).toEqual([
      ["https://doh.test/dns-query", "hook.example", "A", "application/dns-json"],
      ["https://doh.test/dns-query", "hook.example", "AAAA", "application/dns-json"],
    ]);
  });

  it("an NXDOMAIN is no address; other failures throw", async () => {
    expect(await dohResolver("https://doh.test/q", fakeDoh({ A: { Status: 3 }, AAAA: { Status: 3 } }).fetchFn)("x.example")).toEqual([]);
    await expect(dohResolver("https://doh.test/q", fakeDoh({ A: { Status: 2 } }).fetchFn)("x.example")).rejects.toThrow(/status 2/);
    await expect(dohResolver("https://doh.test/q", fakeDoh({}, 500).fetchFn)("x.example")).rejects.toThrow(/HTTP 500/);
    await expect(dohResolver("https://doh.test/q", fakeDoh({ AAAA: new TypeError("network") }).fetchFn)("x.example")).rejects.toThrow(
      /network/,
    );
  });

  it("feeds the guard, which refuses what it returns when private", async () => {
    const { fetchFn } = fakeDoh({ A: { Status: 0, Answer: [{ type: 1, data: "10.0.0.1" }] }, AAAA: { Status: 0 } });
    const guard = createAddressGuard(undefined, dohResolver("https://doh.test/q", fetchFn));
    expect(await refusal(guard.check(new URL("https://hook.example/")))).toBe("hook.example: 10.0.0.1 is private");
  });
});
