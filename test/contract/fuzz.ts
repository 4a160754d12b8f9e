// A fuzz test of every route of the OpenAPI document (GET /openapi.json), with fast-check and
// fixed seeds: malformed JSON, wrong types, boundary values, odd content types, path tricks
// (%00, %2F, .., unicode), NUL and lone surrogates, bodies past the limits. Whatever the
// request, the answer is below 500 and one the route's OpenAPI responses list, and every 4xx is
// problem+json with a `code`; for a sample of the refused requests, nothing the tenant can see
// changed.
//
// Short in `npm test` (RESERVOIR_FUZZ_RUNS runs per route, default 12, seed 20261203); a long
// run: `RESERVOIR_FUZZ_RUNS=500 RESERVOIR_FUZZ_SEED=<n> npx vitest run test/contract/node-embedded.test.ts -t fuzz`.
// A failure prints the seed, the path into the run and the request: rerun with both to replay.

import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { api, assertProblem, assertStatus, describeResponse, type Api, type ApiResponse } from "../support/http.ts";
import { showServerOutputOnFailure, type ContractTarget } from "./contract.ts";

const SEED = Number(process.env.RESERVOIR_FUZZ_SEED ?? 20261203);
const RUNS = Number(process.env.RESERVOIR_FUZZ_RUNS ?? 12);
/** The long mode's floor (`npm run reliability -- --fuzz --long`): fewer generated requests fail the run. */
const MIN_REQUESTS = Number(process.env.RESERVOIR_FUZZ_MIN_REQUESTS ?? 0);
/** One refused request in this many is checked for side effects (two snapshots around it). */
const SNAPSHOT_EVERY = 3;

type Schema = Record<string, any>;
interface Operation {
  method: string;
  path: string;
  parameters: { name: string; in: string; required?: boolean; schema?: Schema }[];
  body?: { contentTypes: string[]; schema: Schema; required: boolean };
  admin: boolean;
  /** The statuses the document says this route answers. */
  statuses: string[];
}

export interface FuzzRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  contentType: string | null;
  body: string | undefined;
  token: "valid" | "none" | "garbage";
}

// ------------------------------------------------------------------ values

const NASTY_STRINGS = [
  "",
  "\u0000",
  "a\u0000b",
  "\ud800",
  "x\udc00y",
  "\ud83d",
  "é",
  "😀",
  "..",
  "a/b",
  "a%2Fb",
  " ",
  "x".repeat(300),
  "null",
  "0",
  "-1",
  "__proto__",
];
const NASTY_NUMBERS = [
  0,
  -1,
  1,
  -0,
  0.5,
  1e308,
  -1e308,
  2 ** 31,
  2 ** 53,
  2 ** 53 + 2,
  Number.MAX_SAFE_INTEGER,
  255,
  256,
  1000,
  1001,
  43_200,
  43_201,
];

/** Path segments: the fixture's names and the tricks a proxy or router may stumble on. */
const SEGMENT_TRICKS = [
  "%00",
  "a%00b",
  "%2F",
  "a%2Fb",
  "..",
  "%2e%2e",
  ".",
  "%ED%A0%80",
  "%FF",
  "%C3%A9",
  "%F0%9F%98%80",
  "%20",
  "%",
  "%zz",
  "x".repeat(250),
  "a\\b".replace("\\", "%5C"),
  "-",
  "_",
  "a.b",
];

const nastyString = fc.oneof(fc.constantFrom(...NASTY_STRINGS), fc.string({ maxLength: 12 }), fc.string({ unit: "binary", maxLength: 8 }));
const nastyNumber = fc.oneof(fc.constantFrom(...NASTY_NUMBERS), fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }));
const wrongType = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  nastyNumber,
  nastyString,
  fc.constant([]),
  fc.constant({}),
  fc.constant([1, "a"]),
);

/** Fields whose valid values would make the fuzz slow or reach out (long polls, webhook hosts). */
const SPECIAL: Record<string, fc.Arbitrary<unknown>> = {
  waitMs: fc.constantFrom(0, -1, 30_001, 1.5, "5", null),
  url: fc.constantFrom(
    "http://127.0.0.1:9/hook",
    "ftp://127.0.0.1/x",
    "not a url",
    "http://10.0.0.1/",
    "http://[::1]/",
    "http://169.254.169.254/",
    "http://127.0.0.1:9/\u0000",
    "",
    5,
  ),
  receipts: fc.oneof(fc.array(nastyString, { maxLength: 3 }), fc.constant(Array.from({ length: 1001 }, () => "r")), wrongType),
};

