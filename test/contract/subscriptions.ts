// The webhook-subscription contract of shared/API.md ("Webhook subscriptions (push)"), with the
// choices docs/webhooks.md makes where API.md is silent, exercised through HTTP only so that the
// same suite runs on every target. Deliveries go to a recording sink on 127.0.0.1
// (test/support/webhook-sink.ts); every request it gets is checked with the reference
// `standardwebhooks` package, and CloudEvents bodies with the `cloudevents` package.
//
// Every URL any test here gives the server points at a loopback address or `localhost`: the
// targets allow 127.0.0.1 through RESERVOIR_WEBHOOK_ALLOW_PRIVATE, and the address-guard suite
// checks refusals on a target that allows nothing, still naming only loopback forms.
//
// Timing: outcomes are waited for with generous bounds (20 s); the only timing assertions are
// lower bounds the contract guarantees (Retry-After, a timeout, a delayed message), each with a
// small allowance for clock granularity. Concurrency and ordering are judged from the sink's own
// clock: the sink's [arrival, answer] span of a request lies inside the sender's, so an overlap
// the sink sees is one the sender had.

import { randomBytes } from "node:crypto";
import { CloudEvent, HTTP } from "cloudevents";
import { Webhook } from "standardwebhooks";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { api, assertProblem, assertStatus, describeResponse, type Api, type ApiResponse } from "../support/http.ts";
import { produce, readAll, topicPath } from "../support/topics.ts";
import { describeRequests, startWebhookSink, type SinkRequest, type WebhookSink } from "../support/webhook-sink.ts";
import { showServerOutputOnFailure, type ContractTarget } from "./contract.ts";

export interface SubscriptionsSuiteOptions {
  /**
   * Runs the target's periodic sweep once (Workers: the Cron Trigger, through wrangler's
   * /__scheduled). When given, the suite runs it back to back in the background, as the
   * every-minute cron that sweeps for RESERVOIR_SWEEP_SECONDS does in production, and adds the
   * tests of the cron path.
   */
  sweep?: (target: ContractTarget) => Promise<void>;
  /**
   * How often the background sweep starts (default 1,000 ms). A sweep request may return at once
   * and sweep on in the background: set this to the sweep's length (RESERVOIR_SWEEP_SECONDS) so
   * that one sweep follows another, as a cron sweeping 50 s a minute would have them.
   */
  sweepIntervalMs?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const WAIT_MS = 20_000;
/** Clock granularity allowed below a guaranteed lower bound (timers, second-rounded headers). */
const SLACK_MS = 100;

type Msg = Record<string, any>;

interface Tenant {
  tenantId: string;
  apiKey: string;
  client: Api;
}

interface Sub {
  topic: string;
  name: string;
  /** The sink path this subscription delivers to. */
  path: string;
  secret: string;
  created: Record<string, any>;
}

interface LogEntry {
  messageId: string;
  partition: number;
  offset: number;
  attempt: number;
  status: "succeeded" | "failed";
  httpStatus?: number;
  error?: string;
  at: number;
  durationMs: number;
}

const mediaType = (ct: string | undefined | null) => (ct ?? "").split(";")[0]!.trim().toLowerCase();
const is2xx = (status: number | undefined) => status !== undefined && status >= 200 && status < 300;
const wallClock = (perfTime: number) => performance.timeOrigin + perfTime;

/** Why `secret` does not verify `req` (standardwebhooks), or null when it does. */
function verifyError(secret: string, req: SinkRequest, signature?: string): string | null {
  const headers = signature === undefined ? req.headers : { ...req.headers, "webhook-signature": signature };
  try {
    new Webhook(secret).verify(req.body, headers);
    return null;
  } catch (err) {
    return (err as Error).message;
  }
}

function expectSigned(req: SinkRequest, secret: string, what = "delivery"): void {
  const why = verifyError(secret, req);
  expect(why, `${what} must verify with the subscription's secret (standardwebhooks): ${describeRequests([req])}`).toBeNull();
}

/** The documented fields of a JSON delivery body (extra fields are not the contract's concern). */
function documented(body: Msg): Msg {
  const out: Msg = {};
  for (const k of ["id", "topic", "partition", "offset", "timestamp", "key", "headers", "value", "valueBase64", "attempt"]) {
    if (body[k] !== undefined) out[k] = body[k];
  }
  return out;
}

/** The most requests to the sink in progress at once. */
function peakConcurrency(requests: SinkRequest[]): number {
  const events: [number, number][] = [];
  for (const r of requests) {
    events.push([r.arrivedAt, 1]);
    events.push([r.respondedAt ?? Number.POSITIVE_INFINITY, -1]);
  }
  // At equal times an end comes before a start: the sender saw the answer before sending more.
  events.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let now = 0;
  let peak = 0;
  for (const [, d] of events) {
    now += d;
    peak = Math.max(peak, now);
  }
  return peak;
}

/**
 * The ordering: "key" rule, judged on the requests of one key in arrival order: each starts only
 * after the previous one was answered; a request for the same offset follows only a failed
 * attempt; a request for a new offset follows only a success, and its offset is higher.
 */
function expectKeyOrder(key: string, requests: SinkRequest[]): void {
  const list = [...requests].sort((a, b) => a.arrivedAt - b.arrivedAt);
  const show = () => `key ${key}:\n${describeRequests(list)}`;
  for (let i = 1; i < list.length; i++) {
    const prev = list[i - 1]!;
    const cur = list[i]!;
    expect(prev.respondedAt, `a request of ${key} started while the previous one was unanswered; ${show()}`).toBeDefined();
    expect(cur.arrivedAt, `two requests of ${key} in flight at once; ${show()}`).toBeGreaterThanOrEqual(prev.respondedAt!);
    if (cur.json.offset === prev.json.offset) {
      expect(is2xx(prev.status), `offset ${cur.json.offset} of ${key} sent again after a success; ${show()}`).toBe(false);
    } else {
      expect(cur.json.offset, `offsets of ${key} out of order; ${show()}`).toBeGreaterThan(prev.json.offset);
      expect(is2xx(prev.status), `offset ${cur.json.offset} of ${key} sent before offset ${prev.json.offset} succeeded; ${show()}`).toBe(
        true,
      );
    }
  }
}

function groupBy<T>(items: T[], keyOf: (t: T) => string): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const t of items) out.set(keyOf(t), [...(out.get(keyOf(t)) ?? []), t]);
  return out;
}

/**
 * Runs `options.sweep` back to back (a stand-in for the production cron); `hold()` pauses it,
 * once no sweep request is in progress, for tests that must see what happens without it.
 */
function backgroundSweeper(sweep: () => Promise<void>, intervalMs: number) {
  let stopped = false;
  let held = 0;
  /** Resolves when release() lets the sweeps go on (or stop() ends them). */
  let resumed: { promise: Promise<void>; resolve: () => void } | undefined;
  let current: Promise<void> = Promise.resolve();
  let loop: Promise<void> = Promise.resolve();
  const errors: string[] = [];
  const run = async () => {
    while (!stopped) {
      if (resumed) {
        await resumed.promise;
        continue;
      }
      const started = Date.now();
      current = sweep().catch((err: Error) => void errors.push(err.message));
      await current;
      // The cron's cadence, which this loop stands in for: time passing is the point here.
      await sleep(Math.max(100, intervalMs - (Date.now() - started)));
    }
  };
  const resume = () => {
    const r = resumed;
    resumed = undefined;
    r?.resolve();
  };
  return {
    errors,
    start() {
      loop = run();
    },
    async stop() {
      stopped = true;
      resume();
      await loop;
    },
    async hold() {
      held++;
      if (!resumed) {
        let resolve!: () => void;
        const promise = new Promise<void>((r) => (resolve = r));
        resumed = { promise, resolve };
      }
      await current;
    },
    release() {
      held = Math.max(0, held - 1);
      if (held === 0) resume();
    },
  };
}

