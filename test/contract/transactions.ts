// The transactions contract of shared/API.md ("Transactions", and `transactionId` in "Produce"),
// exercised through HTTP only so that the same suite runs on every target: the Node server
// (embedded, or on Postgres + S3) and the Worker. Check-backs go to a recording sink on
// 127.0.0.1 (test/support/webhook-sink.ts) and every one is verified with the reference
// `standardwebhooks` package against the transaction's checkSecret.
//
// Timing: timeouts and check intervals of 1 s are waited for by polling the transaction's
// state (or the sink) until a bound; the only timing assertions are lower bounds the contract
// guarantees (no check before the timeout, checks at least an interval apart).

import { randomBytes } from "node:crypto";
import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { api, assertProblem, assertStatus, describeResponse, type Api, type ApiResponse } from "../support/http.ts";
import { highWatermarks, produce, readAll, topicPath } from "../support/topics.ts";
import { describeRequests, startWebhookSink, type SinkRequest, type WebhookSink } from "../support/webhook-sink.ts";
import { showServerOutputOnFailure, type ContractTarget } from "./contract.ts";

export interface TransactionsSuiteOptions {
  /**
   * Runs the target's periodic sweep once (Workers: the Cron Trigger through wrangler's
   * /__scheduled). When given, the suite runs it back to back in the background, as the cron
   * does in production; the Node server sweeps on its own timer.
   */
  sweep?: (target: ContractTarget) => Promise<void>;
  sweepIntervalMs?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const WAIT_MS = 30_000;
/** Clock granularity allowed below a guaranteed lower bound (timers, second-rounded expiries). */
const SLACK_MS = 100;

type Msg = Record<string, any>;

interface Tenant {
  tenantId: string;
  apiKey: string;
  client: Api;
}

interface Tx {
  transactionId: string;
  expiresAt: number;
  checkSecret?: string;
}

/** Polls `read` until `done` holds of its result, or fails after `ms` naming `what`. */
async function poll<T>(read: () => Promise<T>, done: (value: T) => boolean, what: string, ms = WAIT_MS): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}; last: ${JSON.stringify(value).slice(0, 2000)}`);
    await sleep(50);
  }
}

export function transactionsSuite(name: string, startTarget: () => Promise<ContractTarget>, options: TransactionsSuiteOptions = {}): void {
  describe(`transactions (API.md) on ${name}`, () => {
    let target: ContractTarget | undefined;
    let admin: Api;
    let tenant: Tenant;
    let sink: WebhookSink;
    let seq = 0;
    const runId = randomBytes(3).toString("hex");
    let stopSweeping: (() => Promise<void>) | undefined;
    const sweepErrors: string[] = [];
    const uniq = (prefix: string) => `${prefix}-${runId}-${++seq}`;

    beforeAll(async () => {
      target = await startTarget();
      admin = api(target.baseUrl, target.adminToken);
      tenant = await newTenant("tx-main");
      sink = await startWebhookSink();
      if (options.sweep) {
        let stopped = false;
        const t = target;
        const loop = (async () => {
          while (!stopped) {
            const started = Date.now();
            await options.sweep!(t).catch((err: Error) => void sweepErrors.push(err.message));
            // The cron's cadence, which this loop stands in for: time passing is the point here.
            await sleep(Math.max(100, (options.sweepIntervalMs ?? 1_000) - (Date.now() - started)));
          }
        })();
        stopSweeping = async () => {
          stopped = true;
          await loop;
        };
      }
    }, 180_000);

    afterAll(async () => {
      await stopSweeping?.();
      await sink?.close();
      await target?.stop();
      expect(sweepErrors, "the target's scheduled sweep failed").toEqual([]);
    }, 120_000);

    showServerOutputOnFailure(name, () => target);

    // ---------------------------------------------------------------- helpers

    async function newTenant(prefix: string): Promise<Tenant> {
      const res = await admin.post("/v1/admin/tenants", { name: uniq(prefix) });
      assertStatus(res, 201);
      return { tenantId: res.body.tenantId, apiKey: res.body.apiKey, client: api(target!.baseUrl, res.body.apiKey) };
    }

    async function createTopic(client: Api, partitions = 1): Promise<string> {
      const topic = uniq("t");
      assertStatus(await client.put(topicPath(topic), { partitions }), 201);
      return topic;
    }

    async function begin(client: Api, body: Record<string, unknown> = {}): Promise<Tx> {
      const res = await client.post("/v1/transactions", body);
      assertStatus(res, 201);
      return res.body as Tx;
    }

    function produceTx(client: Api, topic: string, transactionId: string, messages: Msg[]): Promise<ApiResponse> {
      return client.post(`${topicPath(topic)}/messages`, { messages, transactionId });
    }

    async function produceInto(client: Api, topic: string, transactionId: string, messages: Msg[]): Promise<void> {
      const res = await produceTx(client, topic, transactionId, messages);
      assertStatus(res, 202);
      expect(res.body, describeResponse(res)).toEqual({ pending: messages.length });
    }

    const txPath = (id: string) => `/v1/transactions/${encodeURIComponent(id)}`;
    const commit = (client: Api, id: string, body: Record<string, unknown> = {}) => client.post(`${txPath(id)}/commit`, body);
    const rollback = (client: Api, id: string) => client.post(`${txPath(id)}/rollback`);

    async function state(client: Api, id: string): Promise<{ state: string; expiresAt: number; checks: number }> {
      const res = await client.get(txPath(id));
      assertStatus(res, 200);
      return res.body;
    }

    async function values(client: Api, topic: string, partitions = 1): Promise<string[]> {
      const out: string[] = [];
      for (let p = 0; p < partitions; p++) out.push(...(await readAll(client, topic, p)).map((m) => m.value as string));
      return out;
    }

    const groupPath = (topic: string, group: string) => `${topicPath(topic)}/groups/${encodeURIComponent(group)}`;

    async function receive(client: Api, topic: string, group: string, body: Record<string, unknown> = {}): Promise<Msg[]> {
      const res = await client.post(`${groupPath(topic, group)}/receive`, { max: 100, ...body });
      assertStatus(res, 200);
      return res.body.messages;
    }

    function expectSigned(req: SinkRequest, secret: string): void {
      let why: string | null = null;
      try {
        new Webhook(secret).verify(req.body, req.headers);
      } catch (err) {
        why = (err as Error).message;
      }
      expect(why, `the check must verify with the transaction's checkSecret (standardwebhooks): ${describeRequests([req])}`).toBeNull();
    }

    // ---------------------------------------------------------------- begin, produce, commit

    describe("begin", () => {
      it("answers 201 with an id and an expiry; checkSecret only with a checkUrl", async () => {
        const before = Date.now();
        const plain = await begin(tenant.client);
        expect(plain.transactionId).toMatch(/\S/);
        expect(plain.checkSecret).toBeUndefined();
        expect(plain.expiresAt).toBeGreaterThanOrEqual(before + 60_000 - SLACK_MS);
        expect(plain.expiresAt).toBeLessThanOrEqual(Date.now() + 60_000 + SLACK_MS);
        const short = await begin(tenant.client, { timeoutSeconds: 5 });
        expect(short.expiresAt - Date.now()).toBeLessThanOrEqual(5_000 + SLACK_MS);
        const checked = await begin(tenant.client, { checkUrl: sink.url("/never"), checkIntervalSeconds: 10, timeoutSeconds: 3600 });
        expect(checked.checkSecret).toMatch(/^whsec_[A-Za-z0-9+/]+=*$/);
        expect(await state(tenant.client, plain.transactionId)).toMatchObject({ state: "open", expiresAt: plain.expiresAt, checks: 0 });
        for (const tx of [plain, short, checked]) assertStatus(await rollback(tenant.client, tx.transactionId), 200);
      });

      it("refuses bad input with a 400 and opens nothing", async () => {
        const bad: [unknown, string][] = [
          [{ timeoutSeconds: 0 }, "invalid_request"],
          [{ timeoutSeconds: 3601 }, "invalid_request"],
          [{ timeoutSeconds: 1.5 }, "invalid_request"],
          [{ timeoutSeconds: "10" }, "invalid_request"],
          [{ checkUrl: "ftp://127.0.0.1/x" }, "invalid_request"],
          [{ checkUrl: "not a url" }, "invalid_request"],
          [{ checkUrl: sink.url("/x"), checkIntervalSeconds: 0 }, "invalid_request"],
          [{ checkIntervalSeconds: 5 }, "invalid_request"],
          [{ other: 1 }, "invalid_request"],
          [{ checkUrl: "http://10.1.2.3/check" }, "url_not_allowed"],
          [{ checkUrl: "http://169.254.169.254/check" }, "url_not_allowed"],
        ];
        for (const [body, code] of bad) assertProblem(await tenant.client.post("/v1/transactions", body), 400, code);
        assertProblem(
          await tenant.client.request("POST", "/v1/transactions", { raw: "{", contentType: "application/json" }),
          400,
          "malformed_json",
        );
      });

      it("needs the produce scope and a key", async () => {
        const res = await admin.post(`/v1/admin/tenants/${tenant.tenantId}/keys`, { scopes: ["consume"] });
        assertStatus(res, 201);
        const consumeOnly = api(target!.baseUrl, res.body.apiKey);
        assertProblem(await consumeOnly.post("/v1/transactions", {}), 403);
        assertProblem(await tenant.client.post("/v1/transactions", {}, { token: null }), 401);
      });
    });

    describe("produce and commit", () => {
      it("holds messages pending (nothing visible, no high watermark moves) until the commit shows them all, offsets in production order", async () => {
        const a = await createTopic(tenant.client, 2);
        const b = await createTopic(tenant.client, 1);
        const tx = await begin(tenant.client);
        await produceInto(tenant.client, a, tx.transactionId, [
          { value: "a1", partition: 1 },
          { value: "a2", partition: 0 },
        ]);
        await produceInto(tenant.client, b, tx.transactionId, [{ value: "b1" }]);
        await produceInto(tenant.client, a, tx.transactionId, [{ value: "a3", partition: 1, key: "k", headers: { h: "v" } }]);
        expect(await highWatermarks(tenant.client, a)).toEqual([0, 0]);
        expect(await highWatermarks(tenant.client, b)).toEqual([0]);
        expect(await values(tenant.client, a, 2)).toEqual([]);

        const res = await commit(tenant.client, tx.transactionId);
        assertStatus(res, 200);
        expect(res.body.offsets).toEqual([
          { topic: a, partition: 1, offset: 0 },
          { topic: a, partition: 0, offset: 0 },
          { topic: b, partition: 0, offset: 0 },
          { topic: a, partition: 1, offset: 1 },
        ]);
        expect(await highWatermarks(tenant.client, a)).toEqual([1, 2]);
        expect(await highWatermarks(tenant.client, b)).toEqual([1]);
        const p1 = await readAll(tenant.client, a, 1);
        expect(p1.map((m) => m.value)).toEqual(["a1", "a3"]);
        expect(p1[1]).toMatchObject({ key: "k", headers: { h: "v" }, offset: 1 });
        expect((await readAll(tenant.client, b, 0)).map((m) => m.value)).toEqual(["b1"]);

        // Again: the same offsets. Then rollback is refused, and so is producing more.
        const again = await commit(tenant.client, tx.transactionId);
        assertStatus(again, 200);
        expect(again.body.offsets).toEqual(res.body.offsets);
        assertProblem(await rollback(tenant.client, tx.transactionId), 409, "transaction_not_open");
        assertProblem(await produceTx(tenant.client, a, tx.transactionId, [{ value: "late" }]), 409, "transaction_not_open");
        expect(await state(tenant.client, tx.transactionId)).toMatchObject({ state: "committed" });
        expect(await values(tenant.client, a, 2)).toHaveLength(3);
      });

      it("interleaves with plain produce: offsets stay dense, plain messages are visible at once", async () => {
        const t = await createTopic(tenant.client);
        const tx = await begin(tenant.client);
        await produceInto(tenant.client, t, tx.transactionId, [{ value: "tx1" }, { value: "tx2" }]);
        expect(await produce(tenant.client, t, [{ value: "plain1" }])).toEqual([{ partition: 0, offset: 0 }]);
        assertStatus(await commit(tenant.client, tx.transactionId), 200);
        expect(await produce(tenant.client, t, [{ value: "plain2" }])).toEqual([{ partition: 0, offset: 3 }]);
        expect(await values(tenant.client, t)).toEqual(["plain1", "tx1", "tx2", "plain2"]);
      });

      it("an empty transaction commits with no offsets", async () => {
        const tx = await begin(tenant.client);
        const res = await commit(tenant.client, tx.transactionId);
        assertStatus(res, 200);
        expect(res.body).toEqual({ offsets: [] });
      });

      it("refuses unknown and foreign transactions with 404, and bad produce bodies with 4xx, changing nothing", async () => {
        const t = await createTopic(tenant.client);
        assertProblem(await produceTx(tenant.client, t, "tx_nope", [{ value: "x" }]), 404, "transaction_not_found");
        assertProblem(await commit(tenant.client, "tx_nope"), 404, "transaction_not_found");
        assertProblem(await rollback(tenant.client, "tx_nope"), 404, "transaction_not_found");
        assertProblem(await tenant.client.get(txPath("tx_nope")), 404, "transaction_not_found");
        const other = await newTenant("tx-other");
        const foreign = await begin(other.client);
        assertProblem(await produceTx(tenant.client, t, foreign.transactionId, [{ value: "x" }]), 404, "transaction_not_found");
        assertProblem(await commit(tenant.client, foreign.transactionId), 404, "transaction_not_found");
        assertProblem(await rollback(tenant.client, foreign.transactionId), 404, "transaction_not_found");
        assertProblem(await tenant.client.get(txPath(foreign.transactionId)), 404, "transaction_not_found");
        expect(await state(other.client, foreign.transactionId)).toMatchObject({ state: "open" });

        const tx = await begin(tenant.client);
        assertProblem(await produceTx(tenant.client, t, tx.transactionId, [{ value: "x", partition: 5 }]), 400, "partition_out_of_range");
        assertProblem(await produceTx(tenant.client, t, tx.transactionId, []), 400, "invalid_request");
        assertProblem(await tenant.client.post(`${topicPath(t)}/messages`, { messages: [{ value: "x" }], transactionId: 7 }), 400);
        assertProblem(await commit(tenant.client, tx.transactionId, { acks: "no" }), 400, "invalid_request");
        assertProblem(await commit(tenant.client, tx.transactionId, { acks: [{ topic: t, group: "g" }] }), 400, "invalid_request");
        assertProblem(await commit(tenant.client, tx.transactionId, { other: true }), 400, "invalid_request");
        const res = await commit(tenant.client, tx.transactionId);
        assertStatus(res, 200);
        expect(res.body.offsets).toEqual([]);
      });
    });

    describe("rollback and timeout", () => {
      it("a rolled-back transaction is never visible; rollback repeats, commit and produce after it are 409", async () => {
        const t = await createTopic(tenant.client);
        const tx = await begin(tenant.client);
        await produceInto(tenant.client, t, tx.transactionId, [{ value: "gone1" }, { value: "gone2" }]);
        const res = await rollback(tenant.client, tx.transactionId);
        assertStatus(res, 200);
        expect(res.body).toMatchObject({ state: "rolled_back" });
        assertStatus(await rollback(tenant.client, tx.transactionId), 200);
        assertProblem(await commit(tenant.client, tx.transactionId), 409, "transaction_not_open");
        assertProblem(await produceTx(tenant.client, t, tx.transactionId, [{ value: "x" }]), 409, "transaction_not_open");
        expect(await produce(tenant.client, t, [{ value: "after" }])).toEqual([{ partition: 0, offset: 0 }]);
        expect(await values(tenant.client, t)).toEqual(["after"]);
      });

      it("without a checkUrl, a transaction is rolled back at its timeout and never visible", async () => {
        const t = await createTopic(tenant.client);
        const tx = await begin(tenant.client, { timeoutSeconds: 1 });
        await produceInto(tenant.client, t, tx.transactionId, [{ value: "late" }]);
        const ended = await poll(
          () => state(tenant.client, tx.transactionId),
          (s) => s.state !== "open",
          "the timed-out transaction is rolled back",
        );
        expect(ended.state).toBe("rolled_back");
        expect(Date.now()).toBeGreaterThanOrEqual(tx.expiresAt - SLACK_MS);
        assertProblem(await commit(tenant.client, tx.transactionId), 409, "transaction_not_open");
        assertProblem(await produceTx(tenant.client, t, tx.transactionId, [{ value: "x" }]), 409, "transaction_not_open");
        expect(await highWatermarks(tenant.client, t)).toEqual([0]);
      });

      it("a commit after the timeout is refused even before the sweep has rolled it back", async () => {
        const t = await createTopic(tenant.client);
        const tx = await begin(tenant.client, { timeoutSeconds: 1 });
        await produceInto(tenant.client, t, tx.transactionId, [{ value: "late" }]);
        // Waits for time itself: the timeout must pass.
        await sleep(Math.max(0, tx.expiresAt - Date.now()) + SLACK_MS);
        assertProblem(await commit(tenant.client, tx.transactionId), 409, "transaction_not_open");
        expect(await state(tenant.client, tx.transactionId)).toMatchObject({ state: "rolled_back" });
        expect(await values(tenant.client, t)).toEqual([]);
      });

      it("concurrent commit and rollback: exactly one wins, and what is visible agrees with it", async () => {
        for (let round = 0; round < 6; round++) {
          const t = await createTopic(tenant.client);
          const tx = await begin(tenant.client);
          await produceInto(tenant.client, t, tx.transactionId, [{ value: `r${round}a` }, { value: `r${round}b` }]);
          const [c, r] = await Promise.all([commit(tenant.client, tx.transactionId), rollback(tenant.client, tx.transactionId)]);
          const outcome = `${c.status}/${r.status}`;
          expect(["200/409", "409/200"], `commit ${describeResponse(c)}; rollback ${describeResponse(r)}`).toContain(outcome);
          const final = await state(tenant.client, tx.transactionId);
          if (c.status === 200) {
            assertProblem(r, 409, "transaction_not_open");
            expect(final.state).toBe("committed");
            expect(await values(tenant.client, t)).toEqual([`r${round}a`, `r${round}b`]);
          } else {
            assertProblem(c, 409, "transaction_not_open");
            expect(final.state).toBe("rolled_back");
            expect(await values(tenant.client, t)).toEqual([]);
          }
        }
      });
    });

    describe("visibility", () => {
      it("a reader polling every topic of the transactions sees all of a transaction's messages or none", async () => {
        const a = await createTopic(tenant.client, 2);
        const b = await createTopic(tenant.client, 1);
        const parts: [string, number][] = [
          [a, 0],
          [a, 1],
          [b, 0],
        ];
        const TXS = 6;
        const PER_PART = 3;
        let writing = true;
        const violations: string[] = [];
        let rounds = 0;
        /** Per transaction tag: the messages seen in the last full round. */
        const reader = (async () => {
          let previous = new Map<string, number>();
          while (writing || rounds < 2) {
            const seen = new Map<string, number>();
            for (const [topic, p] of parts) {
              for (const m of await readAll(tenant.client, topic, p)) {
                const tag = String(m.value).split(":")[0];
                seen.set(tag, (seen.get(tag) ?? 0) + 1);
              }
            }
            // A transaction seen at all in a round must be whole in the rounds that follow it,
            // and whole in the round itself once it was whole before.
            for (const [tag, n] of previous) {
              if ((seen.get(tag) ?? 0) !== parts.length * PER_PART)
                violations.push(`round ${rounds}: ${tag} had ${n} of ${parts.length * PER_PART} before, now ${seen.get(tag) ?? 0}`);
            }
            previous = seen;
            rounds++;
            if (!writing) break;
          }
        })();
        try {
          for (let i = 0; i < TXS; i++) {
            const tx = await begin(tenant.client);
            const tag = `tx${i}`;
            // Several requests per partition, interleaved, while the reader polls.
            for (let k = 0; k < PER_PART; k++) {
              await Promise.all(
                parts.map(([topic, p]) => produceInto(tenant.client, topic, tx.transactionId, [{ value: `${tag}:${k}`, partition: p }])),
              );
            }
            if (i % 2 === 1) {
              // A rolled-back one in between: never seen.
              const dropped = await begin(tenant.client);
              await produceInto(tenant.client, a, dropped.transactionId, [{ value: `dropped${i}:0`, partition: 0 }]);
              assertStatus(await rollback(tenant.client, dropped.transactionId), 200);
            }
            assertStatus(await commit(tenant.client, tx.transactionId), 200);
          }
        } finally {
          writing = false;
          await reader;
        }
        expect(violations).toEqual([]);
        expect(rounds).toBeGreaterThan(1);
        const all = [...(await values(tenant.client, a, 2)), ...(await values(tenant.client, b))];
        expect(all.filter((v) => v.startsWith("dropped"))).toEqual([]);
        expect(all).toHaveLength(TXS * parts.length * PER_PART);
        // Within a partition, each transaction's messages are contiguous and in production order.
        for (const [topic, p] of parts) {
          const vs = (await readAll(tenant.client, topic, p)).map((m) => String(m.value));
          const expected = Array.from({ length: TXS }, (_, i) => Array.from({ length: PER_PART }, (_, k) => `tx${i}:${k}`)).flat();
          expect(vs).toEqual(expected);
        }
      });

      it("consumer groups receive a transaction's messages only after its commit", async () => {
        const t = await createTopic(tenant.client);
        assertStatus(await tenant.client.put(groupPath(t, "g"), { startAt: "earliest" }), 201);
        const tx = await begin(tenant.client);
        await produceInto(tenant.client, t, tx.transactionId, [{ value: "held" }]);
        await produce(tenant.client, t, [{ value: "plain" }]);
        const first = await receive(tenant.client, t, "g");
        expect(first.map((m) => m.value)).toEqual(["plain"]);
        expect(await receive(tenant.client, t, "g")).toEqual([]);
        assertStatus(await commit(tenant.client, tx.transactionId), 200);
        const second = await receive(tenant.client, t, "g", { waitMs: 5_000 });
        expect(second.map((m) => m.value)).toEqual(["held"]);
      });

      it("webhook subscriptions get a transaction's messages only after its commit", async () => {
        const t = await createTopic(tenant.client);
        const path = `/hook-${uniq("s")}`;
        assertStatus(await tenant.client.put(`${topicPath(t)}/subscriptions/s`, { url: sink.url(path), startAt: "earliest" }), 201);
        const tx = await begin(tenant.client);
        await produceInto(tenant.client, t, tx.transactionId, [{ value: "held" }]);
        await produce(tenant.client, t, [{ value: "plain" }]);
        // A positive signal that delivery ran past the pending message: the later plain one came.
        await sink.waitFor(path, (rs) => rs.some((r) => r.json?.value === "plain"), WAIT_MS, "the plain message");
        expect(sink.requests(path).map((r) => r.json?.value)).not.toContain("held");
        assertStatus(await commit(tenant.client, tx.transactionId), 200);
        const got = await sink.waitFor(path, (rs) => rs.some((r) => r.json?.value === "held"), WAIT_MS, "the committed message");
        expect(got.find((r) => r.json?.value === "held")!.json.offset).toBe(1);
      });

      it("idempotency keys are claimed at commit: a key committed before answers its offset, a rolled-back one stays free", async () => {
        const t = await createTopic(tenant.client);
        const [k1] = await produce(tenant.client, t, [{ value: "first", idempotencyKey: "k1" }]);
        const tx = await begin(tenant.client);
        await produceInto(tenant.client, t, tx.transactionId, [
          { value: "dup", idempotencyKey: "k1" },
          { value: "new", idempotencyKey: "k2" },
          { value: "new-again", idempotencyKey: "k2" },
        ]);
        const res = await commit(tenant.client, tx.transactionId);
        assertStatus(res, 200);
        expect(res.body.offsets).toEqual([
          { topic: t, ...k1 },
          { topic: t, partition: 0, offset: 1 },
          { topic: t, partition: 0, offset: 1 },
        ]);
        expect(await produce(tenant.client, t, [{ value: "k2-later", idempotencyKey: "k2" }])).toEqual([{ partition: 0, offset: 1 }]);
        expect(await values(tenant.client, t)).toEqual(["first", "new"]);

        const dropped = await begin(tenant.client);
        await produceInto(tenant.client, t, dropped.transactionId, [{ value: "never", idempotencyKey: "k3" }]);
        const plainFirst = await produce(tenant.client, t, [{ value: "plain-k4", idempotencyKey: "k4" }]);
        assertStatus(await rollback(tenant.client, dropped.transactionId), 200);
        expect(await produce(tenant.client, t, [{ value: "k3-plain", idempotencyKey: "k3" }])).toEqual([{ partition: 0, offset: 3 }]);
        expect(plainFirst).toEqual([{ partition: 0, offset: 2 }]);
        expect(await values(tenant.client, t)).toEqual(["first", "new", "plain-k4", "k3-plain"]);
      });
    });

    describe("consume → transform → produce with acks", () => {
      it("a commit applies its acks with its messages; a bad receipt refuses it all and leaves it open", async () => {
        const input = await createTopic(tenant.client);
        const output = await createTopic(tenant.client);
        assertStatus(await tenant.client.put(groupPath(input, "workers"), { startAt: "earliest" }), 201);
        await produce(tenant.client, input, [{ value: "1" }, { value: "2" }]);
        const got = await receive(tenant.client, input, "workers", { max: 2, visibilityTimeoutSeconds: 60 });
        expect(got.map((m) => m.value)).toEqual(["1", "2"]);
        const tx = await begin(tenant.client);
        await produceInto(
          tenant.client,
          output,
          tx.transactionId,
          got.map((m) => ({ value: String(Number(m.value) * 10) })),
        );

        const receipts = got.map((m) => m.receipt as string);
        const forged = await commit(tenant.client, tx.transactionId, {
          acks: [{ topic: input, group: "workers", receipts: [...receipts, `${receipts[0].slice(0, -4)}AAAA`] }],
        });
        const problem = assertProblem(forged, 409, "receipt_unknown");
        expect(problem.failed).toHaveLength(1);
        const wrongGroup = await commit(tenant.client, tx.transactionId, { acks: [{ topic: input, group: "nobody", receipts }] });
        assertProblem(wrongGroup, 409, "receipt_unknown");
        // Nothing took effect: the transaction is open, nothing visible, the group still has them in flight.
        expect(await state(tenant.client, tx.transactionId)).toMatchObject({ state: "open" });
        expect(await values(tenant.client, output)).toEqual([]);
        const view = await tenant.client.get(groupPath(input, "workers"));
        expect(view.body.partitions[0]).toMatchObject({ committedOffset: 0, inFlight: 2 });

        const res = await commit(tenant.client, tx.transactionId, { acks: [{ topic: input, group: "workers", receipts }] });
        assertStatus(res, 200);
        expect(res.body.offsets).toEqual([
          { topic: output, partition: 0, offset: 0 },
          { topic: output, partition: 0, offset: 1 },
        ]);
        expect(await values(tenant.client, output)).toEqual(["10", "20"]);
        const after = await tenant.client.get(groupPath(input, "workers"));
        expect(after.body.partitions[0]).toMatchObject({ committedOffset: 2, inFlight: 0, lag: 0 });
        // Acked for good: nothing is delivered again.
        expect(await receive(tenant.client, input, "workers")).toEqual([]);
      });

      it("an expired receipt refuses the commit with receipt_expired; the current one commits", async () => {
        const input = await createTopic(tenant.client);
        const output = await createTopic(tenant.client);
        assertStatus(await tenant.client.put(groupPath(input, "g"), { startAt: "earliest" }), 201);
        await produce(tenant.client, input, [{ value: "x" }]);
        const [first] = await receive(tenant.client, input, "g", { visibilityTimeoutSeconds: 1 });
        const tx = await begin(tenant.client);
        await produceInto(tenant.client, output, tx.transactionId, [{ value: "X" }]);
        const [again] = await poll(
          () => receive(tenant.client, input, "g", { visibilityTimeoutSeconds: 60 }),
          (ms) => ms.length === 1,
          "the lease ends and the message is delivered again",
        );
        expect(again.attempt).toBe(2);
        const stale = await commit(tenant.client, tx.transactionId, { acks: [{ topic: input, group: "g", receipts: [first.receipt] }] });
        assertProblem(stale, 409, "receipt_expired");
        expect(await values(tenant.client, output)).toEqual([]);
        const res = await commit(tenant.client, tx.transactionId, { acks: [{ topic: input, group: "g", receipts: [again.receipt] }] });
        assertStatus(res, 200);
        expect(await values(tenant.client, output)).toEqual(["X"]);
      });

      it("a lease receipt in acks settles its whole run with the commit", async () => {
        const input = await createTopic(tenant.client);
        const output = await createTopic(tenant.client);
        assertStatus(await tenant.client.put(groupPath(input, "g"), { startAt: "earliest" }), 201);
        await produce(tenant.client, input, [{ value: "a" }, { value: "b" }, { value: "c" }]);
        const got = await tenant.client.post(`${groupPath(input, "g")}/receive`, { max: 3, visibilityTimeoutSeconds: 60 });
        assertStatus(got, 200);
        expect(got.body.leases).toEqual([{ partition: 0, firstOffset: 0, lastOffset: 2, receipt: expect.any(String), attempt: 1 }]);
        const tx = await begin(tenant.client);
        await produceInto(tenant.client, output, tx.transactionId, [{ value: "abc" }]);
        const res = await commit(tenant.client, tx.transactionId, {
          acks: [{ topic: input, group: "g", receipts: [got.body.leases[0].receipt] }],
        });
        assertStatus(res, 200);
        const after = await tenant.client.get(groupPath(input, "g"));
        expect(after.body.partitions[0]).toMatchObject({ committedOffset: 3, inFlight: 0, lag: 0 });
        expect(await values(tenant.client, output)).toEqual(["abc"]);
      });

      it("more than 1,000 receipts in one commit: 413 too_many_receipts", async () => {
        const tx = await begin(tenant.client);
        const receipts = Array.from({ length: 1001 }, (_, i) => `r${i}`);
        assertProblem(
          await commit(tenant.client, tx.transactionId, { acks: [{ topic: "t", group: "g", receipts }] }),
          413,
          "too_many_receipts",
        );
        expect(await state(tenant.client, tx.transactionId)).toMatchObject({ state: "open" });
      });
    });

    describe("check-back", () => {
      it("checks at the timeout, signed with checkSecret, and commits when told to", async () => {
        const t = await createTopic(tenant.client);
        const path = `/check-${uniq("commit")}`;
        sink.on(path, { status: 200, headers: { "content-type": "application/json" }, body: '{"action":"commit"}' });
        const tx = await begin(tenant.client, { timeoutSeconds: 1, checkUrl: sink.url(path), checkIntervalSeconds: 1 });
        await produceInto(tenant.client, t, tx.transactionId, [{ value: "checked-in" }]);
        const final = await poll(
          () => state(tenant.client, tx.transactionId),
          (s) => s.state !== "open",
          "the check commits it",
        );
        expect(final).toMatchObject({ state: "committed", checks: 1 });
        const [req] = sink.requests(path);
        expect(req.method).toBe("POST");
        expect(req.json).toEqual({ transactionId: tx.transactionId });
        expectSigned(req, tx.checkSecret!);
        expect(Number(req.headers["webhook-timestamp"]) * 1000).toBeGreaterThanOrEqual(Math.floor(tx.expiresAt / 1000) * 1000 - 1000);
        expect(await values(tenant.client, t)).toEqual(["checked-in"]);
      });

      it("rolls back when told to; the messages are never visible", async () => {
        const t = await createTopic(tenant.client);
        const path = `/check-${uniq("rollback")}`;
        sink.on(path, { status: 200, headers: { "content-type": "application/json" }, body: '{"action":"rollback"}' });
        const tx = await begin(tenant.client, { timeoutSeconds: 1, checkUrl: sink.url(path), checkIntervalSeconds: 1 });
        await produceInto(tenant.client, t, tx.transactionId, [{ value: "never" }]);
        const final = await poll(
          () => state(tenant.client, tx.transactionId),
          (s) => s.state !== "open",
          "the check rolls it back",
        );
        expect(final).toMatchObject({ state: "rolled_back", checks: 1 });
        expectSigned(sink.requests(path)[0], tx.checkSecret!);
        assertProblem(await commit(tenant.client, tx.transactionId), 409, "transaction_not_open");
        expect(await values(tenant.client, t)).toEqual([]);
      });

      it("counts unknowns (an unknown answer, an error status, a body that is no answer) and rolls back after five", async () => {
        const t = await createTopic(tenant.client);
        const path = `/check-${uniq("unknown")}`;
        const json = { "content-type": "application/json" };
        sink.on(path, [
          { status: 200, headers: json, body: '{"action":"unknown"}' },
          { status: 500, body: "oops" },
          { status: 200, body: "not json" },
          { status: 200, headers: json, body: '{"action":"maybe"}' },
          { status: 200, headers: json, body: '{"action":"unknown"}' },
          { status: 200, headers: json, body: '{"action":"commit"}' },
        ]);
        const tx = await begin(tenant.client, { timeoutSeconds: 1, checkUrl: sink.url(path), checkIntervalSeconds: 1 });
        await produceInto(tenant.client, t, tx.transactionId, [{ value: "undecided" }]);
        const open = await poll(
          () => state(tenant.client, tx.transactionId),
          (s) => s.checks >= 2,
          "two checks",
        );
        expect(open.state).toBe("open");
        const final = await poll(
          () => state(tenant.client, tx.transactionId),
          (s) => s.state !== "open",
          "five unknowns roll it back",
        );
        expect(final).toMatchObject({ state: "rolled_back", checks: 5 });
        const reqs = sink.requests(path);
        expect(reqs, describeRequests(reqs)).toHaveLength(5);
        for (const r of reqs) expectSigned(r, tx.checkSecret!);
        expect(new Set(reqs.map((r) => r.headers["webhook-id"])).size).toBe(5);
        for (let i = 1; i < reqs.length; i++) {
          expect(reqs[i].arrivedAt - reqs[i - 1].respondedAt!, describeRequests(reqs)).toBeGreaterThanOrEqual(1_000 - SLACK_MS);
        }
        expect(await values(tenant.client, t)).toEqual([]);
      });

      it("the producer may still commit a checked transaction after its timeout, until a check ends it", async () => {
        const t = await createTopic(tenant.client);
        const path = `/check-${uniq("late")}`;
        sink.on(path, { status: 200, headers: { "content-type": "application/json" }, body: '{"action":"unknown"}' });
        const tx = await begin(tenant.client, { timeoutSeconds: 1, checkUrl: sink.url(path), checkIntervalSeconds: 3600 });
        await produceInto(tenant.client, t, tx.transactionId, [{ value: "late-commit" }]);
        await sink.waitForCount(path, 1, WAIT_MS);
        await poll(
          () => state(tenant.client, tx.transactionId),
          (s) => s.checks === 1,
          "the first check is recorded",
        );
        assertProblem(await produceTx(tenant.client, t, tx.transactionId, [{ value: "x" }]), 409, "transaction_not_open");
        assertStatus(await commit(tenant.client, tx.transactionId), 200);
        expect(await values(tenant.client, t)).toEqual(["late-commit"]);
      });
    });

    describe("limits", () => {
      it("at most 10,000 messages per transaction: 413 transaction_too_large, and nothing of that request is added", async () => {
        const t = await createTopic(tenant.client);
        const tx = await begin(tenant.client);
        const batch = (n: number, k: number) => Array.from({ length: n }, (_, i) => ({ value: `${k}.${i}` }));
        for (let k = 0; k < 10; k++) await produceInto(tenant.client, t, tx.transactionId, batch(1000, k));
        const over = await produceTx(tenant.client, t, tx.transactionId, batch(1, 10));
        const problem = assertProblem(over, 413, "transaction_too_large");
        expect(problem.limit).toBe(10_000);
        const res = await commit(tenant.client, tx.transactionId);
        assertStatus(res, 200);
        expect(res.body.offsets).toHaveLength(10_000);
        expect(await highWatermarks(tenant.client, t)).toEqual([10_000]);
      }, 120_000);

      it("at most 64 MiB of records per transaction: 413 transaction_too_large", async () => {
        const t = await createTopic(tenant.client);
        const tx = await begin(tenant.client);
        const value = "v".repeat(1000 * 1024);
        const seven = Array.from({ length: 7 }, () => ({ value })); // ≈ 7 MiB per request
        for (let k = 0; k < 9; k++) await produceInto(tenant.client, t, tx.transactionId, seven);
        const over = await produceTx(tenant.client, t, tx.transactionId, seven);
        const problem = assertProblem(over, 413, "transaction_too_large");
        expect(problem.limit).toBe(64 * 1024 * 1024);
        assertStatus(await rollback(tenant.client, tx.transactionId), 200);
        expect(await highWatermarks(tenant.client, t)).toEqual([0]);
      }, 180_000);

      it("at most 1,000 open transactions per tenant: 429 too_many_transactions until one ends", async () => {
        const own = await newTenant("tx-many");
        const ids: string[] = [];
        for (let round = 0; round < 40; round++) {
          const begun = await Promise.all(Array.from({ length: 25 }, () => begin(own.client, { timeoutSeconds: 3600 })));
          ids.push(...begun.map((b) => b.transactionId));
        }
        expect(ids).toHaveLength(1000);
        assertProblem(await own.client.post("/v1/transactions", {}), 429, "too_many_transactions");
        // Another tenant is not affected.
        assertStatus(await rollback(tenant.client, (await begin(tenant.client)).transactionId), 200);
        assertStatus(await rollback(own.client, ids[0]), 200);
        await begin(own.client);
        assertProblem(await own.client.post("/v1/transactions", {}), 429, "too_many_transactions");
      }, 180_000);
    });
  });
}