/** Values that follow a JSON schema loosely (the right shape, any boundary) or break it. */
function fromSchema(schema: Schema | undefined, components: Record<string, Schema>, depth = 0): fc.Arbitrary<unknown> {
  if (!schema || depth > 4) return wrongType;
  if (schema.$ref) return fromSchema(components[schema.$ref.split("/").pop()], components, depth + 1);
  const variants = schema.anyOf ?? schema.oneOf;
  if (variants) return fc.oneof(...variants.map((s: Schema) => fromSchema(s, components, depth + 1)));
  const type = Array.isArray(schema.type) ? schema.type[0] : schema.type;
  let right: fc.Arbitrary<unknown>;
  if (schema.enum) right = fc.constantFrom(...schema.enum, "unknown-value");
  else if (type === "string") right = nastyString;
  else if (type === "integer" || type === "number") {
    const bounds = [schema.minimum, schema.maximum, schema.exclusiveMinimum, schema.exclusiveMaximum].filter((b) => typeof b === "number");
    right = fc.oneof(nastyNumber, ...(bounds.length ? [fc.constantFrom(...bounds.flatMap((b: number) => [b - 1, b, b + 1]))] : []));
  } else if (type === "boolean") right = fc.boolean();
  else if (type === "array") right = fc.array(fromSchema(schema.items, components, depth + 1), { maxLength: 3 });
  else if (type === "object" || schema.properties) {
    const props = Object.entries<Schema>(schema.properties ?? {});
    const record = fc.record(Object.fromEntries(props.map(([k, s]) => [k, SPECIAL[k] ?? fromSchema(s, components, depth + 1)])), {
      requiredKeys: [],
    });
    const extra = schema.additionalProperties
      ? fc.dictionary(nastyString, fromSchema(schema.additionalProperties, components, depth + 1), { maxKeys: 3 })
      : fc.constant({});
    right = fc.tuple(record, extra, fc.option(fc.tuple(nastyString, wrongType), { freq: 5 })).map(([r, e, junk]) => ({
      ...e,
      ...r,
      ...(junk ? { [junk[0]]: junk[1] } : {}),
    }));
  } else right = fc.jsonValue({ maxDepth: 2 });
  return fc.oneof({ arbitrary: right, weight: 4 }, { arbitrary: wrongType, weight: 1 });
}

/** JSON text that is not JSON, or JSON at the edges of what parsers take. */
const brokenJson = fc.constantFrom(
  "",
  "{",
  "}",
  "[",
  '{"a":',
  "nul",
  "{'a':1}",
  '{"a":1,}',
  "\u0000",
  "\ufeff{}",
  "{}{}",
  "1e999999",
  '"\\ud800"',
  '{"__proto__":{"x":1}}',
  "[".repeat(5000),
  '{"a":"\\u0000"}',
  "\xff\xfe",
);

const CONTENT_TYPES = [
  "application/json",
  "application/json; charset=utf-8",
  "application/json;",
  "application/json; charset",
  "application/json;charset=utf-8;",
  "application/json; charset=latin1",
  "APPLICATION/JSON",
  "application/x-ndjson",
  "text/plain",
  "application/octet-stream",
  "multipart/form-data",
  "multipart/form-data; boundary=x",
  "application/x-www-form-urlencoded",
  "application/problem+json",
  "*/*",
  ";",
  null,
];

// ------------------------------------------------------------------ the suite