export function subscriptionsSuite(
  name: string,
  startTarget: () => Promise<ContractTarget>,
  options: SubscriptionsSuiteOptions = {},
): void {
  describe(`webhook subscriptions (API.md) on ${name}`, () => {
    let target: ContractTarget | undefined;
    let admin: Api;
    let tenant: Tenant;
    let sink: WebhookSink;
    let sweeper: ReturnType<typeof backgroundSweeper> | undefined;
    let seq = 0;
    const runId = randomBytes(3).toString("hex");

    /** A name unique within this run. */
    const uniq = (prefix: string) => `${prefix}-${runId}-${++seq}`;

    beforeAll(async () => {
      target = await startTarget();
      admin = api(target.baseUrl, target.adminToken);
      sink = await startWebhookSink();
      tenant = await newTenant("subs-main");
      if (options.sweep) {
        const t = target;
        sweeper = backgroundSweeper(() => options.sweep!(t), options.sweepIntervalMs ?? 1_000);
        sweeper.start();
      }
    }, 180_000);

    afterAll(async () => {
      await sweeper?.stop();
      await sink?.close();
      await target?.stop();
    }, 60_000);

    afterEach(() => {
      if (!sweeper) return;
      const errors = sweeper.errors.splice(0);
      expect(errors, "the target's scheduled sweep failed").toEqual([]);
    });

    showServerOutputOnFailure(name, () => target);

    // ---------------------------------------------------------------- helpers

    async function newTenant(prefix: string): Promise<Tenant> {
      const res = await admin.post("/v1/admin/tenants", { name: uniq(prefix) });
      assertStatus(res, 201);
      return { tenantId: res.body.tenantId, apiKey: res.body.apiKey, client: api(target!.baseUrl, res.body.apiKey) };
    }

    const subPath = (topic: string, sub: string) => `${topicPath(topic)}/subscriptions/${encodeURIComponent(sub)}`;

    async function createTopic(client: Api, partitions = 1, topic = uniq("t")): Promise<string> {
      assertStatus(await client.put(topicPath(topic), { partitions }), 201);
      return topic;
    }

    /** The stored messages at the given positions, as the read API returns them. */
    async function stored(client: Api, topic: string, at: { partition: number; offset: number }[]): Promise<Msg[]> {
      const partitions = [...new Set(at.map((p) => p.partition))];
      const all = (await Promise.all(partitions.map((p) => readAll(client, topic, p)))).flat();
      return at.map((p) => {
        const m = all.find((x) => x.partition === p.partition && x.offset === p.offset);
        expect(m, `message ${p.partition}:${p.offset} of ${topic}`).toBeDefined();
        return m!;
      });
    }

    /** Polls `probe` until it returns something other than undefined/false. */
    async function eventually<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = WAIT_MS): Promise<T> {
      const deadline = Date.now() + timeoutMs;
      let last: unknown;
      for (;;) {
        const got = await probe();
        if (got !== undefined && got !== false) return got;
        last = got;
        if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms (last probe: ${JSON.stringify(last)})`);
        await sleep(100); // the poll's interval
      }
    }

    /** Fast retries for tests that only care that a retry happens. */
    const FAST = { backoff: { initialSeconds: 0.05, maxSeconds: 0.2 } } as const;

    /** Creates a subscription delivering to its own sink path (its name). */
    async function subscribe(client: Api, topic: string, settings: Record<string, unknown> = {}, subName = uniq("s")): Promise<Sub> {
      const path = `/${subName}`;
      const res = await client.put(subPath(topic, subName), { url: sink.url(path), ...settings });
      assertStatus(res, 201);
      expect(res.body?.secret, describeResponse(res)).toMatch(/^whsec_[A-Za-z0-9+/]+={0,2}$/);
      return { topic, name: subName, path, secret: res.body.secret, created: res.body };
    }

    async function getSub(client: Api, sub: Sub): Promise<Record<string, any>> {
      const res = await client.get(subPath(sub.topic, sub.name));
      assertStatus(res, 200);
      return res.body;
    }

    async function post(client: Api, sub: Sub, action: string, body: unknown = {}): Promise<ApiResponse> {
      return client.post(`${subPath(sub.topic, sub.name)}/${action}`, body);
    }

    async function deliveryLog(client: Api, sub: Sub, limit?: number): Promise<LogEntry[]> {
      const res = await client.get(`${subPath(sub.topic, sub.name)}/deliveries`, { query: { limit } });
      assertStatus(res, 200);
      const entries = res.body?.deliveries as LogEntry[];
      expect(Array.isArray(entries), describeResponse(res)).toBe(true);
      for (const e of entries) {
        const where = `log entry ${JSON.stringify(e)}`;
        expect(typeof e.messageId, where).toBe("string");
        expect(Number.isInteger(e.partition) && Number.isInteger(e.offset) && Number.isInteger(e.attempt), where).toBe(true);
        expect(["succeeded", "failed"], where).toContain(e.status);
        expect(Number.isInteger(e.at), where).toBe(true);
        expect(typeof e.durationMs === "number" && e.durationMs >= 0, where).toBe(true);
        if (e.httpStatus !== undefined && e.httpStatus !== null) expect(Number.isInteger(e.httpStatus), where).toBe(true);
      }
      // Newest first. Attempts in flight together may be listed by start or by end; either way
      // an entry never started after a newer one had ended.
      for (let newer = 0; newer < entries.length; newer++) {
        const ended = entries[newer]!.at + entries[newer]!.durationMs;
        for (let older = newer + 1; older < entries.length; older++) {
          expect(entries[older]!.at, `newest first (entries ${newer} and ${older}): ${describeResponse(res)}`).toBeLessThanOrEqual(
            ended + 1,
          );
        }
      }
      return entries;
    }

    /** Waits until the log holds at least `n` entries. */
    const logOf = (client: Api, sub: Sub, n: number) =>
      eventually(`${n} delivery log entries of ${sub.name}`, async () => {
        const entries = await deliveryLog(client, sub);
        return entries.length >= n ? entries : undefined;
      });

    /** Waits until the subscription has nothing left to deliver and nothing in flight. */
    const drained = (client: Api, sub: Sub) =>
      eventually(`${sub.name} drained (lag 0, inFlight 0)`, async () => {
        const v = await getSub(client, sub);
        return v.lag === 0 && v.inFlight === 0 ? v : undefined;
      });

    /** `waiting`, with the subscription's view and latest log entries added to its failure. */
    async function withState<T>(sub: Sub, waiting: Promise<T>): Promise<T> {
      try {
        return await waiting;
      } catch (err) {
        const p = subPath(sub.topic, sub.name);
        const view = await tenant.client.get(p).then(
          (r) => r.text,
          (e: Error) => e.message,
        );
        const log = await tenant.client.get(`${p}/deliveries`, { query: { limit: 10 } }).then(
          (r) => r.text,
          (e: Error) => e.message,
        );
        (err as Error).message += `\nthe subscription now: ${view}\nits latest log entries: ${log}`;
        throw err;
      }
    }

    /**
     * The checks every JSON delivery of a message must pass: POST, JSON, the user agent, a
     * webhook-id of the documented form, a signature the reference library accepts, and the
     * documented body for the stored message and this attempt.
     */
    function expectJsonDelivery(req: SinkRequest, sub: Sub, message: Msg, attempt: number): void {
      const where = describeRequests([req]);
      expect(req.method, where).toBe("POST");
      expect(mediaType(req.headers["content-type"]), where).toBe("application/json");
      expect(req.headers["user-agent"], where).toBe("Reservoir-Webhooks/1");
      const id = req.headers["webhook-id"];
      expect(id, where).toMatch(new RegExp(`^msg_.+_${message.partition}_${message.offset}$`));
      expect(req.headers["webhook-timestamp"], where).toMatch(/^\d+$/);
      expectSigned(req, sub.secret);
      const expected: Msg = {
        id,
        topic: message.topic,
        partition: message.partition,
        offset: message.offset,
        timestamp: message.timestamp,
        attempt,
      };
      for (const k of ["key", "headers", "value", "valueBase64"]) if (message[k] !== undefined) expected[k] = message[k];
      expect(req.json, where).toBeTypeOf("object");
      expect(documented(req.json), where).toEqual(expected);
    }

    const bodyValue = (r: SinkRequest) => r.json?.value as string | undefined;

    // ---------------------------------------------------------------- OpenAPI

    describe("OpenAPI", () => {
      it("documents every subscription operation", async () => {
        const doc = (await api(target!.baseUrl, null).get("/openapi.json")).body;
        const shapes = new Map<string, any>();
        for (const [template, item] of Object.entries<any>(doc.paths)) shapes.set(template.replace(/\{[^}]*\}/g, "{}"), item);
        const s = "/v1/topics/{}/subscriptions/{}";
        const wanted: [string, string][] = [
          ["put", s],
          ["get", s],
          ["delete", s],
          ["post", `${s}/rotate-secret`],
          ["post", `${s}/pause`],
          ["post", `${s}/resume`],
          ["post", `${s}/replay`],
          ["get", `${s}/deliveries`],
        ];
        expect(wanted.filter(([m, p]) => !shapes.get(p)?.[m]).map(([m, p]) => `${m.toUpperCase()} ${p}`)).toEqual([]);
      });
    });

    // ---------------------------------------------------------------- CRUD

    describe("create, read, update, delete", () => {
      it("PUT creates (201) with a whsec_ secret and API.md's defaults; GET shows the same without the secret", async () => {
        const topic = await createTopic(tenant.client);
        const subName = uniq("crud");
        const url = sink.url(`/${subName}`);
        const res = await tenant.client.put(subPath(topic, subName), { url });
        assertStatus(res, 201);
        const created = res.body;
        expect(created, describeResponse(res)).toMatchObject({
          name: subName,
          topic,
          url,
          ordering: "none",
          maxAttempts: 10,
          backoff: { initialSeconds: 5, maxSeconds: 3600 },
          maxConcurrency: 10,
          timeoutMs: 10_000,
          format: "json",
          deadLetterTopic: `${topic}.dlq`,
          state: "active",
          lag: 0,
          inFlight: 0,
          deadLettered: 0,
        });
        expect(["earliest", "latest"], describeResponse(res)).toContain(created.startAt);
        expect(Number.isInteger(created.createdAt), describeResponse(res)).toBe(true);
        expect(created.secret).toMatch(/^whsec_[A-Za-z0-9+/]+={0,2}$/);
        expect(Buffer.from(created.secret.slice("whsec_".length), "base64").length, "the secret's key bytes").toBeGreaterThanOrEqual(16);
        // The reference library takes it as a key.
        expect(() => new Webhook(created.secret)).not.toThrow();

        const got = await tenant.client.get(subPath(topic, subName));
        assertStatus(got, 200);
        expect(got.body.secret, "GET never shows the secret").toBeUndefined();
        expect(got.text, "GET never shows the secret").not.toContain(created.secret.slice("whsec_".length));
        const { secret: _secret, ...withoutSecret } = created;
        expect(got.body).toEqual(withoutSecret);
      });

      it("PUT of an existing subscription answers 200 without a secret and changes only the given delivery settings", async () => {
        const topic = await createTopic(tenant.client, 2);
        const sub = await subscribe(tenant.client, topic, { maxAttempts: 4, ...FAST });
        const { secret: _s, ...before } = sub.created;

        const otherUrl = sink.url(`/${sub.name}-moved`);
        const res = await tenant.client.put(subPath(topic, sub.name), {
          url: otherUrl,
          timeoutMs: 2500,
          filter: { headers: { type: "a" } },
        });
        assertStatus(res, 200);
        expect(res.body.secret, "an update shows no secret").toBeUndefined();
        expect(res.body).toEqual({ ...before, url: otherUrl, timeoutMs: 2500, filter: { headers: { type: "a" } } });
        expect(await getSub(tenant.client, sub)).toEqual(res.body);

        const again = await tenant.client.put(subPath(topic, sub.name), {
          url: otherUrl,
          maxConcurrency: 3,
          format: "cloudevents",
          backoff: { initialSeconds: 1, maxSeconds: 60 },
        });
        assertStatus(again, 200);
        expect(again.body).toEqual({
          ...res.body,
          maxConcurrency: 3,
          format: "cloudevents",
          backoff: { initialSeconds: 1, maxSeconds: 60 },
        });
        expect(await getSub(tenant.client, sub)).toEqual(again.body);
      });

      it("PUT of an existing subscription changes only the given group settings (ordering, maxAttempts, deadLetterTopic), one at a time or together", async () => {
        const topic = await createTopic(tenant.client, 2);
        const sub = await subscribe(tenant.client, topic, FAST);
        const { secret: _s, ...before } = sub.created;
        const url = sink.url(sub.path);
        let expected: Record<string, any> = before;
        for (const change of [
          { ordering: "key" },
          { maxAttempts: 3 },
          { deadLetterTopic: "elsewhere" },
          { ordering: "none", maxAttempts: 7, deadLetterTopic: `${topic}.dlq` },
        ]) {
          const res = await tenant.client.put(subPath(topic, sub.name), { url, ...change });
          assertStatus(res, 200);
          expected = { ...expected, ...change };
          expect(res.body, `after ${JSON.stringify(change)}`).toEqual(expected);
          expect(await getSub(tenant.client, sub)).toEqual(expected);
        }
      });

      it("DELETE answers 204; then GET and DELETE answer 404 subscription_not_found", async () => {
        const topic = await createTopic(tenant.client);
        const sub = await subscribe(tenant.client, topic);
        const del = await tenant.client.delete(subPath(topic, sub.name));
        assertStatus(del, 204);
        assertProblem(await tenant.client.get(subPath(topic, sub.name)), 404, "subscription_not_found");
        assertProblem(await tenant.client.delete(subPath(topic, sub.name)), 404, "subscription_not_found");
        assertProblem(await tenant.client.get(`${subPath(topic, sub.name)}/deliveries`), 404, "subscription_not_found");
        // Nothing more goes to a deleted subscription. The positive signal that the message was
        // dispatched: a witness subscription on the same topic gets it and is drained.
        const witness = await subscribe(tenant.client, topic);
        await produce(tenant.client, topic, [{ value: "after delete" }]);
        await withState(witness, sink.waitForCount(witness.path, 1));
        await drained(tenant.client, witness);
        expect(sink.requests(sub.path), "no delivery for a deleted subscription").toEqual([]);
        // The name is free again: a new PUT creates (201, a new secret).
        const recreated = await tenant.client.put(subPath(topic, sub.name), { url: sink.url(`${sub.path}-again`) });
        assertStatus(recreated, 201);
        expect(recreated.body.secret).not.toBe(sub.secret);
      });

      it("a subscription that does not exist: 404 subscription_not_found for every call", async () => {
        const topic = await createTopic(tenant.client);
        const missing = subPath(topic, uniq("missing"));
        assertProblem(await tenant.client.get(missing), 404, "subscription_not_found");
        assertProblem(await tenant.client.delete(missing), 404, "subscription_not_found");
        assertProblem(await tenant.client.get(`${missing}/deliveries`), 404, "subscription_not_found");
        for (const action of ["rotate-secret", "pause", "resume"]) {
          assertProblem(await tenant.client.post(`${missing}/${action}`, {}), 404, "subscription_not_found");
        }
        assertProblem(await tenant.client.post(`${missing}/replay`, { offset: 0 }), 404, "subscription_not_found");
      });

      it("PUT on a topic that does not exist: 404 topic_not_found, and no topic is created", async () => {
        const topic = uniq("no-such-topic");
        assertProblem(await tenant.client.put(subPath(topic, "s"), { url: sink.url("/never") }), 404, "topic_not_found");
        assertProblem(await tenant.client.get(subPath(topic, "s")), 404);
        assertProblem(await tenant.client.get(topicPath(topic)), 404, "topic_not_found");
      });

      it("another tenant's key sees 404 for every call and changes nothing", async () => {
        const topic = await createTopic(tenant.client);
        const sub = await subscribe(tenant.client, topic);
        const other = await newTenant("subs-other");
        const p = subPath(topic, sub.name);
        assertProblem(await other.client.get(p), 404);
        assertProblem(await other.client.delete(p), 404);
        assertProblem(await other.client.get(`${p}/deliveries`), 404);
        for (const action of ["rotate-secret", "pause", "resume"]) assertProblem(await other.client.post(`${p}/${action}`, {}), 404);
        assertProblem(await other.client.post(`${p}/replay`, { offset: 0 }), 404);
        // The other tenant has no topic of that name: its PUT is about its own namespace.
        assertProblem(await other.client.put(p, { url: sink.url("/other-tenant") }), 404, "topic_not_found");
        const { secret: _s, ...view } = sub.created;
        expect(await getSub(tenant.client, sub)).toEqual(view);
      });

      it("without credentials: 401", async () => {
        const topic = await createTopic(tenant.client);
        const anon = tenant.client.as(null);
        assertProblem(await anon.put(subPath(topic, "s"), { url: sink.url("/anon") }), 401);
        assertProblem(await anon.get(subPath(topic, "s")), 401);
      });

      it("bad bodies: 400 with a stable code, and nothing is created", async () => {
        const topic = await createTopic(tenant.client);
        const url = sink.url("/never-created");
        const cases: [string, unknown, string[]][] = [
          ["no url", {}, ["invalid_request"]],
          ["an ftp:// url", { url: `ftp://127.0.0.1:${sink.port}/x` }, ["invalid_request", "url_not_allowed"]],
          ["a url that is not one", { url: "not a url" }, ["invalid_request", "url_not_allowed"]],
          ["timeoutMs 30001", { url, timeoutMs: 30_001 }, ["invalid_request"]],
          ["timeoutMs 0", { url, timeoutMs: 0 }, ["invalid_request"]],
          ["maxConcurrency 0", { url, maxConcurrency: 0 }, ["invalid_request"]],
          ["maxConcurrency 101", { url, maxConcurrency: 101 }, ["invalid_request"]],
          ["maxConcurrency 2.5", { url, maxConcurrency: 2.5 }, ["invalid_request"]],
          ["backoff.initialSeconds 0", { url, backoff: { initialSeconds: 0 } }, ["invalid_request"]],
          ["backoff.maxSeconds above a day", { url, backoff: { maxSeconds: 86_401 } }, ["invalid_request"]],
          ["format xml", { url, format: "xml" }, ["invalid_request"]],
          ["ordering random", { url, ordering: "random" }, ["invalid_request"]],
          ["a filter header that is not a string", { url, filter: { headers: { type: 1 } } }, ["invalid_request"]],
          ["an unknown field", { url, colour: "blue" }, ["invalid_request"]],
          ["an array", [{ url }], ["invalid_request"]],
        ];
        for (const [why, body, codes] of cases) {
          const subName = uniq("bad");
          const res = await tenant.client.put(subPath(topic, subName), body);
          const problem = assertProblem(res, 400);
          expect(codes, `${why}: ${describeResponse(res)}`).toContain(problem.code);
          assertProblem(await tenant.client.get(subPath(topic, subName)), 404, "subscription_not_found");
        }
        const malformed = await tenant.client.put(subPath(topic, "malformed"), undefined, {
          raw: "{not json",
          contentType: "application/json",
        });
        assertProblem(malformed, 400);
        assertProblem(await tenant.client.get(subPath(topic, "malformed")), 404, "subscription_not_found");
        const badName = await tenant.client.put(`${topicPath(topic)}/subscriptions/${encodeURIComponent("no spaces!")}`, { url });
        expect(["invalid_request", "invalid_name"], describeResponse(badName)).toContain(assertProblem(badName, 400).code);
        expect(sink.requests("/never-created"), "nothing was delivered for refused subscriptions").toEqual([]);
      });

      it("bad action bodies: 400 for replay without a position, rotate-secret with graceSeconds out of range, deliveries?limit=1001", async () => {
        const topic = await createTopic(tenant.client);
        const sub = await subscribe(tenant.client, topic);
        assertProblem(await post(tenant.client, sub, "replay", {}), 400);
        assertProblem(await post(tenant.client, sub, "replay", { to: "middle" }), 400);
        assertProblem(await post(tenant.client, sub, "rotate-secret", { graceSeconds: -1 }), 400);
        assertProblem(await post(tenant.client, sub, "rotate-secret", { graceSeconds: 604_801 }), 400);
        assertProblem(await tenant.client.get(`${subPath(topic, sub.name)}/deliveries`, { query: { limit: 1001 } }), 400);
        // None of them rotated the secret.
        expect((await getSub(tenant.client, sub)).secretRotatedAt ?? undefined).toBeUndefined();
      });
    });

    // ---------------------------------------------------------------- deliveries

    describe("deliveries", () => {
      it("each message reaches the endpoint once, signed (standardwebhooks), with the documented headers and body", async () => {
        const topic = await createTopic(tenant.client, 3);
        const sub = await subscribe(tenant.client, topic);
        const special: Msg[] = [
          { key: "order-1", value: "hello", headers: { trace: "t-1", "content-type": "text/plain" } },
          { value: "no key, no headers" },
          { key: "bin", valueBase64: Buffer.from([0, 255, 1, 254, 0x80]).toString("base64") },
          { key: "ünï", value: 'ünïcødé ✓ \u{1F600} "quoted" \\ back', headers: { "x-note": "✓ ü" } },
        ];
        const plain: Msg[] = Array.from({ length: 20 }, (_, i) => ({ value: `m-${i}` }));
        const offsets = [...(await produce(tenant.client, topic, special)), ...(await produce(tenant.client, topic, plain))];
        const messages = await stored(tenant.client, topic, offsets);

        const requests = await withState(sub, sink.waitForCount(sub.path, messages.length));
        const settled = await drained(tenant.client, sub);
        expect(settled.deadLettered).toBe(0);
        // No wait for stragglers: drained (lag 0, inFlight 0) means the service settled every
        // attempt it made, each answered by the sink (or given up), so the record is complete.
        const all = sink.requests(sub.path);
        expect(all.length, `exactly one request per message:\n${describeRequests(all)}`).toBe(messages.length);
        expect(requests.length).toBe(messages.length);
        for (const m of messages) {
          const got = all.filter((r) => r.json?.partition === m.partition && r.json?.offset === m.offset);
          expect(got.length, `requests for ${m.partition}:${m.offset}`).toBe(1);
          expectJsonDelivery(got[0]!, sub, m, 1);
        }
        expect(new Set(all.map((r) => r.headers["webhook-id"])).size, "a different webhook-id for every message").toBe(messages.length);

        const log = await logOf(tenant.client, sub, messages.length);
        expect(log.length).toBe(messages.length);
        for (const e of log) {
          const req = all.find((r) => r.headers["webhook-id"] === e.messageId);
          expect(req, `log entry ${JSON.stringify(e)} names a delivered webhook-id`).toBeDefined();
          expect(e).toMatchObject({
            partition: req!.json.partition,
            offset: req!.json.offset,
            attempt: 1,
            status: "succeeded",
            httpStatus: 200,
          });
        }
        expect((await deliveryLog(tenant.client, sub, 5)).length, "limit bounds the log").toBe(5);
      });

      it("startAt earliest delivers what the topic already holds; the default starts after it; an update does not move either", async () => {
        const topic = await createTopic(tenant.client, 2);
        await produce(tenant.client, topic, [
          { value: "old-0", partition: 0 },
          { value: "old-1", partition: 1 },
        ]);
        const earliest = await subscribe(tenant.client, topic, { startAt: "earliest" });
        const latest = await subscribe(tenant.client, topic);
        expect(earliest.created.startAt).toBe("earliest");
        expect(latest.created.startAt).toBe("latest");
        const fromEarliest = await withState(earliest, sink.waitForCount(earliest.path, 2));
        expect(fromEarliest.map(bodyValue).sort()).toEqual(["old-0", "old-1"]);
        await drained(tenant.client, earliest);
        // startAt on an update is ignored: positions move only by replay.
        assertStatus(await tenant.client.put(subPath(topic, latest.name), { url: sink.url(latest.path), startAt: "earliest" }), 200);
        await produce(tenant.client, topic, [{ value: "new-2" }]);
        await withState(latest, sink.waitForCount(latest.path, 1));
        await withState(earliest, sink.waitForCount(earliest.path, 3));
        await drained(tenant.client, latest);
        await drained(tenant.client, earliest);
        // No wait for stragglers: drained (lag 0, inFlight 0) means the service settled every
        // attempt it made, each answered by the sink (or given up), so the record is complete.
        expect(sink.requests(latest.path).map(bodyValue)).toEqual(["new-2"]);
        expect(sink.requests(earliest.path).map(bodyValue).sort()).toEqual(["new-2", "old-0", "old-1"]);
        for (const r of sink.requests(earliest.path)) expectSigned(r, earliest.secret);
        for (const r of sink.requests(latest.path)) expectSigned(r, latest.secret);
      });

      it("failed attempts are retried with the same webhook-id, attempt 1, 2, 3, each signed; the log shows failed, failed, succeeded newest first", async () => {
        const topic = await createTopic(tenant.client);
        const sub = await subscribe(tenant.client, topic, FAST);
        sink.on(sub.path, [{ status: 500 }, { status: 500 }, { status: 200 }]);
        const [at] = await produce(tenant.client, topic, [{ key: "k", value: "retry me" }]);
        const [message] = await stored(tenant.client, topic, [at!]);

        const requests = await withState(sub, sink.waitForCount(sub.path, 3));
        await drained(tenant.client, sub);
        // No wait for stragglers: drained (lag 0, inFlight 0) means the service settled every
        // attempt it made, each answered by the sink (or given up), so the record is complete.
        const all = sink.requests(sub.path);
        expect(
          all.map((r) => r.status),
          describeRequests(all),
        ).toEqual([500, 500, 200]);
        expect(requests.length).toBe(3);
        for (const [i, r] of all.entries()) expectJsonDelivery(r, sub, message!, i + 1);
        const id = all[0]!.headers["webhook-id"];
        expect(
          all.map((r) => r.headers["webhook-id"]),
          "one webhook-id across retries",
        ).toEqual([id, id, id]);

        const log = await logOf(tenant.client, sub, 3);
        expect(log.map((e) => [e.status, e.attempt, e.httpStatus, e.messageId, e.partition, e.offset])).toEqual([
          ["succeeded", 3, 200, id, message!.partition, message!.offset],
          ["failed", 2, 500, id, message!.partition, message!.offset],
          ["failed", 1, 500, id, message!.partition, message!.offset],
        ]);
      });

      it("Retry-After on a 503 or 429 (seconds or an HTTP date) delays the next attempt at least that long", async () => {
        const topic = await createTopic(tenant.client);
        const settings = { backoff: { initialSeconds: 0.05, maxSeconds: 0.05 } };
        const seconds503 = await subscribe(tenant.client, topic, settings);
        const seconds429 = await subscribe(tenant.client, topic, settings);
        const date503 = await subscribe(tenant.client, topic, settings);
        sink.on(seconds503.path, [{ status: 503, headers: { "retry-after": "2" } }, { status: 200 }]);
        sink.on(seconds429.path, [{ status: 429, headers: { "retry-after": "2" } }, { status: 200 }]);
        // An HTTP date has whole seconds: 3 s from now is at least 2 s away once truncated.
        let dateAnswerWall = 0;
        sink.on(date503.path, (req) => {
          if (req.index > 0) return { status: 200 };
          const until = new Date(Date.now() + 3_000);
          until.setUTCMilliseconds(0);
          dateAnswerWall = until.getTime();
          return { status: 503, headers: { "retry-after": until.toUTCString() } };
        });
        await produce(tenant.client, topic, [{ value: "slow down" }]);

        for (const sub of [seconds503, seconds429]) {
          const [first, second] = await withState(sub, sink.waitForCount(sub.path, 2));
          expect(
            second!.arrivedAt - first!.respondedAt!,
            `Retry-After: 2 on ${first!.status}:\n${describeRequests([first!, second!])}`,
          ).toBeGreaterThanOrEqual(2_000 - SLACK_MS);
          expectSigned(first!, sub.secret);
          expectSigned(second!, sub.secret);
          expect(second!.json.attempt).toBe(2);
        }
        const [, second] = await withState(date503, sink.waitForCount(date503.path, 2));
        expect(
          wallClock(second!.arrivedAt),
          `Retry-After as an HTTP date (${new Date(dateAnswerWall).toUTCString()})`,
        ).toBeGreaterThanOrEqual(dateAnswerWall - SLACK_MS);
      });

      it("an endpoint that does not answer within timeoutMs fails the attempt (logged as a timeout) and the message is retried", async () => {
        const topic = await createTopic(tenant.client);
        const sub = await subscribe(tenant.client, topic, { timeoutMs: 500, ...FAST });
        sink.on(sub.path, [{ hang: true }, { status: 200 }]);
        const [at] = await produce(tenant.client, topic, [{ value: "are you there" }]);
        const [message] = await stored(tenant.client, topic, [at!]);

        const all = await withState(
          sub,
          sink.waitFor(sub.path, (rs) => rs.some((r) => r.status === 200), WAIT_MS, "a successful second attempt"),
        );
        expect(all[1]!.arrivedAt - all[0]!.arrivedAt, "the retry comes after the first attempt timed out").toBeGreaterThanOrEqual(
          500 - SLACK_MS,
        );
        expectJsonDelivery(all[0]!, sub, message!, 1);
        expectJsonDelivery(all[1]!, sub, message!, 2);

        const log = await logOf(tenant.client, sub, 2);
        const [ok, timedOut] = log;
        expect(ok).toMatchObject({ status: "succeeded", attempt: 2, httpStatus: 200 });
        expect(timedOut).toMatchObject({ status: "failed", attempt: 1 });
        expect(timedOut!.httpStatus ?? undefined, "a timeout has no HTTP status").toBeUndefined();
        expect(timedOut!.error, JSON.stringify(timedOut)).toMatch(/time/i);
        expect(timedOut!.durationMs, JSON.stringify(timedOut)).toBeGreaterThanOrEqual(500 - SLACK_MS);
      });

      it("redirects are never followed and fail the attempt", async () => {
        const topic = await createTopic(tenant.client);
        const sub = await subscribe(tenant.client, topic, FAST);
        const elsewhere = `${sub.path}-redirected`;
        sink.on(sub.path, [
          { status: 302, headers: { location: sink.url(elsewhere) } },
          { status: 307, headers: { location: sink.url(elsewhere) } },
          { status: 200 },
        ]);
        const [at] = await produce(tenant.client, topic, [{ value: "go elsewhere" }]);
        const [message] = await stored(tenant.client, topic, [at!]);

        const all = await withState(sub, sink.waitForCount(sub.path, 3));
        await drained(tenant.client, sub);
        for (const [i, r] of all.entries()) expectJsonDelivery(r, sub, message!, i + 1);
        expect(sink.requests(elsewhere), "the Location was never requested").toEqual([]);
        const log = await logOf(tenant.client, sub, 3);
        expect(log.map((e) => [e.status, e.httpStatus])).toEqual([
          ["succeeded", 200],
          ["failed", 307],
          ["failed", 302],
        ]);
      });

      it("after maxAttempts failures the message is dead-lettered to <topic>.dlq with the x-reservoir-* headers, and not attempted again", async () => {
        const topic = await createTopic(tenant.client);
        const sub = await subscribe(tenant.client, topic, { maxAttempts: 2, ...FAST });
        sink.on(sub.path, { status: 500 });
        const sent = { key: "doomed", value: "never accepted", headers: { trace: "dl-1" } };
        const [at] = await produce(tenant.client, topic, [sent]);

        await withState(sub, sink.waitForCount(sub.path, 2));
        const dlq = `${topic}.dlq`;
        const letters = await eventually(`a dead letter in ${dlq}`, async () => {
          const res = await tenant.client.get(topicPath(dlq));
          if (res.status === 404) return undefined;
          assertStatus(res, 200);
          const found = (await Promise.all((res.body.highWatermarks as number[]).map((_, p) => readAll(tenant.client, dlq, p)))).flat();
          return found.length > 0 ? found : undefined;
        });
        const v = await drained(tenant.client, sub);
        expect(v.deadLettered).toBe(1);
        // No wait for a third attempt: drained with the message dead-lettered means the service
        // is done with it for good (lag 0, inFlight 0), and every attempt it made was answered.
        const all = sink.requests(sub.path);
        expect(
          all.map((r) => r.json?.attempt),
          `exactly maxAttempts (2) attempts:\n${describeRequests(all)}`,
        ).toEqual([1, 2]);
        for (const r of all) expectSigned(r, sub.secret);

        expect(letters).toHaveLength(1);
        const letter = letters[0]!;
        expect(letter).toMatchObject({ topic: dlq, key: sent.key, value: sent.value });
        const { "x-reservoir-error": error, ...headers } = letter.headers as Record<string, string>;
        expect(headers).toEqual({
          ...sent.headers,
          "x-reservoir-source-topic": topic,
          "x-reservoir-source-partition": String(at!.partition),
          "x-reservoir-source-offset": String(at!.offset),
          "x-reservoir-group": `subscription:${sub.name}`,
        });
        expect(error, "x-reservoir-error says what the last attempt got").toMatch(/500/);

        const log = await deliveryLog(tenant.client, sub);
        expect(log.map((e) => [e.status, e.attempt, e.httpStatus])).toEqual([
          ["failed", 2, 500],
          ["failed", 1, 500],
        ]);
      });

      it("410 Gone disables the subscription; nothing is delivered until resume, which delivers again", async () => {
        const topic = await createTopic(tenant.client);
        const sub = await subscribe(tenant.client, topic, FAST);
        sink.on(sub.path, (req) => (req.index === 0 ? { status: 410 } : { status: 200 }));
        await produce(tenant.client, topic, [{ value: "first" }]);
        await withState(sub, sink.waitForCount(sub.path, 1));

        const disabled = await eventually("state disabled", async () => {
          const v = await getSub(tenant.client, sub);
          return v.state === "disabled" ? v : undefined;
        });
        expect(typeof disabled.stateReason === "string" && disabled.stateReason.length > 0, JSON.stringify(disabled)).toBe(true);

        // The positive signal that "second" was dispatched: a witness on the same topic gets it.
        const witness = await subscribe(tenant.client, topic);
        await produce(tenant.client, topic, [{ value: "second" }]);
        await withState(witness, sink.waitForCount(witness.path, 1));
        await drained(tenant.client, witness);
        expect(sink.requests(sub.path).map(bodyValue), "nothing delivered while disabled").toEqual(["first"]);
        expect((await getSub(tenant.client, sub)).state).toBe("disabled");
        const log = await deliveryLog(tenant.client, sub);
        expect(log.map((e) => [e.status, e.attempt, e.httpStatus])).toEqual([["failed", 1, 410]]);

        const resumed = await post(tenant.client, sub, "resume");
        assertStatus(resumed, 200);
        expect(resumed.body.state).toBe("active");
        const all = await withState(
          sub,
          sink.waitFor(
            sub.path,
            (rs) => ["first", "second"].every((v) => rs.some((r) => bodyValue(r) === v && r.status === 200)),
            WAIT_MS,
            "both messages after resume",
          ),
        );
        for (const r of all) expectSigned(r, sub.secret);
        const firstAgain = all.filter((r) => bodyValue(r) === "first");
        expect(
          firstAgain.map((r) => r.json.attempt),
          "the 410 attempt counted",
        ).toEqual([1, 2]);
        expect(all.filter((r) => bodyValue(r) === "second").map((r) => r.json.attempt)).toEqual([1]);
      });

      it("delayed messages are not delivered before they are due", async () => {
        const topic = await createTopic(tenant.client);
        const sub = await subscribe(tenant.client, topic);
        const producedAt = Date.now();
        await produce(tenant.client, topic, [{ value: "later", delaySeconds: 2 }, { value: "now" }]);
        const all = await withState(
          sub,
          sink.waitFor(sub.path, (rs) => rs.some((r) => bodyValue(r) === "later"), WAIT_MS, "the delayed message"),
        );
        const later = all.find((r) => bodyValue(r) === "later")!;
        expect(wallClock(later.arrivedAt) - producedAt, "delivered 2 s after it was produced at the earliest").toBeGreaterThanOrEqual(
          2_000 - SLACK_MS,
        );
        expect(all.some((r) => bodyValue(r) === "now")).toBe(true);
        for (const r of all) expectSigned(r, sub.secret);
      });
    });

    // ---------------------------------------------------------------- ordering and concurrency

    describe("ordering and concurrency", () => {
      it('ordering "key": per key, one request at a time, in offset order, while keys proceed independently', async () => {
        const topic = await createTopic(tenant.client, 3);
        const sub = await subscribe(tenant.client, topic, { ordering: "key", maxConcurrency: 10, ...FAST });
        sink.on(sub.path, (req) => ({ status: 200, delayMs: 50 + (req.seq % 5) * 10 }));
        const keys = ["k0", "k1", "k2", "k3", "k4"];
        const batch = (round: number) => keys.flatMap((k) => [0, 1, 2].map((i) => ({ key: k, value: `${k}-${round * 3 + i}` })));
        // Two produce requests: the second lands while the first batch is being delivered.
        await produce(tenant.client, topic, batch(0));
        await produce(tenant.client, topic, batch(1));
        const total = keys.length * 6;

        await withState(sub, sink.waitForCount(sub.path, total));
        await drained(tenant.client, sub);
        const all = sink.requests(sub.path);
        expect(all.length, `each message once:\n${describeRequests(all)}`).toBe(total);
        for (const r of all) expectSigned(r, sub.secret);
        const byKey = groupBy(all, (r) => r.json.key as string);
        for (const k of keys) {
          const list = byKey.get(k) ?? [];
          expect(list.map(bodyValue).sort()).toEqual(Array.from({ length: 6 }, (_, i) => `${k}-${i}`).sort());
          expectKeyOrder(k, list);
          // Offset order is production order within a key.
          expect([...list].sort((a, b) => a.arrivedAt - b.arrivedAt).map(bodyValue)).toEqual(
            Array.from({ length: 6 }, (_, i) => `${k}-${i}`),
          );
        }
      });

      it('ordering "key": a message waiting for its retry holds back the later messages of its key', async () => {
        const topic = await createTopic(tenant.client, 2);
        const sub = await subscribe(tenant.client, topic, { ordering: "key", maxConcurrency: 10, ...FAST });
        sink.on(sub.path, (req) =>
          req.json?.value === "a-1" && req.json?.attempt === 1 ? { status: 500, delayMs: 30 } : { status: 200, delayMs: 30 },
        );
        const keys = ["a", "b", "c"];
        await produce(
          tenant.client,
          topic,
          [0, 1, 2, 3].flatMap((i) => keys.map((k) => ({ key: k, value: `${k}-${i}` }))),
        );
        await withState(
          sub,
          sink.waitFor(sub.path, (rs) => rs.filter((r) => r.status === 200).length >= 12, WAIT_MS, "12 successful deliveries"),
        );
        await drained(tenant.client, sub);
        const all = sink.requests(sub.path);
        for (const r of all) expectSigned(r, sub.secret);
        const byKey = groupBy(all, (r) => r.json.key as string);
        for (const k of keys) expectKeyOrder(k, byKey.get(k) ?? []);
        const a = [...(byKey.get("a") ?? [])].sort((x, y) => x.arrivedAt - y.arrivedAt);
        expect(
          a.map((r) => [bodyValue(r), r.json.attempt, r.status]),
          describeRequests(a),
        ).toEqual([
          ["a-0", 1, 200],
          ["a-1", 1, 500],
          ["a-1", 2, 200],
          ["a-2", 1, 200],
          ["a-3", 1, 200],
        ]);
        for (const k of ["b", "c"]) {
          expect((byKey.get(k) ?? []).map((r) => [r.json.attempt, r.status])).toEqual([
            [1, 200],
            [1, 200],
            [1, 200],
            [1, 200],
          ]);
        }
      });

      it("maxConcurrency bounds the requests in flight", async () => {
        const topic = await createTopic(tenant.client, 4);
        const sub = await subscribe(tenant.client, topic, { maxConcurrency: 2, ...FAST });
        sink.on(sub.path, { status: 200, delayMs: 200 });
        await produce(
          tenant.client,
          topic,
          Array.from({ length: 10 }, (_, i) => ({ value: `c-${i}` })),
        );
        await withState(sub, sink.waitForCount(sub.path, 10));
        await drained(tenant.client, sub);
        const all = sink.requests(sub.path);
        expect(all.map(bodyValue).sort(), describeRequests(all)).toEqual(Array.from({ length: 10 }, (_, i) => `c-${i}`).sort());
        for (const r of all) expectSigned(r, sub.secret);
        expect(peakConcurrency(all), `at most 2 in flight:\n${describeRequests(all)}`).toBeLessThanOrEqual(2);
      });
    });

    // ---------------------------------------------------------------- filter, pause, replay

    describe("filter, pause and resume, replay", () => {
      it("filter.headers: only messages with every listed header at exactly that value are delivered; the rest are skipped without a log entry", async () => {
        const topic = await createTopic(tenant.client, 2);
        const sub = await subscribe(tenant.client, topic, { filter: { headers: { type: "a" } } });
        expect(sub.created.filter).toEqual({ headers: { type: "a" } });
        await produce(tenant.client, topic, [
          { value: "a-1", headers: { type: "a" } },
          { value: "b-1", headers: { type: "b" } },
          { value: "none" },
          { value: "a-2", headers: { type: "a", other: "x" } },
          { value: "upper", headers: { type: "A" } },
          { value: "prefix", headers: { type: "ab" } },
          { value: "other-header", headers: { kind: "a" } },
        ]);
        await withState(
          sub,
          sink.waitFor(sub.path, (rs) => rs.filter((r) => r.status === 200).length >= 2, WAIT_MS, "the two matching messages"),
        );
        await drained(tenant.client, sub);
        // No wait for stragglers: drained (lag 0, inFlight 0) means the service settled every
        // attempt it made, each answered by the sink (or given up), so the record is complete.
        const all = sink.requests(sub.path);
        expect(all.map(bodyValue).sort(), describeRequests(all)).toEqual(["a-1", "a-2"]);
        for (const r of all) expectSigned(r, sub.secret);
        const log = await deliveryLog(tenant.client, sub);
        expect(log.length, `log entries only for delivered messages: ${JSON.stringify(log)}`).toBe(2);
      });

      it("a paused subscription delivers nothing; resume delivers what was produced meanwhile", async () => {
        const topic = await createTopic(tenant.client);
        const sub = await subscribe(tenant.client, topic);
        const paused = await post(tenant.client, sub, "pause");
        assertStatus(paused, 200);
        expect(paused.body.state).toBe("paused");
        expect(paused.body.secret).toBeUndefined();
        // The positive signal that the messages were dispatched: a witness on the same topic gets them.
        const witness = await subscribe(tenant.client, topic);
        await produce(tenant.client, topic, [{ value: "p-0" }, { value: "p-1" }, { value: "p-2" }]);
        await withState(witness, sink.waitForCount(witness.path, 3));
        await drained(tenant.client, witness);
        expect(sink.requests(sub.path), "nothing delivered while paused").toEqual([]);
        const v = await getSub(tenant.client, sub);
        expect(v.state).toBe("paused");
        expect(v.lag).toBe(3);

        const resumed = await post(tenant.client, sub, "resume");
        assertStatus(resumed, 200);
        expect(resumed.body.state).toBe("active");
        const all = await withState(sub, sink.waitForCount(sub.path, 3));
        expect(all.map(bodyValue).sort()).toEqual(["p-0", "p-1", "p-2"]);
        for (const r of all) expectSigned(r, sub.secret);
        await drained(tenant.client, sub);
      });

      it("replay by offset and by timestamp delivers again, with the same webhook-ids", async () => {
        const topic = await createTopic(tenant.client);
        const sub = await subscribe(tenant.client, topic);
        // Separate produce requests so the messages have distinct timestamps.
        for (const v of ["r-0", "r-1", "r-2"]) {
          await produce(tenant.client, topic, [{ value: v }]);
          // Waits for time itself: the next message must get a later millisecond timestamp;
          // the precondition just below checks that they did.
          await sleep(30);
        }
        const messages = await readAll(tenant.client, topic, 0);
        expect(
          messages.map((m) => m.timestamp as number),
          "timestamps distinct (test precondition)",
        ).toEqual([...new Set(messages.map((m) => m.timestamp as number))]);
        const first = await withState(sub, sink.waitForCount(sub.path, 3));
        await drained(tenant.client, sub);
        const idOf = new Map(first.map((r) => [r.json.offset as number, r.headers["webhook-id"]]));
        expect(idOf.size).toBe(3);

        const byOffset = await post(tenant.client, sub, "replay", { offset: 0 });
        assertStatus(byOffset, 200);
        expect(byOffset.body.name).toBe(sub.name);
        const afterOffset = await withState(sub, sink.waitForCount(sub.path, 6));
        await drained(tenant.client, sub);
        const replayed = afterOffset.slice(3);
        expect(replayed.map((r) => r.json.offset).sort()).toEqual([0, 1, 2]);
        for (const r of replayed) {
          expect(r.headers["webhook-id"], "a replay keeps the webhook-id").toBe(idOf.get(r.json.offset));
          expect(r.json.value).toBe(messages[r.json.offset]!.value);
          expectSigned(r, sub.secret);
        }

        const byTime = await post(tenant.client, sub, "replay", { timestamp: messages[1]!.timestamp });
        assertStatus(byTime, 200);
        await withState(sub, sink.waitForCount(sub.path, 8));
        await drained(tenant.client, sub);
        // No wait for stragglers: drained (lag 0, inFlight 0) means the service settled every
        // attempt it made, each answered by the sink (or given up), so the record is complete.
        const all = sink.requests(sub.path);
        const third = all.slice(6);
        expect(third.map((r) => r.json.offset).sort(), `replay from the timestamp of offset 1:\n${describeRequests(all)}`).toEqual([1, 2]);
        for (const r of third) {
          expect(r.headers["webhook-id"]).toBe(idOf.get(r.json.offset));
          expectSigned(r, sub.secret);
        }
      });
    });

    // ---------------------------------------------------------------- secrets and formats

    describe("secret rotation and formats", () => {
      it("rotate-secret: later deliveries verify with the new secret and, during the grace period, the old one; graceSeconds 0 ends the old one at once", async () => {
        const topic = await createTopic(tenant.client);
        const sub = await subscribe(tenant.client, topic);
        const s1 = sub.secret;
        await produce(tenant.client, topic, [{ value: "before" }]);
        const [before] = await withState(sub, sink.waitForCount(sub.path, 1));
        expectSigned(before!, s1);
        expect(before!.headers["webhook-signature"]!.split(" "), "one signature outside a rotation").toHaveLength(1);

        const rotated = await post(tenant.client, sub, "rotate-secret");
        assertStatus(rotated, 200);
        const s2 = rotated.body.secret as string;
        expect(s2).toMatch(/^whsec_[A-Za-z0-9+/]+={0,2}$/);
        expect(s2).not.toBe(s1);
        expect(Number.isInteger(rotated.body.secretRotatedAt), describeResponse(rotated)).toBe(true);
        expect(rotated.body.previousSecretExpiresAt - rotated.body.secretRotatedAt, "default grace: 86,400 s").toBe(86_400_000);
        const view = await getSub(tenant.client, sub);
        expect(view.secret).toBeUndefined();
        expect(view.secretRotatedAt).toBe(rotated.body.secretRotatedAt);

        await produce(tenant.client, topic, [{ value: "during grace" }]);
        const [, during] = await withState(sub, sink.waitForCount(sub.path, 2));
        expect(verifyError(s2, during!), "verifies with the new secret").toBeNull();
        expect(verifyError(s1, during!), "verifies with the old secret during the grace period").toBeNull();
        const signatures = during!.headers["webhook-signature"]!.split(" ");
        expect(signatures, "two signatures during the grace period").toHaveLength(2);
        expect(verifyError(s2, during!, signatures[0]), "the new secret's signature first").toBeNull();
        expect(verifyError(s1, during!, signatures[1]), "the old secret's signature second").toBeNull();

        const immediate = await post(tenant.client, sub, "rotate-secret", { graceSeconds: 0 });
        assertStatus(immediate, 200);
        const s3 = immediate.body.secret as string;
        expect(new Set([s1, s2, s3]).size).toBe(3);
        await produce(tenant.client, topic, [{ value: "after" }]);
        const [, , after] = await withState(sub, sink.waitForCount(sub.path, 3));
        expect(verifyError(s3, after!), "verifies with the newest secret").toBeNull();
        expect(verifyError(s2, after!), "the secret replaced with graceSeconds 0 no longer verifies").not.toBeNull();
        expect(verifyError(s1, after!), "the first secret no longer verifies").not.toBeNull();
      });

      it('format "cloudevents": structured CloudEvents 1.0 the cloudevents SDK accepts, signed like any delivery', async () => {
        const topic = await createTopic(tenant.client);
        const sub = await subscribe(tenant.client, topic, { format: "cloudevents" });
        expect(sub.created.format).toBe("cloudevents");
        const sent: Msg[] = [
          { key: "k-json", value: '{"a":1,"b":[true,null]}', headers: { "content-type": "application/json", trace: "t1" } },
          { value: "hello" },
          { key: "k-bin", valueBase64: Buffer.from([0, 1, 2, 253, 254, 255]).toString("base64") },
        ];
        const offsets = await produce(tenant.client, topic, sent);
        const messages = await stored(tenant.client, topic, offsets);
        const all = await withState(sub, sink.waitForCount(sub.path, 3));
        await drained(tenant.client, sub);

        for (const [i, m] of messages.entries()) {
          const req = all.find((r) => r.json?.offset === m.offset);
          expect(req, `delivery of offset ${m.offset}:\n${describeRequests(all)}`).toBeDefined();
          const where = describeRequests([req!]);
          expect(mediaType(req!.headers["content-type"]), where).toBe("application/cloudevents+json");
          expectSigned(req!, sub.secret);
          const event = HTTP.toEvent({ headers: req!.headers, body: req!.body }) as CloudEvent<unknown>;
          expect(() => event.validate(), where).not.toThrow();
          // Strict construction also checks the extension names and value types.
          expect(() => new CloudEvent(JSON.parse(req!.body)), where).not.toThrow();
          const body = req!.json;
          expect(body, where).toMatchObject({
            specversion: "1.0",
            id: req!.headers["webhook-id"],
            source: `/v1/topics/${topic}`,
            type: "reservoir.message",
            partition: m.partition,
            offset: m.offset,
            attempt: 1,
          });
          expect(Date.parse(body.time), `time ${body.time} is the message timestamp`).toBe(m.timestamp);
          expect(body.subject, where).toBe(sent[i]!.key);
          if (m.headers) expect(JSON.parse(body.headers), where).toEqual(m.headers);
          else expect(body.headers, where).toBeUndefined();
        }
        const [json, text, bin] = messages.map((m) => all.find((r) => r.json?.offset === m.offset)!.json);
        expect(json.datacontenttype).toBe("application/json");
        expect(json.data, "a JSON value is sent as itself").toEqual({ a: 1, b: [true, null] });
        expect(text.datacontenttype).toBe("text/plain; charset=utf-8");
        expect(text.data).toBe("hello");
        expect(bin.datacontenttype).toBe("application/octet-stream");
        expect(bin.data_base64).toBe(sent[2]!.valueBase64);
        expect(bin.data).toBeUndefined();
      });
    });

    // ---------------------------------------------------------------- the cron path (Workers)

    if (options.sweep) {
      describe("the scheduled sweep (Cron Trigger)", () => {
        /** Stops the background sweeps and waits out the work of the last one. */
        async function holdSweeps(): Promise<void> {
          await sweeper!.hold();
          // Waits for time itself: a sweep goes on for RESERVOIR_SWEEP_SECONDS (3 in
          // worker.test.ts) after its request answered, and nothing outside the isolate shows
          // when it ends. The tests below then assert on what the sink received.
          await sleep(3_500);
        }

        it("without any sweep, a produce request starts the dispatch of its messages", async () => {
          await holdSweeps();
          try {
            const topic = await createTopic(tenant.client, 2);
            const sub = await subscribe(tenant.client, topic);
            await produce(tenant.client, topic, [{ value: "w-0" }, { value: "w-1" }, { value: "w-2" }]);
            const all = await withState(sub, sink.waitForCount(sub.path, 3));
            expect(all.map(bodyValue).sort()).toEqual(["w-0", "w-1", "w-2"]);
            for (const r of all) expectSigned(r, sub.secret);
          } finally {
            sweeper!.release();
          }
        });

        it("a retry whose backoff outlasts the produce's dispatch is delivered by a sweep", async () => {
          await holdSweeps();
          try {
            const topic = await createTopic(tenant.client);
            // A short timeout: this test is about the sweep picking up a retry, the next one about
            // the sweep and a timeoutMs longer than it.
            const sub = await subscribe(tenant.client, topic, { timeoutMs: 1_000, backoff: { initialSeconds: 3, maxSeconds: 3 } });
            sink.on(sub.path, [{ status: 500 }, { status: 200 }]);
            await produce(tenant.client, topic, [{ value: "swept" }]);
            const [first] = await withState(sub, sink.waitForCount(sub.path, 1));
            // Waits for time itself: the retry's backoff must elapse (it is due within 3 s of the
            // failure, full jitter below 3 s) before a sweep may deliver it; asserted below.
            const due = first!.respondedAt! + 3_000 + SLACK_MS;
            await sleep(Math.max(0, due - performance.now()));
            // Sweeps, one after another (each awaited), until the retry arrived or the deadline.
            const deadline = Date.now() + WAIT_MS;
            while (sink.requests(sub.path).length < 2 && Date.now() < deadline) {
              await options.sweep!(target!);
              await sink.waitForCount(sub.path, 2, 200).catch(() => {});
            }
            const all = await withState(sub, sink.waitForCount(sub.path, 2, 5_000));
            expect(
              all.map((r) => [r.json.attempt, r.status]),
              describeRequests(all),
            ).toEqual([
              [1, 500],
              [2, 200],
            ]);
            expect(all[1]!.headers["webhook-id"]).toBe(all[0]!.headers["webhook-id"]);
            for (const r of all) expectSigned(r, sub.secret);
          } finally {
            sweeper!.release();
          }
        });

        it("a sweep delivers what only a sweep can (a delayed message) whatever the subscription's timeoutMs", async () => {
          // Sweeps run back to back, RESERVOIR_SWEEP_SECONDS (3) each; the contract ties neither
          // delivery nor timeoutMs (up to 30 s) to the sweep's length. A delayed message is not
          // due when its produce dispatches, so a sweep is what delivers it.
          const topic = await createTopic(tenant.client);
          const short = await subscribe(tenant.client, topic, { timeoutMs: 1_000 });
          const long = await subscribe(tenant.client, topic);
          expect(long.created.timeoutMs).toBe(10_000);
          await produce(tenant.client, topic, [{ value: "due in a second", delaySeconds: 1 }]);
          for (const sub of [short, long]) {
            const [got] = await withState(sub, sink.waitForCount(sub.path, 1));
            expect(bodyValue(got!), `timeoutMs ${sub.created.timeoutMs}`).toBe("due in a second");
            expectSigned(got!, sub.secret);
          }
        });
      });
    }
  });
}