export function fuzzSuite(name: string, startTarget: () => Promise<ContractTarget>): void {
  describe(`fuzz of every route (seed ${SEED}, ${RUNS} runs per route) on ${name}`, () => {
    let target: ContractTarget | undefined;
    let admin: Api;
    let client: Api;
    let operations: Operation[] = [];
    let components: Record<string, Schema> = {};
    let fixture: Record<string, string>;
    let sent = 0;

    beforeAll(async () => {
      console.log(`fuzz seed ${SEED}, ${RUNS} runs per route (RESERVOIR_FUZZ_SEED, RESERVOIR_FUZZ_RUNS)`);
      target = await startTarget();
      admin = api(target.baseUrl, target.adminToken);
      const tenant = await admin.post("/v1/admin/tenants", { name: `fuzz-${SEED}` });
      assertStatus(tenant, 201);
      client = api(target.baseUrl, tenant.body.apiKey);
      // The fixture every generated request may name: a topic with messages, a group with a lease.
      assertStatus(await client.put("/v1/topics/fz", { partitions: 2 }), 201, 200);
      assertStatus(await client.post("/v1/topics/fz/messages", { messages: [{ value: "a" }, { value: "b", key: "k" }] }), 200);
      assertStatus(await client.put("/v1/topics/fz/groups/g", { startAt: "earliest" }), 201, 200);
      assertStatus(await client.post("/v1/topics/fz/groups/g/receive", { max: 1 }), 200);
      const key = await admin.post(`/v1/admin/tenants/${tenant.body.tenantId}/keys`, {});
      assertStatus(key, 201);
      fixture = { topic: "fz", group: "g", name: "s", p: "0", id: tenant.body.tenantId, keyId: key.body.keyId, code: "topic_not_found" };
      const doc = await api(target.baseUrl).get("/openapi.json");
      assertStatus(doc, 200);
      components = doc.body.components?.schemas ?? {};
      operations = Object.entries<Record<string, any>>(doc.body.paths)
        // The SQS endpoint speaks AWS's protocol (errors in SQS's shape, not problem+json) and
        // refuses every request without a SigV4 signature: test/contract/sqs.ts covers it.
        .filter(([path]) => path !== "/sqs")
        .flatMap(([path, ops]) =>
          Object.entries<any>(ops).map(([method, op]) => {
            const content = op.requestBody?.content ?? {};
            const types = Object.keys(content);
            return {
              method: method.toUpperCase(),
              path,
              parameters: op.parameters ?? [],
              body: types.length
                ? { contentTypes: types, schema: content[types[0]].schema, required: !!op.requestBody.required }
                : undefined,
              admin: path.startsWith("/v1/admin/"),
              statuses: Object.keys(op.responses ?? {}),
            };
          }),
        );
    }, 180_000);

    afterAll(async () => {
      await target?.stop();
    }, 60_000);

    showServerOutputOnFailure(name, () => target);

    function requestArbitrary(op: Operation): fc.Arbitrary<FuzzRequest> {
      const pathParams = op.parameters.filter((p) => p.in === "path");
      // A DELETE of the fixture itself would leave nothing for the rest of the run to reach.
      const segment = (param: string) =>
        op.method === "DELETE"
          ? fc.constantFrom(...SEGMENT_TRICKS, "other")
          : fc.oneof(
              { arbitrary: fc.constant(fixture[param] ?? "x"), weight: 3 },
              { arbitrary: fc.constantFrom(...SEGMENT_TRICKS), weight: 2 },
            );
      const path = fc
        .tuple(...pathParams.map((p) => segment(p.name)))
        .map((values) => pathParams.reduce((at, p, i) => at.replace(`{${p.name}}`, String(values[i])), op.path));
      const queryParams = op.parameters.filter((p) => p.in === "query");
      const query = fc.record(
        Object.fromEntries(
          queryParams.map((p) => [
            p.name,
            p.name === "waitMs"
              ? fc.constantFrom("0", "-1", "30001", "abc", "")
              : fc.oneof(
                  fc.constantFrom("0", "1", "-1", "1.5", "1e3", "abc", "", "%00", "\u0000", "99999999999999999999", "NaN", "Infinity"),
                  fc.integer().map(String),
                ),
          ]),
        ),
        { requiredKeys: [] },
      ) as fc.Arbitrary<Record<string, string>>;
      const contentTypes = op.body ? [...op.body.contentTypes, ...CONTENT_TYPES] : CONTENT_TYPES;
      const body: fc.Arbitrary<string | undefined> = op.body
        ? fc.oneof(
            { arbitrary: fromSchema(op.body.schema, components).map((v) => JSON.stringify(v) ?? "null"), weight: 6 },
            { arbitrary: brokenJson, weight: 2 },
            { arbitrary: fc.constant(undefined), weight: 1 },
          )
        : op.method === "GET" // fetch sends no body with a GET
          ? fc.constant(undefined)
          : fc.oneof({ arbitrary: fc.constant(undefined), weight: 4 }, { arbitrary: fc.constantFrom("{}", "x", '{"a":1}'), weight: 1 });
      return fc.record({
        method: fc.constant(op.method),
        path,
        query,
        contentType: fc.oneof(
          { arbitrary: fc.constant(op.body?.contentTypes[0] ?? "application/json"), weight: 3 },
          { arbitrary: fc.constantFrom(...contentTypes), weight: 2 },
        ),
        body,
        token: fc.oneof(
          { arbitrary: fc.constant("valid" as const), weight: 8 },
          { arbitrary: fc.constantFrom("none" as const, "garbage" as const), weight: 1 },
        ),
      });
    }

    async function send(op: Operation, req: FuzzRequest): Promise<ApiResponse> {
      const token = req.token === "valid" ? (op.admin ? target!.adminToken : client.token) : req.token === "none" ? null : "rsv_garbage";
      return client.request(req.method, req.path, {
        token,
        query: req.query,
        ...(req.body !== undefined ? { raw: req.body } : {}),
        contentType: req.contentType,
        allow5xx: true,
        timeoutMs: 30_000,
      });
    }

    /**
     * What the tenant can see: every topic and its settings, the fixture topic's watermarks and
     * stored bytes, the fixture group's cursors and dead letters, and that the key still works (a
     * refused request must leave all of it as it was). Not subscriptions: their delivery state
     * moves on its own while the dispatcher retries whatever a fuzzed PUT pointed them at.
     */
    async function snapshot(): Promise<unknown> {
      const topics = await client.get("/v1/topics");
      const topic = await client.get("/v1/topics/fz");
      const group = await client.get("/v1/topics/fz/groups/g");
      return {
        topics: [topics.status, topics.body?.topics?.map((t: any) => JSON.stringify(t)).sort()],
        topic: [topic.status, topic.body],
        group: [group.status, group.body?.partitions?.map((p: any) => [p.partition, p.committedOffset]), group.body?.deadLettered],
      };
    }

    function check(op: Operation, req: FuzzRequest, res: ApiResponse): void {
      const what = `${req.method} ${req.path} ${JSON.stringify(req)}`;
      expect(res.status, `${what}\n→ ${describeResponse(res)}`).toBeLessThan(500);
      expect(op.statuses, `${op.method} ${op.path} answered ${res.status}, which its OpenAPI responses do not list: ${what}`).toContain(
        String(res.status),
      );
      if (res.status >= 400) {
        const problem = assertProblem(res, res.status);
        expect(problem.type, `${what}: type of ${describeResponse(res)}`).toBe(`/problems/${problem.code}`);
      }
    }

    it("every route answers every generated request below 500, refusals as problem+json that change nothing", async () => {
      expect(operations.length, "routes in /openapi.json").toBeGreaterThan(25);
      const statuses: Record<number, number> = {};
      let compared = 0;
      for (const op of operations) {
        await fc.assert(
          fc.asyncProperty(requestArbitrary(op), async (req) => {
            const sample = sent++ % SNAPSHOT_EVERY === 0 && req.method !== "GET";
            const before = sample ? await snapshot() : undefined;
            const res = await send(op, req);
            statuses[res.status] = (statuses[res.status] ?? 0) + 1;
            if (sample && res.status >= 400) compared++;
            check(op, req, res);
            if (sample && res.status >= 400) {
              expect(await snapshot(), `${req.method} ${req.path} was refused (${res.status}) but changed the fixture`).toEqual(before);
            }
          }),
          { seed: SEED, numRuns: RUNS, endOnFailure: true },
        );
      }
      console.log(
        `fuzz: ${sent} requests over ${operations.length} routes, statuses ${JSON.stringify(statuses)}, ${compared} refusals compared with snapshots`,
      );
      if (MIN_REQUESTS > 0) expect(sent, "generated requests (RESERVOIR_FUZZ_MIN_REQUESTS)").toBeGreaterThanOrEqual(MIN_REQUESTS);
    }, 7_200_000);

    it("bodies past the limits are 413 problems (1 MiB JSON, 8 MiB produce)", async () => {
      const big = (bytes: number) => JSON.stringify({ partitions: 1, pad: "x".repeat(bytes) });
      assertProblem(
        await client.request("PUT", "/v1/topics/fz-big", { raw: big(1024 * 1024), contentType: "application/json" }),
        413,
        "body_too_large",
      );
      assertProblem(
        await client.request("POST", "/v1/topics/fz/groups/g/ack", { raw: big(1024 * 1024), contentType: "application/json" }),
        413,
        "body_too_large",
      );
      assertProblem(
        await admin.request("POST", "/v1/admin/tenants", { raw: big(1024 * 1024), contentType: "application/json" }),
        413,
        "body_too_large",
      );
      const produce = JSON.stringify({ messages: [{ value: "x".repeat(8 * 1024 * 1024) }] });
      assertProblem(
        await client.request("POST", "/v1/topics/fz/messages", { raw: produce, contentType: "application/json" }),
        413,
        "body_too_large",
      );
      expect((await client.get("/v1/topics/fz-big")).status).toBe(404);
    }, 120_000);
  });
}

// ------------------------------------------------------------------ below the app

/** Requests an HTTP parser or adapter refuses before the app sees them, sent as raw bytes. */
export const MALFORMED_HTTP: { name: string; bytes: Buffer; status: number; code: string }[] = [
  { name: "an unknown method", bytes: Buffer.from("FOO /v1/topics HTTP/1.1\r\nHost: x\r\n\r\n"), status: 400, code: "invalid_request" },
  { name: "an unparseable Host", bytes: Buffer.from("GET /v1/topics HTTP/1.1\r\nHost: a b\r\n\r\n"), status: 400, code: "invalid_request" },
  { name: "a backslash in the path", bytes: Buffer.from("GET /v1/a\\b HTTP/1.1\r\nHost: x\r\n\r\n"), status: 400, code: "invalid_request" },
  {
    name: "a raw non-ASCII byte in the request line",
    bytes: Buffer.concat([Buffer.from("GET /v1/"), Buffer.from([0xff]), Buffer.from(" HTTP/1.1\r\nHost: x\r\n\r\n")]),
    status: 400,
    code: "invalid_request",
  },
  {
    name: "an Expect other than 100-continue",
    bytes: Buffer.from("GET /v1/topics HTTP/1.1\r\nHost: x\r\nExpect: fuzz\r\n\r\n"),
    status: 417,
    code: "expectation_failed",
  },
  {
    name: "headers past the parser's limit",
    bytes: Buffer.from(`GET /v1/topics HTTP/1.1\r\nHost: x\r\nX-Pad: ${"a".repeat(20_000)}\r\n\r\n`),
    status: 431,
    code: "headers_too_large",
  },
];