/**
 * The address guard (docs/webhooks.md, "Address guard") on a target started WITHOUT
 * RESERVOIR_WEBHOOK_ALLOW_PRIVATE: loopback in every spelling is refused with 400
 * url_not_allowed and nothing is created. Each URL names a loopback address or `localhost` (the
 * sink's port): were the guard to let one through, nothing would leave this machine.
 */
export function addressGuardSuite(name: string, startTargetWithoutAllowList: () => Promise<ContractTarget>): void {
  describe(`webhook address guard (no allow-list) on ${name}`, () => {
    let target: ContractTarget | undefined;
    let client: Api;
    let sink: WebhookSink;
    const runId = randomBytes(3).toString("hex");

    beforeAll(async () => {
      target = await startTargetWithoutAllowList();
      sink = await startWebhookSink();
      const admin = api(target.baseUrl, target.adminToken);
      const res = await admin.post("/v1/admin/tenants", { name: `guard-${runId}` });
      assertStatus(res, 201);
      client = api(target.baseUrl, res.body.apiKey);
    }, 180_000);

    afterAll(async () => {
      await sink?.close();
      await target?.stop();
    }, 60_000);

    showServerOutputOnFailure(name, () => target);

    it("refuses loopback and unspecified addresses in every spelling: 400 url_not_allowed, nothing created, nothing sent", async () => {
      const topic = `guard-${runId}`;
      assertStatus(await client.put(`/v1/topics/${topic}`, { partitions: 1 }), 201);
      const port = sink.port;
      const urls = [
        `http://127.0.0.1:${port}/plain`,
        `http://localhost:${port}/name`,
        `http://LOCALHOST:${port}/upper`,
        `http://[::1]:${port}/v6`,
        `http://[0:0:0:0:0:0:0:1]:${port}/v6-long`,
        `http://[::ffff:127.0.0.1]:${port}/mapped`,
        `http://0.0.0.0:${port}/unspecified`,
        `http://2130706433:${port}/decimal`,
        `http://0x7f000001:${port}/hex`,
        `http://127.1:${port}/short`,
        `http://127.0.0.2:${port}/other-loopback`,
        `https://127.0.0.1:${port}/tls`,
      ];
      for (const [i, url] of urls.entries()) {
        const sub = `g${i}`;
        const res = await client.put(`/v1/topics/${topic}/subscriptions/${sub}`, { url });
        const problem = assertProblem(res, 400, "url_not_allowed");
        expect(problem.detail, url).toBeTypeOf("string");
        assertProblem(await client.get(`/v1/topics/${topic}/subscriptions/${sub}`), 404, "subscription_not_found");
      }
      // A message produced now would go to any subscription the guard had let through. Waits for
      // time itself: no subscription can be a witness here (the guard refuses the sink's
      // address), so a quiet second stands in for "the dispatcher had its chance"; then the
      // sink's record is asserted.
      assertStatus(await client.post(`/v1/topics/${topic}/messages`, { messages: [{ value: "probe" }] }), 200);
      await sleep(1_000);
      expect(sink.requests(), describeRequests(sink.requests())).toEqual([]);
    });
  });
}