/** Sends `bytes` on a new connection and returns the status line, headers and body of the answer. */
export async function rawExchange(
  baseUrl: string,
  bytes: Buffer,
): Promise<{ status: number; headers: Record<string, string>; body: string }> {
  const { connect } = await import("node:net");
  const url = new URL(baseUrl);
  const text = await new Promise<string>((resolve, reject) => {
    const socket = connect(Number(url.port), url.hostname);
    const chunks: Buffer[] = [];
    socket.setTimeout(15_000, () => socket.destroy(new Error("no answer within 15 s")));
    socket.on("data", (d) => chunks.push(d));
    socket.on("end", () => resolve(Buffer.concat(chunks).toString("latin1")));
    socket.on("error", (e) => (chunks.length ? resolve(Buffer.concat(chunks).toString("latin1")) : reject(e)));
    socket.end(bytes);
  });
  const [head, ...rest] = text.split("\r\n\r\n");
  const [statusLine, ...lines] = head.split("\r\n");
  const headers = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(":")).toLowerCase(), l.slice(l.indexOf(":") + 1).trim()]));
  let body = rest.join("\r\n\r\n");
  if (headers["transfer-encoding"] === "chunked") body = body.replace(/^[0-9a-f]+\r\n/i, "").replace(/\r\n0\r\n\r\n$/, "");
  return { status: Number(statusLine.split(" ")[1]), headers, body };
}

/** On the Node server, each of MALFORMED_HTTP answers problem+json with a stable code. */
export function malformedHttpSuite(name: string, startTarget: () => Promise<ContractTarget>): void {
  describe(`requests refused below the app answer problem+json on ${name}`, () => {
    let target: ContractTarget | undefined;
    beforeAll(async () => {
      target = await startTarget();
    }, 180_000);
    afterAll(async () => {
      await target?.stop();
    }, 60_000);

    for (const c of MALFORMED_HTTP) {
      it(`${c.name}: ${c.status} ${c.code}`, async () => {
        const res = await rawExchange(target!.baseUrl, c.bytes);
        const what = `${c.name}: ${JSON.stringify(res).slice(0, 500)}`;
        expect(res.status, what).toBe(c.status);
        expect(res.headers["content-type"], what).toMatch(/^application\/problem\+json/);
        expect(JSON.parse(res.body), what).toMatchObject({ status: c.status, code: c.code, type: `/problems/${c.code}` });
      });
    }
  });
}
