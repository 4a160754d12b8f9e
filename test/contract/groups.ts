import { describe, expect, it } from "vitest";
import { api, assertProblem, assertStatus, describeResponse, type Api, type ApiResponse } from "../support/http.ts";
import { BATCHES_TYPE, fetchBatches } from "../support/batches.ts";
import { fetchRaw, RAW_MESSAGES_TYPE } from "../support/raw-messages.ts";
import { highWatermarks, produce, readAll, topicPath } from "../support/topics.ts";
import type { ContractTarget } from "./contract.ts";
import { contractScaffold, type Tenant } from "./scaffold.ts";

/**
 * One target shared by several suites of a test file: `start` starts it on first use and hands
 * the same target to every later caller; the target's `stop()` is a no-op, and `stop` of the
 * share (to be called from a file-level afterAll) stops it for real.
 */
export function shareTarget(startTarget: () => Promise<ContractTarget>): {
  start: () => Promise<ContractTarget>;
  stop: () => Promise<void>;
} {
  let started: Promise<ContractTarget> | undefined;
  return {
    start() {
      started ??= startTarget();
      return started.then((t) => ({ ...t, stop: async () => {} }));
    },
    async stop() {
      if (!started) return;
      const t = await started.catch(() => undefined);
      started = undefined;
      await t?.stop();
    },
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Msg = Record<string, any>;

interface Received {
  topic: string;
  partition: number;
  offset: number;
  timestamp: number;
  key?: string;
  headers?: Record<string, string>;
  value?: string;
  valueBase64?: string;
  receipt: string;
  attempt: number;
}

interface PartitionView {
  partition: number;
  committedOffset: number;
  highWatermark: number;
  lag: number;
  inFlight: number;
}

interface GroupView {
  partitions: PartitionView[];
  deadLettered: number;
}

interface SettleResult {
  failed: { receipt: string; code: string }[];
  [count: string]: any;
}

/** `partition:offset`, the identity of a message within a topic. */
const id = (m: { partition: number; offset: number }) => `${m.partition}:${m.offset}`;

export function groupsSuite(name: string, startTarget: () => Promise<ContractTarget>): void {
  describe(`consumer groups (API.md) on ${name}`, () => {
    let target: ContractTarget | undefined;
    let tenant: Tenant;
    const { uniq, newTenant } = contractScaffold(name, startTarget, "groups-main", (s) => {
      ({ target, tenant } = s);
    });

    // ---------------------------------------------------------------- helpers

    const groupPath = (topic: string, group: string) => `${topicPath(topic)}/groups/${encodeURIComponent(group)}`;

    async function createTopic(client: Api, settings: { partitions?: number; retentionHours?: number } = {}, topic = uniq("t")) {
      assertStatus(await client.put(topicPath(topic), settings), 201);
      return topic;
    }

    async function putGroup(client: Api, topic: string, group: string, settings: Record<string, unknown> = {}, status = 201) {
      const res = await client.put(groupPath(topic, group), settings);
      assertStatus(res, status);
      return res.body as Record<string, unknown>;
    }

    /** A fresh topic and a group on it reading from the earliest offset. */
    async function topicWithGroup(client: Api, topicSettings: { partitions?: number } = {}, groupSettings: Record<string, unknown> = {}) {
      const topic = await createTopic(client, topicSettings);
      const group = uniq("g");
      await putGroup(client, topic, group, { startAt: "earliest", ...groupSettings });
      return { topic, group };
    }

    function expectReceivedShape(m: Received, topic: string, where: string): void {
      expect(m.topic, where).toBe(topic);
      expect(Number.isInteger(m.partition), `${where}: partition`).toBe(true);
      expect(Number.isInteger(m.offset), `${where}: offset`).toBe(true);
      expect(Number.isInteger(m.timestamp), `${where}: timestamp`).toBe(true);
      expect(typeof m.receipt, `${where}: receipt`).toBe("string");
      expect(m.receipt.length, `${where}: receipt`).toBeGreaterThan(0);
      expect(Number.isInteger(m.attempt) && m.attempt >= 1, `${where}: attempt ${m.attempt}`).toBe(true);
    }

    async function receiveRes(client: Api, topic: string, group: string, body: Record<string, unknown> = {}): Promise<ApiResponse> {
      return client.post(`${groupPath(topic, group)}/receive`, body);
    }

    async function receive(client: Api, topic: string, group: string, body: Record<string, unknown> = {}): Promise<Received[]> {
      const res = await receiveRes(client, topic, group, body);
      assertStatus(res, 200);
      const messages = res.body?.messages as Received[];
      expect(Array.isArray(messages), describeResponse(res)).toBe(true);
      for (const m of messages) expectReceivedShape(m, topic, describeResponse(res));
      expect(new Set(messages.map(id)).size, `one receive holds each message once: ${describeResponse(res)}`).toBe(messages.length);
      return messages;
    }

    /**
     * Receives until `want` messages have come (or `boundMs` passed: a safety bound, not an
     * assertion), then returns them all. Each call long-polls briefly.
     */
    async function receiveUntil(
      client: Api,
      topic: string,
      group: string,
      want: number,
      body: Record<string, unknown> = {},
      boundMs = 15_000,
    ): Promise<Received[]> {
      const out: Received[] = [];
      const until = Date.now() + boundMs;
      while (out.length < want && Date.now() < until) {
        out.push(...(await receive(client, topic, group, { max: 100, waitMs: 500, ...body })));
      }
      return out;
    }

    async function settle(
      client: Api,
      topic: string,
      group: string,
      action: "ack" | "nack" | "extend",
      body: Record<string, unknown>,
    ): Promise<SettleResult> {
      const res = await client.post(`${groupPath(topic, group)}/${action}`, body);
      assertStatus(res, 200);
      const count = { ack: "acked", nack: "nacked", extend: "extended" }[action];
      expect(Number.isInteger(res.body?.[count]), `${action}: ${describeResponse(res)}`).toBe(true);
      expect(Array.isArray(res.body?.failed), `${action}: ${describeResponse(res)}`).toBe(true);
      return res.body as SettleResult;
    }

    /** Acks and asserts every receipt was acked. */
    async function ackAll(client: Api, topic: string, group: string, messages: { receipt: string }[]): Promise<void> {
      if (messages.length === 0) return;
      const r = await settle(client, topic, group, "ack", { receipts: messages.map((m) => m.receipt) });
      expect(r, "every receipt acked").toEqual({ acked: messages.length, failed: [] });
    }

    async function view(client: Api, topic: string, group: string): Promise<GroupView> {
      const res = await client.get(groupPath(topic, group));
      assertStatus(res, 200);
      expect(Array.isArray(res.body?.partitions), describeResponse(res)).toBe(true);
      expect(Number.isInteger(res.body?.deadLettered), describeResponse(res)).toBe(true);
      for (const p of res.body.partitions as PartitionView[]) {
        for (const k of ["partition", "committedOffset", "highWatermark", "lag", "inFlight"] as const) {
          expect(Number.isInteger(p[k]), `${k} in ${describeResponse(res)}`).toBe(true);
        }
      }
      return res.body as GroupView;
    }

    const sum = (v: GroupView, k: "lag" | "inFlight") => v.partitions.reduce((n, p) => n + p[k], 0);

    /** Polls the group view until no message is in flight: every lease has ended (a bound, not an assertion of speed). */
    async function untilNothingInFlight(client: Api, topic: string, group: string, boundMs = 15_000): Promise<void> {
      const until = Date.now() + boundMs;
      for (;;) {
        const v = await view(client, topic, group);
        if (sum(v, "inFlight") === 0) return;
        if (Date.now() > until) throw new Error(`messages still in flight after ${boundMs} ms: ${JSON.stringify(v)}`);
        await sleep(50);
      }
    }

    /** Lag and in-flight are 0 in every partition, and the committed offsets are the high watermarks. */
    async function expectDrained(client: Api, topic: string, group: string): Promise<void> {
      const v = await view(client, topic, group);
      const hws = await highWatermarks(client, topic);
      expect(v.partitions.map((p) => p.partition)).toEqual(hws.map((_, i) => i));
      for (const p of v.partitions) {
        expect(p, `partition ${p.partition} of ${JSON.stringify(v)}`).toMatchObject({
          committedOffset: hws[p.partition],
          highWatermark: hws[p.partition],
          lag: 0,
          inFlight: 0,
        });
      }
    }

    const byOffset = (a: { partition: number; offset: number }, b: { partition: number; offset: number }) =>
      a.partition - b.partition || a.offset - b.offset;

    // ---------------------------------------------------------------- OpenAPI

    describe("OpenAPI", () => {
      it("documents every consumer-group operation", async () => {
        const doc = (await api(target!.baseUrl, null).get("/openapi.json")).body;
        const shapes = new Map<string, any>();
        for (const [template, item] of Object.entries<any>(doc.paths)) shapes.set(template.replace(/\{[^}]*\}/g, "{}"), item);
        const g = "/v1/topics/{}/groups/{}";
        const wanted: [string, string][] = [
          ["put", g],
          ["get", g],
          ["post", `${g}/receive`],
          ["post", `${g}/ack`],
          ["post", `${g}/nack`],
          ["post", `${g}/extend`],
          ["post", `${g}/seek`],
          ["post", `${g}/redrive`],
        ];
        expect(wanted.filter(([m, s]) => !shapes.get(s)?.[m]).map(([m, s]) => `${m.toUpperCase()} ${s}`)).toEqual([]);
      });
    });

    // ---------------------------------------------------------------- group settings

    describe("PUT/GET a group: settings, defaults, implicit creation", () => {
      it("PUT creates a group (201) with the defaults: startAt latest, ordering none, maxAttempts 5, deadLetterTopic <topic>.dlq", async () => {
        const topic = await createTopic(tenant.client, { partitions: 2 });
        const group = uniq("g");
        const created = await putGroup(tenant.client, topic, group, {}, 201);
        expect(created).toEqual({
          name: group,
          topic,
          startAt: "latest",
          ordering: "none",
          maxAttempts: 5,
          deadLetterTopic: `${topic}.dlq`,
        });
        // A PUT without a body is the same as {}: the group exists now.
        const again = await tenant.client.request("PUT", groupPath(topic, group));
        assertStatus(again, 200);
        expect(again.body).toEqual(created);
      });

      it("PUT of an existing group answers 200 and updates its settings; omitted settings are kept", async () => {
        const topic = await createTopic(tenant.client);
        const group = uniq("g");
        await putGroup(tenant.client, topic, group, { startAt: "earliest" }, 201);
        const updated = await putGroup(tenant.client, topic, group, { ordering: "key", maxAttempts: 3, deadLetterTopic: "elsewhere" }, 200);
        expect(updated).toEqual({ name: group, topic, startAt: "earliest", ordering: "key", maxAttempts: 3, deadLetterTopic: "elsewhere" });
        const same = await putGroup(tenant.client, topic, group, {}, 200);
        expect(same).toEqual(updated);
        const back = await putGroup(tenant.client, topic, group, { ordering: "none", maxAttempts: 100 }, 200);
        expect(back).toEqual({ ...updated, ordering: "none", maxAttempts: 100 });
      });

      it("startAt latest skips the messages already in the topic; startAt earliest delivers them", async () => {
        const topic = await createTopic(tenant.client);
        await produce(tenant.client, topic, [{ value: "old-0" }, { value: "old-1" }]);
        const latest = uniq("latest");
        const earliest = uniq("earliest");
        await putGroup(tenant.client, topic, latest, { startAt: "latest" });
        await putGroup(tenant.client, topic, earliest, { startAt: "earliest" });
        expect((await view(tenant.client, topic, latest)).partitions).toEqual([
          { partition: 0, committedOffset: 2, highWatermark: 2, lag: 0, inFlight: 0 },
        ]);
        expect((await view(tenant.client, topic, earliest)).partitions).toEqual([
          { partition: 0, committedOffset: 0, highWatermark: 2, lag: 2, inFlight: 0 },
        ]);
        await produce(tenant.client, topic, [{ value: "new-2" }]);
        const fromLatest = await receive(tenant.client, topic, latest, { max: 100 });
        expect(fromLatest.map((m) => [m.offset, m.value, m.attempt])).toEqual([[2, "new-2", 1]]);
        const fromEarliest = await receive(tenant.client, topic, earliest, { max: 100 });
        expect(fromEarliest.map((m) => [m.offset, m.value, m.attempt])).toEqual([
          [0, "old-0", 1],
          [1, "old-1", 1],
          [2, "new-2", 1],
        ]);
      });

      it("a group used before it is created is created with the defaults (by receive and by GET), positioned at the latest offset", async () => {
        const topic = await createTopic(tenant.client, { partitions: 2 });
        await produce(tenant.client, topic, [{ value: "before", partition: 1 }]);

        // First use by receive: nothing of what was there before (startAt latest).
        const byReceive = uniq("implicit-r");
        expect(await receive(tenant.client, topic, byReceive, { max: 10 })).toEqual([]);
        expect(await putGroup(tenant.client, topic, byReceive, {}, 200)).toEqual({
          name: byReceive,
          topic,
          startAt: "latest",
          ordering: "none",
          maxAttempts: 5,
          deadLetterTopic: `${topic}.dlq`,
        });
        await produce(tenant.client, topic, [{ value: "after", partition: 1 }]);
        const got = await receive(tenant.client, topic, byReceive, { max: 10 });
        expect(got.map((m) => [m.partition, m.offset, m.value])).toEqual([[1, 1, "after"]]);

        // First use by GET: the view of a new group at the high watermarks.
        const byGet = uniq("implicit-g");
        const v = await view(tenant.client, topic, byGet);
        expect(v).toEqual({
          partitions: [
            { partition: 0, committedOffset: 0, highWatermark: 0, lag: 0, inFlight: 0 },
            { partition: 1, committedOffset: 2, highWatermark: 2, lag: 0, inFlight: 0 },
          ],
          deadLettered: 0,
        });
        expect(await putGroup(tenant.client, topic, byGet, {}, 200)).toMatchObject({ startAt: "latest", ordering: "none", maxAttempts: 5 });
      });

      it("a PUT racing with first uses (receive, GET) of the same new group keeps the PUT's settings", async () => {
        const topic = await createTopic(tenant.client);
        const settings = { startAt: "latest", ordering: "key", maxAttempts: 3, deadLetterTopic: "race-dlq" };
        const lost: string[] = [];
        for (let i = 0; i < 8; i++) {
          const group = uniq("race");
          const g = groupPath(topic, group);
          const [put] = await Promise.all([
            tenant.client.put(g, settings),
            tenant.client.post(`${g}/receive`, {}),
            tenant.client.get(g),
            tenant.client.post(`${g}/receive`, {}),
          ]);
          assertStatus(put, 200, 201);
          const after = await putGroup(tenant.client, topic, group, {}, 200);
          if (JSON.stringify(after) !== JSON.stringify({ name: group, topic, ...settings }))
            lost.push(`${group}: PUT answered ${put.status} ${put.text}, now ${JSON.stringify(after)}`);
        }
        expect(lost, "groups whose explicit settings were overwritten by an implicit creation with the defaults").toEqual([]);
      });

      it("refuses invalid settings (400) and creates nothing; unknown topic 404 topic_not_found; bad group name 400", async () => {
        const topic = await createTopic(tenant.client);
        const group = uniq("g");
        const bad: Record<string, unknown>[] = [
          { startAt: "middle" },
          { ordering: "fifo" },
          { maxAttempts: 0 },
          { maxAttempts: 101 },
          { maxAttempts: 2.5 },
          { maxAttempts: "3" },
          { deadLetterTopic: "no spaces" },
          { deadLetterTopic: "" },
          { deadLetterTopic: "x".repeat(201) },
          { unknownSetting: true },
        ];
        for (const body of bad) {
          const res = await tenant.client.put(groupPath(topic, group), body);
          expect(res.status, `${JSON.stringify(body)}: ${describeResponse(res)}`).toBe(400);
          assertProblem(res, 400);
        }
        assertProblem(
          await tenant.client.put(groupPath(topic, group), undefined, { raw: "{", contentType: "application/json" }),
          400,
          "malformed_json",
        );
        // None of those created the group: the first valid PUT answers 201.
        await putGroup(tenant.client, topic, group, { maxAttempts: 1 }, 201);
        assertProblem(await tenant.client.put(groupPath(uniq("ghost"), group), {}), 404, "topic_not_found");
        assertProblem(await tenant.client.get(groupPath(uniq("ghost"), group)), 404, "topic_not_found");
        assertProblem(await tenant.client.post(`${groupPath(uniq("ghost"), group)}/receive`, {}), 404, "topic_not_found");
        for (const badName of ["has space", "x".repeat(201), "é"]) {
          const res = await tenant.client.put(groupPath(topic, badName), {});
          expect(res.status, `group name ${JSON.stringify(badName)}: ${describeResponse(res)}`).toBe(400);
          assertProblem(res, 400);
        }
        // A 200-character name is fine.
        await putGroup(tenant.client, topic, "g".repeat(200), {}, 201);
      });
    });

    // ---------------------------------------------------------------- receive

    describe("receive", () => {
      it("returns messages as read (key, headers, value or valueBase64) with a receipt and attempt 1; default max 10", async () => {
        const { topic, group } = await topicWithGroup(tenant.client);
        const bytes = Uint8Array.from({ length: 256 }, (_, i) => i);
        const sent: Msg[] = Array.from({ length: 15 }, (_, i) =>
          i === 3
            ? { valueBase64: Buffer.from(bytes).toString("base64"), key: "bin" }
            : { value: `v-${i}`, key: `k-${i % 4}`, headers: { n: String(i), "content-type": "text/plain" } },
        );
        await produce(tenant.client, topic, sent);
        const first = await receive(tenant.client, topic, group);
        expect(
          first.map((m) => m.offset),
          "default max is 10",
        ).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
        const second = await receive(tenant.client, topic, group, { max: 100 });
        expect(second.map((m) => m.offset)).toEqual([10, 11, 12, 13, 14]);
        expect(await receive(tenant.client, topic, group, { max: 100 }), "nothing left to receive").toEqual([]);

        const all = [...first, ...second];
        const asRead = await readAll(tenant.client, topic, 0);
        all.forEach((m, i) => {
          expect(m.attempt).toBe(1);
          expect(m.partition).toBe(0);
          const { receipt, attempt, ...message } = m;
          expect(message, `message ${i} is the message as read by offset`).toEqual(asRead[i]);
        });
        expect(all[3].valueBase64).toBe(Buffer.from(bytes).toString("base64"));
        expect(all[3].value).toBeUndefined();
        expect(all[5]).toMatchObject({ key: "k-1", value: "v-5", headers: { n: "5", "content-type": "text/plain" } });
        expect(new Set(all.map((m) => m.receipt)).size, "receipts are distinct").toBe(15);
        await ackAll(tenant.client, topic, group, all);
        await expectDrained(tenant.client, topic, group);
      });

      it("returns an empty list from an empty topic; receive without a body uses the defaults", async () => {
        const { topic, group } = await topicWithGroup(tenant.client, { partitions: 3 });
        expect(await receive(tenant.client, topic, group)).toEqual([]);
        const res = await tenant.client.request("POST", `${groupPath(topic, group)}/receive`);
        assertStatus(res, 200);
        expect(res.body).toEqual({ messages: [] });
      });

      it("a long-polling receive (waitMs) returns the message produced while it waits", async () => {
        const { topic, group } = await topicWithGroup(tenant.client);
        const polling = receive(tenant.client, topic, group, { waitMs: 10_000, max: 10 });
        // Not a synchronisation: the result is the same if the produce lands first. The pause only
        // makes it likely that the receive is already waiting (which nothing outside can observe).
        await sleep(300);
        await produce(tenant.client, topic, [{ value: "wake-up" }]);
        const got = await polling;
        expect(got.map((m) => [m.offset, m.value, m.attempt])).toEqual([[0, "wake-up", 1]]);
      });

      it("receives across all partitions of a topic", async () => {
        const { topic, group } = await topicWithGroup(tenant.client, { partitions: 4 });
        await produce(
          tenant.client,
          topic,
          Array.from({ length: 12 }, (_, i) => ({ value: `m-${i}`, partition: i % 4 })),
        );
        const got = await receiveUntil(tenant.client, topic, group, 12);
        expect(got.map(id).sort()).toEqual(Array.from({ length: 12 }, (_, i) => `${i % 4}:${Math.floor(i / 4)}`).sort());
        for (const m of got) expect(m.value).toBe(`m-${m.offset * 4 + m.partition}`);
        await ackAll(tenant.client, topic, group, got);
        await expectDrained(tenant.client, topic, group);
      });
      // A receive returns min(max, deliverable) while no other receiver holds the rest, however
      // many partitions hold them and whatever is delayed ahead of them (issue 10).
      for (const ordering of ["none", "key"] as const) {
        it(`ordering ${ordering}: 64 partitions with one message each: receive max 64 returns all 64`, async () => {
          const { topic, group } = await topicWithGroup(tenant.client, { partitions: 64 }, { ordering });
          await produce(
            tenant.client,
            topic,
            Array.from({ length: 64 }, (_, p) => ({ key: `k-${p}`, value: `m-${p}`, partition: p })),
          );
          const got = await receive(tenant.client, topic, group, { max: 64, visibilityTimeoutSeconds: 30 });
          expect(got.map(id).sort()).toEqual(Array.from({ length: 64 }, (_, p) => `${p}:0`).sort());
          for (const m of got) expect(m.value).toBe(`m-${m.partition}`);
          await ackAll(tenant.client, topic, group, got);
          await expectDrained(tenant.client, topic, group);
        });

        it(`ordering ${ordering}: delayed messages at the head of most partitions do not make a receive under-full`, async () => {
          const partitions = 16;
          const { topic, group } = await topicWithGroup(tenant.client, { partitions }, { ordering });
          // Partition 0 has no delayed head; each other one starts with a message due in 10 minutes.
          await produce(
            tenant.client,
            topic,
            Array.from({ length: partitions }, (_, p) => [
              ...(p === 0 ? [] : [{ key: `d-${p}`, value: `delayed-${p}`, partition: p, delaySeconds: 600 }]),
              { key: `a-${p}`, value: `a-${p}`, partition: p },
              { key: `b-${p}`, value: `b-${p}`, partition: p },
            ]).flat(),
          );
          const first = await receive(tenant.client, topic, group, { max: 20, visibilityTimeoutSeconds: 30 });
          expect(first.length, "max 20 of the 32 due messages").toBe(20);
          const rest = await receive(tenant.client, topic, group, { max: 100, visibilityTimeoutSeconds: 30 });
          expect(rest.length, "the other 12 due messages").toBe(12);
          const all = [...first, ...rest];
          expect(all.map((m) => m.value).sort()).toEqual(
            Array.from({ length: partitions }, (_, p) => [`a-${p}`, `b-${p}`])
              .flat()
              .sort(),
          );
          expect(await receive(tenant.client, topic, group, { max: 100 }), "only the delayed messages are left").toEqual([]);
          await ackAll(tenant.client, topic, group, all);
          const v = await view(tenant.client, topic, group);
          expect(
            v.partitions.map((p) => [p.committedOffset, p.inFlight]),
            "each cursor waits at its delayed head; partition 0 has none",
          ).toEqual(Array.from({ length: partitions }, (_, p) => [p === 0 ? 2 : 0, 0]));
        });
      }

      it("a partition added to the topic later is delivered from its start", async () => {
        const { topic, group } = await topicWithGroup(tenant.client, { partitions: 1 });
        await produce(tenant.client, topic, [{ value: "p0", partition: 0 }]);
        const first = await receive(tenant.client, topic, group, { max: 100 });
        expect(first.map((m) => m.value)).toEqual(["p0"]);
        await ackAll(tenant.client, topic, group, first);
        assertStatus(await tenant.client.patch(topicPath(topic), { partitions: 3 }), 200);
        await produce(tenant.client, topic, [
          { value: "p1-0", partition: 1 },
          { value: "p2-0", partition: 2 },
          { value: "p1-1", partition: 1 },
        ]);
        const later = await receiveUntil(tenant.client, topic, group, 3);
        expect(later.map((m) => [m.partition, m.offset, m.value]).sort()).toEqual([
          [1, 0, "p1-0"],
          [1, 1, "p1-1"],
          [2, 0, "p2-0"],
        ]);
        await ackAll(tenant.client, topic, group, later);
        await expectDrained(tenant.client, topic, group);
      });
    });

    // ---------------------------------------------------------------- visibility, nack, extend

    describe("visibility timeout, nack and extend", () => {
      it("after the visibility timeout exactly the unacked messages are delivered again, with attempt + 1 and new receipts", async () => {
        const { topic, group } = await topicWithGroup(tenant.client);
        await produce(
          tenant.client,
          topic,
          Array.from({ length: 6 }, (_, i) => ({ value: `m-${i}` })),
        );
        // 2 s, so that the acks below surely land before the timeout.
        const first = await receive(tenant.client, topic, group, { max: 6, visibilityTimeoutSeconds: 2 });
        expect(first.map((m) => m.offset)).toEqual([0, 1, 2, 3, 4, 5]);
        const [acked, unacked] = [first.filter((m) => m.offset % 2 === 0), first.filter((m) => m.offset % 2 === 1)];
        await ackAll(tenant.client, topic, group, acked);
        expect(await receive(tenant.client, topic, group, { max: 100 }), "leased messages are invisible").toEqual([]);

        // Polls until the timeout has passed and the three come back.
        const again = await receiveUntil(tenant.client, topic, group, 3, { visibilityTimeoutSeconds: 30 });
        expect(again.map((m) => [m.offset, m.value, m.attempt])).toEqual([
          [1, "m-1", 2],
          [3, "m-3", 2],
          [5, "m-5", 2],
        ]);
        expect(await receive(tenant.client, topic, group, { max: 100 }), "nothing else is delivered again").toEqual([]);
        for (const m of again) expect(unacked.map((u) => u.receipt)).not.toContain(m.receipt);

        // The receipts of the expired grant no longer settle anything; the new ones do.
        const stale = await settle(tenant.client, topic, group, "ack", { receipts: unacked.map((m) => m.receipt) });
        expect(stale).toEqual({ acked: 0, failed: unacked.map((m) => ({ receipt: m.receipt, code: "receipt_expired" })) });
        await ackAll(tenant.client, topic, group, again);
        await expectDrained(tenant.client, topic, group);
      });

      it("a message never acked is delivered again after each timeout with attempt 1, 2, 3…", async () => {
        const { topic, group } = await topicWithGroup(tenant.client, {}, { maxAttempts: 10 });
        await produce(tenant.client, topic, [{ value: "slow" }]);
        const attempts: number[] = [];
        for (let i = 0; i < 3; i++) {
          const got = await receiveUntil(tenant.client, topic, group, 1, { visibilityTimeoutSeconds: 1 });
          expect(got.map((m) => m.offset)).toEqual([0]);
          attempts.push(got[0].attempt);
        }
        expect(attempts).toEqual([1, 2, 3]);
      });

      it("nack makes a message visible again at once (delaySeconds 0) or after delaySeconds; the rest of the batch stays leased and ackable", async () => {
        const { topic, group } = await topicWithGroup(tenant.client);
        await produce(tenant.client, topic, [{ value: "a" }, { value: "b" }, { value: "c" }]);
        const first = await receive(tenant.client, topic, group, { max: 3, visibilityTimeoutSeconds: 30 });
        expect(first.map((m) => m.offset)).toEqual([0, 1, 2]);

        expect(await settle(tenant.client, topic, group, "nack", { receipts: [first[0].receipt] })).toEqual({ nacked: 1, failed: [] });
        const redelivered = await receive(tenant.client, topic, group, { max: 100, visibilityTimeoutSeconds: 30 });
        expect(
          redelivered.map((m) => [m.offset, m.value, m.attempt]),
          "nacked without delay: visible again at once",
        ).toEqual([[0, "a", 2]]);

        expect(await settle(tenant.client, topic, group, "nack", { receipts: [redelivered[0].receipt], delaySeconds: 2 })).toEqual({
          nacked: 1,
          failed: [],
        });
        expect(await receive(tenant.client, topic, group, { max: 100 }), "nacked with delaySeconds 2: not yet visible").toEqual([]);
        const later = await receiveUntil(tenant.client, topic, group, 1, { visibilityTimeoutSeconds: 30 });
        expect(later.map((m) => [m.offset, m.attempt])).toEqual([[0, 3]]);

        // The other messages of the first batch were never given back: still leased, still ackable.
        const rest = await settle(tenant.client, topic, group, "ack", { receipts: [first[1].receipt, first[2].receipt] });
        expect(rest, "the untouched receipts of a batch in which one message was nacked").toEqual({ acked: 2, failed: [] });
        await ackAll(tenant.client, topic, group, later);
        await expectDrained(tenant.client, topic, group);
      });

      it("nack of the middle message of a batch: the others remain ackable with their receipts", async () => {
        const { topic, group } = await topicWithGroup(tenant.client);
        await produce(
          tenant.client,
          topic,
          Array.from({ length: 5 }, (_, i) => ({ value: `m-${i}` })),
        );
        const batch = await receive(tenant.client, topic, group, { max: 5, visibilityTimeoutSeconds: 30 });
        expect(await settle(tenant.client, topic, group, "nack", { receipts: [batch[2].receipt] })).toEqual({ nacked: 1, failed: [] });
        const others = [batch[0], batch[1], batch[3], batch[4]];
        const res = await settle(tenant.client, topic, group, "ack", { receipts: others.map((m) => m.receipt) });
        expect(res, "acking offsets 0, 1, 3, 4 after nacking offset 2 of the same receive").toEqual({ acked: 4, failed: [] });
        const again = await receive(tenant.client, topic, group, { max: 100 });
        expect(again.map((m) => [m.offset, m.attempt])).toEqual([[2, 2]]);
        await ackAll(tenant.client, topic, group, again);
        await expectDrained(tenant.client, topic, group);
      });

      it("extend keeps a message invisible past its original timeout; its receipt still acks; other messages expire as usual", async () => {
        const { topic, group } = await topicWithGroup(tenant.client);
        await produce(tenant.client, topic, [{ value: "kept" }, { value: "let-go" }]);
        const first = await receive(tenant.client, topic, group, { max: 2, visibilityTimeoutSeconds: 2 });
        expect(first.map((m) => m.offset)).toEqual([0, 1]);
        expect(await settle(tenant.client, topic, group, "extend", { receipts: [first[0].receipt], visibilityTimeoutSeconds: 6 })).toEqual({
          extended: 1,
          failed: [],
        });

        // Polls until the original timeout has passed and the message not extended comes back.
        const again = await receiveUntil(tenant.client, topic, group, 1, { visibilityTimeoutSeconds: 30 });
        expect(
          again.map((m) => [m.offset, m.attempt]),
          "only the message that was not extended comes back",
        ).toEqual([[1, 2]]);
        expect(await receive(tenant.client, topic, group, { max: 100 }), "the extended message is still invisible").toEqual([]);
        expect(await settle(tenant.client, topic, group, "ack", { receipts: [first[0].receipt] })).toEqual({ acked: 1, failed: [] });
        await ackAll(tenant.client, topic, group, again);
        await expectDrained(tenant.client, topic, group);
      });

      it("extend each message of a batch separately (a heartbeat per message): every extend succeeds", async () => {
        const { topic, group } = await topicWithGroup(tenant.client);
        await produce(
          tenant.client,
          topic,
          Array.from({ length: 4 }, (_, i) => ({ value: `m-${i}` })),
        );
        const batch = await receive(tenant.client, topic, group, { max: 4, visibilityTimeoutSeconds: 30 });
        expect(batch.map((m) => m.offset)).toEqual([0, 1, 2, 3]);
        const results: SettleResult[] = [];
        for (const m of batch)
          results.push(await settle(tenant.client, topic, group, "extend", { receipts: [m.receipt], visibilityTimeoutSeconds: 60 }));
        expect(results.map((r, i) => ({ offset: batch[i].offset, ...r }))).toEqual(
          batch.map((m) => ({ offset: m.offset, extended: 1, failed: [] })),
        );
        await ackAll(tenant.client, topic, group, batch);
        await expectDrained(tenant.client, topic, group);
      });

      it("extend with a shorter timeout makes the messages visible sooner", async () => {
        const { topic, group } = await topicWithGroup(tenant.client);
        await produce(tenant.client, topic, [{ value: "x" }, { value: "y" }]);
        const batch = await receive(tenant.client, topic, group, { max: 2, visibilityTimeoutSeconds: 600 });
        expect(
          await settle(tenant.client, topic, group, "extend", { receipts: batch.map((m) => m.receipt), visibilityTimeoutSeconds: 1 }),
        ).toEqual({ extended: 2, failed: [] });
        const again = await receiveUntil(tenant.client, topic, group, 2, { visibilityTimeoutSeconds: 30 });
        expect(again.map((m) => [m.offset, m.attempt])).toEqual([
          [0, 2],
          [1, 2],
        ]);
      });

      it("nack and extend of an acked message or of an expired lease answer receipt_expired in `failed`", async () => {
        const { topic, group } = await topicWithGroup(tenant.client);
        await produce(tenant.client, topic, [{ value: "acked" }, { value: "expires" }]);
        const [done, lapsing] = await receive(tenant.client, topic, group, { max: 2, visibilityTimeoutSeconds: 1 });
        // Whether or not the ack beat the 1 s timeout, the lease of `done` is over afterwards.
        await settle(tenant.client, topic, group, "ack", { receipts: [done.receipt] });
        await untilNothingInFlight(tenant.client, topic, group);
        for (const m of [done, lapsing]) {
          expect(await settle(tenant.client, topic, group, "nack", { receipts: [m.receipt] })).toEqual({
            nacked: 0,
            failed: [{ receipt: m.receipt, code: "receipt_expired" }],
          });
          expect(await settle(tenant.client, topic, group, "extend", { receipts: [m.receipt], visibilityTimeoutSeconds: 30 })).toEqual({
            extended: 0,
            failed: [{ receipt: m.receipt, code: "receipt_expired" }],
          });
        }
        expect(await settle(tenant.client, topic, group, "ack", { receipts: [lapsing.receipt] })).toEqual({
          acked: 0,
          failed: [{ receipt: lapsing.receipt, code: "receipt_expired" }],
        });
      });
    });

    // ---------------------------------------------------------------- ack results

    describe("ack, nack, extend: results per receipt", () => {
      it("lists failures per receipt (receipt_unknown, receipt_expired) and acks the rest of the batch", async () => {
        const { topic, group } = await topicWithGroup(tenant.client, {}, { maxAttempts: 10 });
        const other = uniq("other");
        await putGroup(tenant.client, topic, other, { startAt: "earliest" });
        await produce(
          tenant.client,
          topic,
          Array.from({ length: 4 }, (_, i) => ({ value: `m-${i}` })),
        );
        const mine = await receive(tenant.client, topic, group, { max: 4, visibilityTimeoutSeconds: 30 });
        const theirs = await receive(tenant.client, topic, other, { max: 1, visibilityTimeoutSeconds: 30 });
        expect(mine).toHaveLength(4);
        expect(theirs).toHaveLength(1);

        // An expired receipt: offset 3 given back by nack and received again (a new grant).
        await settle(tenant.client, topic, group, "nack", { receipts: [mine[3].receipt] });
        const regrant = await receive(tenant.client, topic, group, { max: 10, visibilityTimeoutSeconds: 30 });
        expect(regrant.map((m) => [m.offset, m.attempt])).toEqual([[3, 2]]);

        const tampered = mine[0].receipt.slice(0, -2) + (mine[0].receipt.endsWith("AA") ? "BB" : "AA");
        const receipts = [mine[0].receipt, "garbage", theirs[0].receipt, mine[1].receipt, mine[3].receipt, tampered, "", mine[2].receipt];
        const res = await settle(tenant.client, topic, group, "ack", { receipts });
        expect(res.acked).toBe(3);
        expect([...res.failed].sort((a, b) => receipts.indexOf(a.receipt) - receipts.indexOf(b.receipt))).toEqual([
          { receipt: "garbage", code: "receipt_unknown" },
          { receipt: theirs[0].receipt, code: "receipt_unknown" },
          { receipt: mine[3].receipt, code: "receipt_expired" },
          { receipt: tampered, code: "receipt_unknown" },
          { receipt: "", code: "receipt_unknown" },
        ]);
        // The other group's message is untouched by that: its receipt still works there.
        await ackAll(tenant.client, topic, other, theirs);
        await ackAll(tenant.client, topic, group, regrant);
        await expectDrained(tenant.client, topic, group);
      });

      it("acking a receipt twice counts it acked both times (in two calls and within one call)", async () => {
        const { topic, group } = await topicWithGroup(tenant.client);
        await produce(tenant.client, topic, [{ value: "a" }, { value: "b" }]);
        const [a, b] = await receive(tenant.client, topic, group, { max: 2, visibilityTimeoutSeconds: 30 });
        expect(await settle(tenant.client, topic, group, "ack", { receipts: [a.receipt] })).toEqual({ acked: 1, failed: [] });
        expect(await settle(tenant.client, topic, group, "ack", { receipts: [a.receipt] })).toEqual({ acked: 1, failed: [] });
        expect(await settle(tenant.client, topic, group, "ack", { receipts: [b.receipt, b.receipt] })).toEqual({ acked: 2, failed: [] });
        await expectDrained(tenant.client, topic, group);
      });

      it("an empty receipts list settles nothing and answers 200 with zero counts", async () => {
        const { topic, group } = await topicWithGroup(tenant.client);
        expect(await settle(tenant.client, topic, group, "ack", { receipts: [] })).toEqual({ acked: 0, failed: [] });
        expect(await settle(tenant.client, topic, group, "nack", { receipts: [] })).toEqual({ nacked: 0, failed: [] });
        expect(await settle(tenant.client, topic, group, "extend", { receipts: [], visibilityTimeoutSeconds: 5 })).toEqual({
          extended: 0,
          failed: [],
        });
      });
    });

    // ---------------------------------------------------------------- lease receipts

    describe("lease receipts (one receipt per run of offsets a receive leased)", () => {
      interface Lease {
        partition: number;
        firstOffset: number;
        lastOffset: number;
        receipt: string;
      }
      async function receiveWithLeases(client: Api, topic: string, group: string, body: Record<string, unknown>) {
        const res = await receiveRes(client, topic, group, body);
        assertStatus(res, 200);
        return { messages: res.body.messages as Received[], leases: res.body.leases as Lease[] | undefined };
      }
      /** Each message lies in exactly one lease of its partition, and each lease holds only received messages. */
      function expectLeasesCover(messages: Received[], leases: Lease[]) {
        const covered = leases.flatMap((l) =>
          Array.from({ length: l.lastOffset - l.firstOffset + 1 }, (_, i) => `${l.partition}:${l.firstOffset + i}`),
        );
        expect([...covered].sort()).toEqual(messages.map(id).sort());
        for (const l of leases) expect(typeof l.receipt === "string" && l.receipt.length > 0).toBe(true);
      }

      it("a receive lists its messages as leases; acking the lease receipts acks every message; an empty receive has none", async () => {
        const { topic, group } = await topicWithGroup(tenant.client, { partitions: 3 });
        const empty = await receiveWithLeases(tenant.client, topic, group, { max: 10 });
        expect(empty).toEqual({ messages: [], leases: undefined });
        await produce(
          tenant.client,
          topic,
          Array.from({ length: 30 }, (_, i) => ({ value: `v${i}`, partition: i % 3 })),
        );
        const { messages, leases } = await receiveWithLeases(tenant.client, topic, group, { max: 30, visibilityTimeoutSeconds: 30 });
        expect(messages).toHaveLength(30);
        expectLeasesCover(messages, leases!);
        expect(leases!.length).toBeLessThanOrEqual(3);
        const res = await settle(tenant.client, topic, group, "ack", { receipts: leases!.map((l) => l.receipt) });
        expect(res).toEqual({ acked: 30, failed: [] });
        await expectDrained(tenant.client, topic, group);
      });

      it("Accept: application/vnd.reservoir.messages answers a receive raw, with receipts and leases that settle as usual", async () => {
        const { topic, group } = await topicWithGroup(tenant.client);
        await produce(tenant.client, topic, [{ value: "one", key: "k" }, { valueBase64: "AAEC/w==" }, { value: "drei ✓" }]);
        const raw = await fetchRaw(`${target!.baseUrl}${groupPath(topic, group)}/receive`, tenant.apiKey, {
          method: "POST",
          json: { max: 10, visibilityTimeoutSeconds: 30 },
        });
        expect(raw.contentType).toBe(RAW_MESSAGES_TYPE);
        const messages = raw.body.messages as Received[];
        expect(messages.map((m) => [m.offset, m.key, m.value ?? m.valueBase64, m.attempt])).toEqual([
          [0, "k", "one", 1],
          [1, undefined, "AAEC/w==", 1],
          [2, undefined, "drei ✓", 1],
        ]);
        for (const m of messages) expectReceivedShape(m, topic, "raw receive");
        expectLeasesCover(messages, raw.body.leases);
        expect(await settle(tenant.client, topic, group, "ack", { receipts: [messages[0].receipt] })).toEqual({ acked: 1, failed: [] });
        expect(await settle(tenant.client, topic, group, "ack", { receipts: raw.body.leases.map((l: Lease) => l.receipt) })).toEqual({
          acked: 3,
          failed: [],
        });
        await expectDrained(tenant.client, topic, group);
      });

      it("Accept: application/vnd.reservoir.batches answers the stored batches: decoded, the same messages as JSON; the lease receipts settle them", async () => {
        const { topic, group } = await topicWithGroup(tenant.client, { partitions: 2 });
        const jsonGroup = uniq("g");
        await putGroup(tenant.client, topic, jsonGroup, { startAt: "earliest" });
        await produce(tenant.client, topic, [
          { value: "one", key: "k", partition: 0 },
          { valueBase64: "AAEC/w==", partition: 1, headers: { h: "1", ü: "ö" } },
          { value: "drei ✓", partition: 0 },
          { value: "", key: "", partition: 1 },
          { value: "x".repeat(3000), partition: 0 },
        ]);
        const url = `${target!.baseUrl}${groupPath(topic, group)}/receive`;
        const got = await fetchBatches(url, tenant.apiKey, { max: 10, visibilityTimeoutSeconds: 30 }, topic);
        expect(got.contentType).toBe(BATCHES_TYPE);
        const json = await receive(tenant.client, topic, jsonGroup, { max: 10, visibilityTimeoutSeconds: 30 });
        const withoutReceipt = ({ receipt: _, ...m }: Received) => m;
        expect([...got.messages].sort(byOffset as never)).toEqual(json.map(withoutReceipt).sort(byOffset));
        expect(got.messages).toHaveLength(5);
        expect(got.leases.map((l) => [l.partition, l.firstOffset, l.lastOffset, l.attempt]).sort()).toEqual([
          [0, 0, 2, 1],
          [1, 0, 1, 1],
        ]);
        expect(await settle(tenant.client, topic, group, "ack", { receipts: got.leases.map((l) => l.receipt) })).toEqual({
          acked: 5,
          failed: [],
        });
        await expectDrained(tenant.client, topic, group);
        // The usage counts what the answer returned, as for JSON: both groups received the same messages.
        await ackAll(tenant.client, topic, jsonGroup, json);
      });

      it("an answer in batches holds only the leased messages of a batch it shares, and their attempts after a nack", async () => {
        const { topic, group } = await topicWithGroup(tenant.client, {}, { maxAttempts: 10 });
        await produce(
          tenant.client,
          topic,
          Array.from({ length: 6 }, (_, i) => ({ value: `m${i}` })),
        );
        const url = `${target!.baseUrl}${groupPath(topic, group)}/receive`;
        // One stored batch holds offsets 0..5: a receive of 2, then one of 3, then the rest.
        const first = await fetchBatches(url, tenant.apiKey, { max: 2, visibilityTimeoutSeconds: 30 }, topic);
        expect(first.messages.map((m) => [m.offset, m.value, m.attempt])).toEqual([
          [0, "m0", 1],
          [1, "m1", 1],
        ]);
        const second = await fetchBatches(url, tenant.apiKey, { max: 3, visibilityTimeoutSeconds: 30 }, topic);
        expect(second.messages.map((m) => [m.offset, m.value])).toEqual([
          [2, "m2"],
          [3, "m3"],
          [4, "m4"],
        ]);
        expect(await settle(tenant.client, topic, group, "nack", { receipts: first.leases.map((l) => l.receipt) })).toEqual({
          nacked: 2,
          failed: [],
        });
        const third = await fetchBatches(url, tenant.apiKey, { max: 10, visibilityTimeoutSeconds: 30 }, topic);
        expect(third.messages.map((m) => [m.offset, m.value, m.attempt]).sort()).toEqual([
          [0, "m0", 2],
          [1, "m1", 2],
          [5, "m5", 1],
        ]);
        for (const answer of [second, third]) {
          const receipts = answer.leases.map((l) => l.receipt);
          expect((await settle(tenant.client, topic, group, "ack", { receipts })).failed).toEqual([]);
        }
        await expectDrained(tenant.client, topic, group);
        const empty = await fetchBatches(url, tenant.apiKey, { max: 10 }, topic);
        expect(empty).toMatchObject({ leases: [], messages: [] });
      });

      it("a part of a lease receipt ({receipt, firstOffset, lastOffset}) settles just those messages; a part outside the run is unknown", async () => {
        const { topic, group } = await topicWithGroup(tenant.client, {}, { maxAttempts: 10 });
        await produce(
          tenant.client,
          topic,
          Array.from({ length: 5 }, (_, i) => ({ value: `p${i}` })),
        );
        const got = await fetchBatches(
          `${target!.baseUrl}${groupPath(topic, group)}/receive`,
          tenant.apiKey,
          { max: 5, visibilityTimeoutSeconds: 30 },
          topic,
        );
        const [lease] = got.leases;
        expect(lease).toMatchObject({ firstOffset: 0, lastOffset: 4, attempt: 1 });
        const receipt = lease.receipt;
        expect(await settle(tenant.client, topic, group, "ack", { receipts: [{ receipt, firstOffset: 1, lastOffset: 2 }] })).toEqual({
          acked: 2,
          failed: [],
        });
        expect(
          await settle(tenant.client, topic, group, "extend", { receipts: [{ receipt, firstOffset: 4 }], visibilityTimeoutSeconds: 60 }),
        ).toEqual({
          extended: 1,
          failed: [],
        });
        const outside = [
          { receipt, firstOffset: 4, lastOffset: 5 },
          { receipt, firstOffset: 3, lastOffset: 2 },
        ];
        expect(await settle(tenant.client, topic, group, "ack", { receipts: outside })).toEqual({
          acked: 0,
          failed: outside.map(() => ({ receipt, code: "receipt_unknown" })),
        });
        // The whole lease's nack now gives back 0, 3 and 4; 1 and 2 are settled.
        const nacked = await settle(tenant.client, topic, group, "nack", { receipts: [receipt] });
        expect(nacked.nacked).toBe(3);
        expect(nacked.failed.map((f) => (f as { offset?: number }).offset).sort()).toEqual([1, 2]);
        const again = await receive(tenant.client, topic, group, { max: 10, visibilityTimeoutSeconds: 30 });
        expect(again.map((m) => [m.offset, m.attempt])).toEqual([
          [0, 2],
          [3, 2],
          [4, 2],
        ]);
        await ackAll(tenant.client, topic, group, again);
        await expectDrained(tenant.client, topic, group);
        const bad = await tenant.client.post(`${groupPath(topic, group)}/ack`, { receipts: [{ receipt, firstOffset: -1 }] });
        assertProblem(bad, 400, "invalid_request");
      });

      it("a dead-letter topic answered in batches carries the headers the dead-lettering added", async () => {
        const { topic, group } = await topicWithGroup(tenant.client, {}, { maxAttempts: 1 });
        await produce(tenant.client, topic, [{ value: "poison", key: "p", headers: { kind: "bad" } }]);
        const [m] = await receive(tenant.client, topic, group, { max: 1, visibilityTimeoutSeconds: 30 });
        await settle(tenant.client, topic, group, "nack", { receipts: [m.receipt] });
        // The next receive finds it past its last attempt and dead-letters it.
        expect(await receive(tenant.client, topic, group, { max: 1 })).toEqual([]);
        const dlq = `${topic}.dlq`;
        const dlqGroup = uniq("g");
        await putGroup(tenant.client, dlq, dlqGroup, { startAt: "earliest" });
        const got = await fetchBatches(`${target!.baseUrl}${groupPath(dlq, dlqGroup)}/receive`, tenant.apiKey, { max: 10 }, dlq);
        expect(got.messages).toHaveLength(1);
        expect(got.messages[0]).toMatchObject({
          key: "p",
          value: "poison",
          headers: { kind: "bad", "x-reservoir-source-offset": "0", "x-reservoir-group": group },
        });
        const [read] = await readAll(tenant.client, dlq, 0);
        expect(got.messages[0].headers).toEqual(read.headers);
      });

      it("nack and extend take lease receipts; a message settled on its own is listed in failed with its offset", async () => {
        const { topic, group } = await topicWithGroup(tenant.client, {}, { maxAttempts: 10 });
        await produce(
          tenant.client,
          topic,
          Array.from({ length: 5 }, (_, i) => ({ value: `n${i}` })),
        );
        const first = await receiveWithLeases(tenant.client, topic, group, { max: 5, visibilityTimeoutSeconds: 30 });
        expect(first.leases).toEqual([{ partition: 0, firstOffset: 0, lastOffset: 4, receipt: expect.any(String), attempt: 1 }]);
        const lease = first.leases![0];
        expect(await settle(tenant.client, topic, group, "extend", { receipts: [lease.receipt], visibilityTimeoutSeconds: 60 })).toEqual({
          extended: 5,
          failed: [],
        });
        // Offset 2 acked on its own; the lease's nack then gives back the other four only.
        await ackAll(tenant.client, topic, group, [first.messages[2]]);
        const nacked = await settle(tenant.client, topic, group, "nack", { receipts: [lease.receipt] });
        expect(nacked).toEqual({ nacked: 4, failed: [{ receipt: lease.receipt, code: "receipt_expired", offset: 2 }] });
        const again = await receiveWithLeases(tenant.client, topic, group, { max: 10, visibilityTimeoutSeconds: 30 });
        expect(again.messages.map((m) => [m.offset, m.attempt])).toEqual([
          [0, 2],
          [1, 2],
          [3, 2],
          [4, 2],
        ]);
        expectLeasesCover(again.messages, again.leases!);
        // The old lease receipt names an ended grant now: every offset of it is expired.
        const stale = await settle(tenant.client, topic, group, "ack", { receipts: [lease.receipt] });
        const failedOffsets = stale.failed.map((f) => (f as { offset?: number }).offset);
        expect(failedOffsets).toEqual(expect.arrayContaining([0, 1, 3, 4]));
        // Offset 2 (acked before) is either acked again (harmless) or expired with the rest.
        expect(stale.acked + stale.failed.length).toBe(5);
        expect(await settle(tenant.client, topic, group, "ack", { receipts: again.leases!.map((l) => l.receipt) })).toEqual({
          acked: 4,
          failed: [],
        });
        await expectDrained(tenant.client, topic, group);
      });

      it("a receive's `ack` acks those receipts before it leases, in JSON, raw and in batches; the answer's `ack` says how", async () => {
        const { topic, group } = await topicWithGroup(tenant.client);
        await produce(
          tenant.client,
          topic,
          Array.from({ length: 6 }, (_, i) => ({ value: `v${i}` })),
        );
        const url = `${target!.baseUrl}${groupPath(topic, group)}/receive`;
        const first = await receiveWithLeases(tenant.client, topic, group, { max: 2, visibilityTimeoutSeconds: 30 });
        expect(first.messages.map((m) => m.offset)).toEqual([0, 1]);
        // JSON: the first lease acked with the second receive.
        const second = await receiveRes(tenant.client, topic, group, {
          max: 2,
          visibilityTimeoutSeconds: 30,
          ack: [first.leases![0].receipt],
        });
        assertStatus(second, 200);
        expect(second.body.ack).toEqual({ acked: 2, failed: [] });
        expect((second.body.messages as Received[]).map((m) => m.offset)).toEqual([2, 3]);
        // Raw: one message's own receipt, and a part of a lease receipt.
        const [m2, m3] = second.body.messages as Received[];
        const raw = await fetchRaw(url, tenant.apiKey, {
          method: "POST",
          json: {
            max: 1,
            visibilityTimeoutSeconds: 30,
            ack: [m2.receipt, { receipt: second.body.leases[0].receipt, firstOffset: m3.offset }],
          },
        });
        expect(raw.body.ack).toEqual({ acked: 2, failed: [] });
        expect((raw.body.messages as Received[]).map((m) => m.offset)).toEqual([4]);
        // In batches: an unknown receipt is listed in `failed`, the others acked; the receive goes on.
        const batches = await fetchBatches(
          url,
          tenant.apiKey,
          { max: 5, visibilityTimeoutSeconds: 30, ack: [raw.body.leases[0].receipt, "nope"] },
          topic,
        );
        expect(batches.ack).toEqual({ acked: 1, failed: [{ receipt: "nope", code: "receipt_unknown" }] });
        expect(batches.messages.map((m) => m.offset)).toEqual([5]);
        // Without `ack` an answer has none; an empty `ack` acks nothing.
        const plain = await receiveRes(tenant.client, topic, group, { max: 1 });
        expect(plain.body).toEqual({ messages: [] });
        const emptyAck = await receiveRes(tenant.client, topic, group, { max: 1, ack: [] });
        expect(emptyAck.body).toEqual({ messages: [], ack: { acked: 0, failed: [] } });
        // Acked with the last receive (nothing left to lease): every message acked once, nothing redelivered.
        const last = await receiveRes(tenant.client, topic, group, { max: 10, ack: batches.leases.map((l) => l.receipt) });
        expect(last.body).toEqual({ messages: [], ack: { acked: 1, failed: [] } });
        await expectDrained(tenant.client, topic, group);
      });

      it("four consumers acking each receive with their next drain a topic: every message once, every ack done", async () => {
        const { topic, group } = await topicWithGroup(tenant.client, { partitions: 4 });
        const total = 400;
        for (let i = 0; i < total; i += 100) {
          await produce(
            tenant.client,
            topic,
            Array.from({ length: 100 }, (_, j) => ({ value: `m${i + j}`, partition: (i + j) % 4 })),
          );
        }
        const seen = new Map<string, number>();
        let acked = 0;
        const failures: unknown[] = [];
        const consumer = async () => {
          let pending: string[] = [];
          for (let empty = 0; empty < 2; ) {
            const res = await receiveRes(tenant.client, topic, group, { max: 30, visibilityTimeoutSeconds: 60, ack: pending });
            assertStatus(res, 200);
            acked += res.body.ack.acked;
            failures.push(...res.body.ack.failed);
            const messages = res.body.messages as Received[];
            for (const m of messages) seen.set(id(m), (seen.get(id(m)) ?? 0) + 1);
            pending = (res.body.leases ?? []).map((l: Lease) => l.receipt);
            empty = messages.length === 0 ? empty + 1 : 0;
          }
        };
        await Promise.all([consumer(), consumer(), consumer(), consumer()]);
        expect(failures).toEqual([]);
        expect(seen.size).toBe(total);
        expect(
          [...seen.values()].every((n) => n === 1),
          "no message delivered twice",
        ).toBe(true);
        expect(acked).toBe(total);
        await expectDrained(tenant.client, topic, group);
      });

      it("a receive whose `ack` is malformed or over 1,000 receipts is refused whole: nothing acked, nothing leased", async () => {
        const { topic, group } = await topicWithGroup(tenant.client);
        await produce(tenant.client, topic, [{ value: "a" }, { value: "b" }]);
        const first = await receiveWithLeases(tenant.client, topic, group, { max: 1, visibilityTimeoutSeconds: 30 });
        const receipt = first.leases![0].receipt;
        const path = `${groupPath(topic, group)}/receive`;
        assertProblem(await tenant.client.post(path, { max: 1, ack: receipt }), 400, "invalid_request");
        assertProblem(await tenant.client.post(path, { max: 1, ack: [receipt, 5] }), 400, "invalid_request");
        assertProblem(await tenant.client.post(path, { max: 1, ack: [{ receipt, firstOffset: -1 }] }), 400, "invalid_request");
        const tooMany = assertProblem(await tenant.client.post(path, { max: 1, ack: Array(1001).fill(receipt) }), 413, "too_many_receipts");
        expect(tooMany.limit).toBe(1000);
        // Offset 0 is still leased (not acked) and offset 1 was not leased by any refused call.
        const v = await view(tenant.client, topic, group);
        expect(v.partitions[0]).toMatchObject({ committedOffset: 0, inFlight: 1 });
        const rest = await receive(tenant.client, topic, group, { max: 10, ack: [receipt] });
        expect(rest.map((m) => m.offset)).toEqual([1]);
        await ackAll(tenant.client, topic, group, rest);
        await expectDrained(tenant.client, topic, group);
      });

      it("a lease receipt stretched past its grant settles only the grant's messages; one naming over 1,000 offsets is unknown", async () => {
        // Receipts are opaque to clients; this test rewrites one on purpose, as an attacker could:
        // the MAC binds the tenant, group and grant, and the rows of the grant bound what it settles.
        const { topic, group } = await topicWithGroup(tenant.client);
        await produce(tenant.client, topic, [{ value: "a" }, { value: "b" }, { value: "c" }]);
        const got = await receiveWithLeases(tenant.client, topic, group, { max: 2, visibilityTimeoutSeconds: 30 });
        const lease = got.leases![0];
        const [body, mac] = lease.receipt.split(".");
        const fields = Buffer.from(body, "base64url").toString("latin1").split(".");
        const rewrite = (last: number) =>
          `${Buffer.from([...fields.slice(0, 5), String(last)].join("."), "latin1").toString("base64url")}.${mac}`;
        const tooLong = rewrite(Number(fields[3]) + 1000);
        expect(await settle(tenant.client, topic, group, "ack", { receipts: [tooLong] })).toEqual({
          acked: 0,
          failed: [{ receipt: tooLong, code: "receipt_unknown" }],
        });
        const stretched = rewrite(Number(fields[3]) + 2);
        const res = await settle(tenant.client, topic, group, "ack", { receipts: [stretched] });
        expect(res).toEqual({ acked: 2, failed: [{ receipt: stretched, code: "receipt_expired", offset: 2 }] });
        // Offset 2 was never leased: it is still delivered.
        const rest = await receive(tenant.client, topic, group, { max: 10 });
        expect(rest.map((m) => m.offset)).toEqual([2]);
        await ackAll(tenant.client, topic, group, rest);
        await expectDrained(tenant.client, topic, group);
      });
    });

    // ---------------------------------------------------------------- concurrency

    describe("concurrent receivers", () => {
      it("four concurrent receivers never hold the same message at once, and together receive each message exactly once", async () => {
        const partitions = 4;
        const total = 160;
        const { topic, group } = await topicWithGroup(tenant.client, { partitions });
        for (let batch = 0; batch < 4; batch++) {
          await produce(
            tenant.client,
            topic,
            Array.from({ length: total / 4 }, (_, i) => {
              const n = batch * (total / 4) + i;
              return { value: `m-${n}`, partition: n % partitions };
            }),
          );
        }
        const counts = new Map<string, number>();
        let held: Received[] = []; // received in the previous round, acked after this round's receives
        for (let round = 0; round < 200; round++) {
          const results = await Promise.all(
            Array.from({ length: 4 }, () => receive(tenant.client, topic, group, { max: 7, visibilityTimeoutSeconds: 60 })),
          );
          const inFlight = new Set(held.map(id));
          const now = results.flat();
          for (const m of now) {
            expect(inFlight.has(id(m)), `round ${round}: ${id(m)} handed to two receivers at once`).toBe(false);
            inFlight.add(id(m));
            counts.set(id(m), (counts.get(id(m)) ?? 0) + 1);
            expect(m.attempt, `${id(m)}: no lease expired, so no redelivery`).toBe(1);
          }
          await Promise.all(
            Array.from({ length: 4 }, (_, i) => {
              const mine = held.filter((_, j) => j % 4 === i);
              return ackAll(tenant.client, topic, group, mine);
            }),
          );
          held = now;
          if (now.length === 0 && [...counts.keys()].length >= total) break;
        }
        await ackAll(tenant.client, topic, group, held);
        expect(counts.size, "every message was received").toBe(total);
        const twice = [...counts].filter(([, n]) => n !== 1);
        expect(twice, "messages received more than once").toEqual([]);
        expect(await receive(tenant.client, topic, group, { max: 100 })).toEqual([]);
        await expectDrained(tenant.client, topic, group);
      });
    });

    // ---------------------------------------------------------------- ordering "key"

    describe('ordering "key"', () => {
      it("per key: offset order, never two in flight at once; different keys are received in parallel", async () => {
        const keys = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"];
        const perKey = 6;
        const { topic, group } = await topicWithGroup(tenant.client, { partitions: 3 }, { ordering: "key" });
        const sent: Msg[] = [];
        for (let i = 0; i < perKey; i++) for (const k of keys) sent.push({ key: k, value: `${k}-${i}` });
        await produce(tenant.client, topic, sent.slice(0, 18));
        await produce(tenant.client, topic, sent.slice(18));

        // Every key's messages in offset order (a key lives in one partition).
        const expected = new Map<string, { partition: number; offset: number; value: string }[]>();
        for (let p = 0; p < 3; p++) {
          for (const m of await readAll(tenant.client, topic, p)) {
            const list = expected.get(m.key) ?? [];
            list.push({ partition: m.partition, offset: m.offset, value: m.value });
            expected.set(m.key, list);
          }
        }
        expect([...expected.keys()].sort()).toEqual([...keys].sort());
        for (const [k, list] of expected)
          expect(
            list.map((m) => m.value),
            k,
          ).toEqual(Array.from({ length: perKey }, (_, i) => `${k}-${i}`));

        // One receive hands out several keys at once, one message per key, each its key's first.
        const head = await receive(tenant.client, topic, group, { max: 100, visibilityTimeoutSeconds: 60 });
        const headKeys = head.map((m) => m.key!);
        expect(new Set(headKeys).size, `one message per key: ${headKeys.join(",")}`).toBe(head.length);
        expect(head.length, `several keys in one receive: ${headKeys.join(",")}`).toBeGreaterThan(1);
        for (const m of head) expect(m.value, `${m.key} starts with its first message`).toBe(`${m.key}-0`);

        const next = new Map<string, number>(keys.map((k) => [k, 0])); // index of the next expected message per key
        const take = (m: Received, round: number) => {
          const i = next.get(m.key!)!;
          const want = expected.get(m.key!)![i];
          expect(want, `round ${round}: ${m.key} delivered past its last message`).toBeDefined();
          expect([m.partition, m.offset, m.value, m.attempt], `round ${round}: ${m.key} message #${i}`).toEqual([
            want.partition,
            want.offset,
            want.value,
            1,
          ]);
          next.set(m.key!, i + 1);
        };
        for (const m of head) take(m, -1);

        let held: Received[] = head;
        let parallelRounds = 0;
        for (let round = 0; round < 100; round++) {
          const results = await Promise.all(
            Array.from({ length: 4 }, () => receive(tenant.client, topic, group, { max: 10, visibilityTimeoutSeconds: 60 })),
          );
          const inFlightKeys = new Set(held.map((m) => m.key!));
          const now = results.flat();
          now.sort(byOffset);
          for (const m of now) {
            expect(inFlightKeys.has(m.key!), `round ${round}: two messages of ${m.key} in flight at once (${id(m)})`).toBe(false);
            inFlightKeys.add(m.key!);
            take(m, round);
          }
          if (new Set(now.map((m) => m.key)).size > 1) parallelRounds++;
          await ackAll(tenant.client, topic, group, held);
          held = now;
          if (now.length === 0 && [...next.values()].every((n) => n === perKey)) break;
        }
        await ackAll(tenant.client, topic, group, held);
        expect(Object.fromEntries(next), "every message of every key was received").toEqual(
          Object.fromEntries(keys.map((k) => [k, perKey])),
        );
        expect(parallelRounds, "rounds in which several keys were in flight").toBeGreaterThan(0);
        await expectDrained(tenant.client, topic, group);
      });

      it("a key's next message waits for the ack of the previous one, and comes after a nack's redelivery", async () => {
        const { topic, group } = await topicWithGroup(tenant.client, {}, { ordering: "key" });
        await produce(tenant.client, topic, [
          { key: "k", value: "k-0" },
          { key: "k", value: "k-1" },
          { key: "k", value: "k-2" },
        ]);
        const first = await receive(tenant.client, topic, group, { max: 100, visibilityTimeoutSeconds: 30 });
        expect(first.map((m) => m.value)).toEqual(["k-0"]);
        expect(await receive(tenant.client, topic, group, { max: 100 }), "k-1 waits while k-0 is in flight").toEqual([]);
        await settle(tenant.client, topic, group, "nack", { receipts: [first[0].receipt] });
        const second = await receive(tenant.client, topic, group, { max: 100, visibilityTimeoutSeconds: 30 });
        expect(
          second.map((m) => [m.value, m.attempt]),
          "the nacked k-0 comes first again",
        ).toEqual([["k-0", 2]]);
        await ackAll(tenant.client, topic, group, second);
        const third = await receive(tenant.client, topic, group, { max: 100, visibilityTimeoutSeconds: 30 });
        expect(third.map((m) => [m.value, m.attempt])).toEqual([["k-1", 1]]);
        await ackAll(tenant.client, topic, group, third);
        const fourth = await receive(tenant.client, topic, group, { max: 100, visibilityTimeoutSeconds: 30 });
        expect(fourth.map((m) => [m.value, m.attempt])).toEqual([["k-2", 1]]);
        await ackAll(tenant.client, topic, group, fourth);
        await expectDrained(tenant.client, topic, group);
      });

      it("a key with a long backlog (over 1,000 messages) does not hold back another key", async () => {
        const { topic, group } = await topicWithGroup(tenant.client, {}, { ordering: "key" });
        await produce(
          tenant.client,
          topic,
          Array.from({ length: 1000 }, (_, i) => ({ key: "busy", value: `busy-${i}` })),
        );
        await produce(tenant.client, topic, [{ key: "quiet", value: "quiet-0" }]);
        const got: Received[] = [];
        // busy-0 stays in flight (never acked here); quiet-0 must still be delivered.
        for (let i = 0; i < 3; i++) got.push(...(await receive(tenant.client, topic, group, { max: 100, visibilityTimeoutSeconds: 60 })));
        expect(got.map((m) => m.value).sort(), "busy-0 (in flight, blocking only its own key) and quiet-0").toEqual(["busy-0", "quiet-0"]);
      });

      it("messages acked concurrently are never delivered again", async () => {
        const redelivered: string[] = [];
        for (let round = 0; round < 16; round++) {
          const { topic, group } = await topicWithGroup(tenant.client, {}, { ordering: "key" });
          await produce(
            tenant.client,
            topic,
            Array.from({ length: 8 }, (_, i) => ({ key: `k-${i}`, value: `m-${i}` })),
          );
          const got: Received[] = [];
          for (let i = 0; i < 8; i++) got.push(...(await receive(tenant.client, topic, group, { max: 1, visibilityTimeoutSeconds: 60 })));
          expect(got.map((m) => m.offset)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
          const results = await Promise.all(got.map((m) => settle(tenant.client, topic, group, "ack", { receipts: [m.receipt] })));
          for (const r of results) expect(r).toEqual({ acked: 1, failed: [] });
          const again = await receive(tenant.client, topic, group, { max: 100, visibilityTimeoutSeconds: 60 });
          for (const m of again) redelivered.push(`round ${round}: ${m.value} (offset ${m.offset}, attempt ${m.attempt})`);
        }
        expect(redelivered, "acked messages delivered again").toEqual([]);
      });

      it("a poison message blocks its key until maxAttempts, is dead-lettered, and then the key's next message flows; other keys are not blocked", async () => {
        const { topic, group } = await topicWithGroup(tenant.client, {}, { ordering: "key", maxAttempts: 2 });
        await produce(tenant.client, topic, [
          { key: "A", value: "A-poison", headers: { kind: "poison" } },
          { key: "B", value: "B-0" },
          { key: "A", value: "A-1" },
          { key: "B", value: "B-1" },
          { key: "A", value: "A-2" },
        ]);
        const seen: [string, number][] = [];
        const first = await receive(tenant.client, topic, group, { max: 100, visibilityTimeoutSeconds: 2 });
        expect(first.map((m) => [m.value, m.attempt])).toEqual([
          ["A-poison", 1],
          ["B-0", 1],
        ]);
        // B goes on while A's head is in flight; A does not.
        await ackAll(
          tenant.client,
          topic,
          group,
          first.filter((m) => m.key === "B"),
        );
        const b1 = await receive(tenant.client, topic, group, { max: 100, visibilityTimeoutSeconds: 30 });
        expect(
          b1.map((m) => m.value),
          "B flows, A is blocked by its poison message",
        ).toEqual(["B-1"]);
        await ackAll(tenant.client, topic, group, b1);

        // Attempt 2 of the poison message; A-1 still waits.
        const retry = await receiveUntil(tenant.client, topic, group, 1, { visibilityTimeoutSeconds: 1 });
        expect(retry.map((m) => [m.value, m.attempt])).toEqual([["A-poison", 2]]);
        // After its last attempt times out, it is dead-lettered and A-1 is delivered.
        const after = await receiveUntil(tenant.client, topic, group, 1, { visibilityTimeoutSeconds: 30 });
        for (const m of after) seen.push([m.value!, m.attempt]);
        expect(seen, "the poison message is not delivered a third time; A-1 follows").toEqual([["A-1", 1]]);
        await ackAll(tenant.client, topic, group, after);
        const a2 = await receive(tenant.client, topic, group, { max: 100, visibilityTimeoutSeconds: 30 });
        expect(a2.map((m) => m.value)).toEqual(["A-2"]);
        await ackAll(tenant.client, topic, group, a2);

        const v = await view(tenant.client, topic, group);
        expect(v.deadLettered).toBe(1);
        await expectDrained(tenant.client, topic, group);
        const dead = await readAll(tenant.client, `${topic}.dlq`, 0);
        expect(dead).toHaveLength(1);
        expect(dead[0]).toMatchObject({
          key: "A",
          value: "A-poison",
          headers: { kind: "poison", "x-reservoir-source-offset": "0", "x-reservoir-group": group },
        });
      });
    });

    // ---------------------------------------------------------------- dead letters and redrive

    /** Receives (never acking) until the group has dead-lettered `n` messages; returns every delivery seen. */
    async function exhaust(client: Api, topic: string, group: string, n: number, boundMs = 20_000): Promise<Received[]> {
      const deliveries: Received[] = [];
      const until = Date.now() + boundMs;
      while (Date.now() < until) {
        deliveries.push(...(await receive(client, topic, group, { max: 100, visibilityTimeoutSeconds: 1, waitMs: 300 })));
        if ((await view(client, topic, group)).deadLettered >= n) break;
      }
      return deliveries;
    }

    describe("dead letters and redrive", () => {
      it("after maxAttempts deliveries a message goes to <topic>.dlq (created with the source's partitions) with its key, value, headers and the x-reservoir-* headers", async () => {
        const { topic, group } = await topicWithGroup(tenant.client, { partitions: 3 }, { maxAttempts: 2 });
        const bytes = Uint8Array.from([0, 255, 1, 254, 0x80]);
        const sent: Msg[] = [
          { value: "plain", partition: 0 },
          { value: "keyed", key: "order-7", headers: { trace: "abc", "content-type": "application/json" }, partition: 1 },
          { valueBase64: Buffer.from(bytes).toString("base64"), key: "bin", partition: 2 },
        ];
        const offsets = await produce(tenant.client, topic, sent);
        const deliveries = await exhaust(tenant.client, topic, group, 3);
        const attempts = new Map<string, number[]>();
        for (const m of deliveries) attempts.set(id(m), [...(attempts.get(id(m)) ?? []), m.attempt]);
        expect(Object.fromEntries(attempts), "each message delivered exactly maxAttempts (2) times").toEqual(
          Object.fromEntries(offsets.map((o) => [id(o), [1, 2]])),
        );
        const v = await view(tenant.client, topic, group);
        expect(v.deadLettered).toBe(3);
        expect(sum(v, "inFlight")).toBe(0);
        expect(sum(v, "lag"), "dead-lettered messages are done for the group").toBe(0);
        expect(await receive(tenant.client, topic, group, { max: 100 }), "dead letters are not delivered again").toEqual([]);

        const dlq = await tenant.client.get(topicPath(`${topic}.dlq`));
        assertStatus(dlq, 200);
        expect(dlq.body.partitions, "the dead-letter topic has the source topic's partition count").toBe(3);
        const letters = (await Promise.all([0, 1, 2].map((p) => readAll(tenant.client, `${topic}.dlq`, p)))).flat();
        expect(letters).toHaveLength(3);
        for (const [i, m] of sent.entries()) {
          const source = offsets[i];
          const letter = letters.find((l) => l.headers?.["x-reservoir-source-partition"] === String(source.partition));
          expect(letter, `dead letter of ${id(source)}`).toBeDefined();
          expect(letter!.topic).toBe(`${topic}.dlq`);
          expect(letter!.partition, "source partition p goes to partition p % n").toBe(source.partition % 3);
          expect(letter!.key).toBe(m.key);
          expect(letter!.value).toBe(m.value);
          expect(letter!.valueBase64).toBe(m.valueBase64);
          const { "x-reservoir-error": error, ...headers } = letter!.headers as Record<string, string>;
          expect(headers).toEqual({
            ...(m.headers ?? {}),
            "x-reservoir-source-topic": topic,
            "x-reservoir-source-partition": String(source.partition),
            "x-reservoir-source-offset": String(source.offset),
            "x-reservoir-group": group,
          });
          expect(typeof error === "string" && error.length > 0, `x-reservoir-error: ${error}`).toBe(true);
        }

        // The dead-letter topic is a topic like any other: a group on it receives the letters as read.
        const dlqGroup = uniq("dlq-reader");
        await putGroup(tenant.client, `${topic}.dlq`, dlqGroup, { startAt: "earliest" });
        const fromDlq = await receiveUntil(tenant.client, `${topic}.dlq`, dlqGroup, 3);
        expect(fromDlq.map(({ receipt, attempt, ...m }) => m).sort(byOffset)).toEqual(
          [...letters].sort((a, b) => byOffset(a as Received, b as Received)),
        );
        await ackAll(tenant.client, `${topic}.dlq`, dlqGroup, fromDlq);
      });

      it("maxAttempts 1: a message not acked within its first lease is dead-lettered", async () => {
        const { topic, group } = await topicWithGroup(tenant.client, {}, { maxAttempts: 1 });
        await produce(tenant.client, topic, [{ value: "once" }, { value: "acked" }]);
        const first = await receive(tenant.client, topic, group, { max: 2, visibilityTimeoutSeconds: 30 });
        await ackAll(tenant.client, topic, group, [first[1]]);
        await settle(tenant.client, topic, group, "nack", { receipts: [first[0].receipt] });
        const after = await exhaust(tenant.client, topic, group, 1);
        expect(after, "no second delivery").toEqual([]);
        expect((await view(tenant.client, topic, group)).deadLettered).toBe(1);
        expect((await readAll(tenant.client, `${topic}.dlq`, 0)).map((m) => m.value)).toEqual(["once"]);
        await expectDrained(tenant.client, topic, group);
      });

      it("a configured deadLetterTopic with fewer partitions receives source partition p in partition p % n", async () => {
        const dlqName = uniq("custom-dlq");
        await createTopic(tenant.client, { partitions: 2 }, dlqName);
        const { topic, group } = await topicWithGroup(tenant.client, { partitions: 4 }, { maxAttempts: 1, deadLetterTopic: dlqName });
        await produce(
          tenant.client,
          topic,
          [0, 1, 2, 3].map((p) => ({ value: `from-${p}`, partition: p })),
        );
        const got = await receive(tenant.client, topic, group, { max: 100, visibilityTimeoutSeconds: 1 });
        expect(got).toHaveLength(4);
        await exhaust(tenant.client, topic, group, 4);
        expect((await view(tenant.client, topic, group)).deadLettered).toBe(4);
        const dlq = await tenant.client.get(topicPath(dlqName));
        expect(dlq.body.partitions).toBe(2);
        expect(dlq.body.highWatermarks).toEqual([2, 2]);
        for (const p of [0, 1]) {
          const letters = await readAll(tenant.client, dlqName, p);
          expect(letters.map((m) => m.value).sort()).toEqual([`from-${p}`, `from-${p + 2}`]);
          for (const m of letters) expect(Number(m.headers["x-reservoir-source-partition"]) % 2).toBe(p);
        }
        const defaultDlq = await tenant.client.get(topicPath(`${topic}.dlq`));
        assertProblem(defaultDlq, 404, "topic_not_found");
      });

      it("concurrent receivers dead-lettering at once (the first dead letters of a new dead-letter topic) never fail and dead-letter each message once", async () => {
        const partitions = 8;
        for (let round = 0; round < 6; round++) {
          const { topic, group } = await topicWithGroup(tenant.client, { partitions }, { maxAttempts: 1 });
          await produce(
            tenant.client,
            topic,
            Array.from({ length: partitions * 2 }, (_, i) => ({ value: `m-${i}`, partition: i % partitions })),
          );
          const leased = await receiveUntil(tenant.client, topic, group, partitions * 2, { visibilityTimeoutSeconds: 60 });
          expect(leased).toHaveLength(partitions * 2);
          // Keep one message per partition to ack while the others are being dead-lettered.
          const keep = leased.filter((m) => m.offset === 0);
          const giveUp = leased.filter((m) => m.offset === 1);
          expect(await settle(tenant.client, topic, group, "nack", { receipts: giveUp.map((m) => m.receipt) })).toEqual({
            nacked: partitions,
            failed: [],
          });
          const results = await Promise.all([
            ...Array.from({ length: partitions }, () => receive(tenant.client, topic, group, { max: 1 })),
            ...keep.map((m) => settle(tenant.client, topic, group, "ack", { receipts: [m.receipt] })),
          ]);
          const delivered = results.slice(0, partitions).flat() as Received[];
          expect(delivered, "after its only attempt a message is not delivered again").toEqual([]);
          for (const r of results.slice(partitions) as SettleResult[]) expect(r).toEqual({ acked: 1, failed: [] });
          await exhaust(tenant.client, topic, group, partitions);
          const v = await view(tenant.client, topic, group);
          expect(v.deadLettered, `round ${round}`).toBe(partitions);
          const letters = (
            await Promise.all(Array.from({ length: partitions }, (_, p) => readAll(tenant.client, `${topic}.dlq`, p)))
          ).flat();
          expect(
            letters.map((m) => `${m.headers["x-reservoir-source-partition"]}:${m.headers["x-reservoir-source-offset"]}`).sort(),
            "one dead letter per message",
          ).toEqual(giveUp.map(id).sort());
          await expectDrained(tenant.client, topic, group);
        }
      });

      it("receivers of one partition at once, beside acks, each get messages while messages remain (none comes back empty)", async () => {
        const { topic, group } = await topicWithGroup(tenant.client, { partitions: 1 });
        await produce(
          tenant.client,
          topic,
          Array.from({ length: 200 }, (_, i) => ({ value: `m-${i}` })),
        );
        const seen = new Set<string>();
        for (let round = 0; round < 4; round++) {
          // Acks of the last round's leases go in at the same time as this round's receives: each
          // moves the partition's committed offset, which holds its position for a statement.
          const earlier = await receive(tenant.client, topic, group, { max: 10, waitMs: 0 });
          expect(earlier).toHaveLength(10);
          const results = await Promise.all([
            ...Array.from({ length: 4 }, () => receive(tenant.client, topic, group, { max: 5, waitMs: 0 })),
            ...earlier.map((m) => settle(tenant.client, topic, group, "ack", { receipts: [m.receipt] })),
          ]);
          const batches = results.slice(0, 4) as Received[][];
          for (const batch of batches) expect(batch.map(id), `round ${round}: a receive of 5 with 200 messages there`).toHaveLength(5);
          for (const r of results.slice(4) as SettleResult[]) expect(r).toEqual({ acked: 1, failed: [] });
          for (const m of [...earlier, ...batches.flat()]) {
            expect(seen.has(id(m)), `${id(m)} delivered once`).toBe(false);
            seen.add(id(m));
          }
        }
        expect(seen.size).toBe(4 * 30);
      });

      it("four workers receiving, acking and nacking concurrently: every message ends acked once or dead-lettered once", async () => {
        const partitions = 4;
        const total = 80;
        const topic = await createTopic(tenant.client, { partitions });
        const dlq = await createTopic(tenant.client, { partitions }, `${topic}.dlq`);
        const group = uniq("g");
        await putGroup(tenant.client, topic, group, { startAt: "earliest", maxAttempts: 2 });
        await produce(
          tenant.client,
          topic,
          Array.from({ length: total }, (_, i) => ({ value: `m-${i}`, partition: i % partitions })),
        );
        const poison = (m: Received) => Number(m.value!.slice(2)) % 3 === 0;
        const poisonCount = Array.from({ length: total }, (_, i) => i).filter((i) => i % 3 === 0).length;
        const deliveries = new Map<string, number[]>();
        const acked = new Map<string, number>();
        const problems: string[] = [];
        let deadLettered = 0;
        const until = Date.now() + 40_000;
        const worker = async () => {
          while (Date.now() < until) {
            const got = await receive(tenant.client, topic, group, { max: 5, visibilityTimeoutSeconds: 60 });
            for (const m of got) deliveries.set(id(m), [...(deliveries.get(id(m)) ?? []), m.attempt]);
            const good = got.filter((m) => !poison(m));
            const bad = got.filter(poison);
            if (good.length > 0) {
              const r = await settle(tenant.client, topic, group, "ack", { receipts: good.map((m) => m.receipt) });
              if (r.acked !== good.length || r.failed.length > 0) problems.push(`ack of ${good.map(id).join(",")}: ${JSON.stringify(r)}`);
              for (const m of good) acked.set(id(m), (acked.get(id(m)) ?? 0) + 1);
            }
            if (bad.length > 0) {
              const r = await settle(tenant.client, topic, group, "nack", { receipts: bad.map((m) => m.receipt) });
              if (r.nacked !== bad.length || r.failed.length > 0) problems.push(`nack of ${bad.map(id).join(",")}: ${JSON.stringify(r)}`);
            }
            if (got.length === 0) {
              deadLettered = (await view(tenant.client, topic, group)).deadLettered;
              if (acked.size === total - poisonCount && deadLettered === poisonCount) return;
              await sleep(50);
            }
          }
        };
        await Promise.all([worker(), worker(), worker(), worker()]);
        expect(problems, "every settle of a live receipt succeeded").toEqual([]);
        expect(acked.size, "every good message was acked").toBe(total - poisonCount);
        expect(
          [...acked].filter(([, n]) => n !== 1),
          "acked more than once",
        ).toEqual([]);
        const wrong = [...deliveries].filter(([k, attempts]) => {
          const i = Number(k.split(":")[1]) * partitions + Number(k.split(":")[0]);
          const want = i % 3 === 0 ? [1, 2] : [1];
          return JSON.stringify(attempts) !== JSON.stringify(want);
        });
        expect(wrong, "deliveries per message: good ones once, poison ones exactly maxAttempts times").toEqual([]);
        expect(deadLettered).toBe(poisonCount);
        const letters = (await Promise.all(Array.from({ length: partitions }, (_, p) => readAll(tenant.client, dlq, p)))).flat();
        const sources = letters.map(
          (m) => Number(m.headers["x-reservoir-source-offset"]) * partitions + Number(m.headers["x-reservoir-source-partition"]),
        );
        expect(
          sources.sort((a, b) => a - b),
          "one dead letter per poison message",
        ).toEqual(Array.from({ length: total }, (_, i) => i).filter((i) => i % 3 === 0));
        await expectDrained(tenant.client, topic, group);
      });

      it("redrive answers {redriven: n}, moves the dead letters back as new messages without x-reservoir-* headers, and they are received again", async () => {
        const { topic, group } = await topicWithGroup(tenant.client, { partitions: 2 }, { maxAttempts: 1 });
        const sent: Msg[] = [
          { value: "r-0", key: "a", headers: { h: "0" }, partition: 0 },
          { value: "r-1", partition: 1 },
          { valueBase64: Buffer.from([9, 8, 7]).toString("base64"), partition: 1, headers: { h: "2" } },
        ];
        await produce(tenant.client, topic, sent);
        await produce(tenant.client, topic, [{ value: "fine", partition: 0 }]);
        const first = await receive(tenant.client, topic, group, { max: 100, visibilityTimeoutSeconds: 30 });
        expect(first).toHaveLength(4);
        await ackAll(
          tenant.client,
          topic,
          group,
          first.filter((m) => m.value === "fine"),
        );
        // Given back after their one attempt (maxAttempts 1): the next receive dead-letters them.
        const bad = first.filter((m) => m.value !== "fine");
        expect(await settle(tenant.client, topic, group, "nack", { receipts: bad.map((m) => m.receipt) })).toEqual({
          nacked: 3,
          failed: [],
        });
        expect(await exhaust(tenant.client, topic, group, 3), "no delivery after the last attempt").toEqual([]);
        const before = await view(tenant.client, topic, group);
        expect(before.deadLettered).toBe(3);
        const deadCount = 3;
        const hwBefore = await highWatermarks(tenant.client, topic);

        const res = await tenant.client.post(`${groupPath(topic, group)}/redrive`, {});
        assertStatus(res, 200);
        expect(res.body).toEqual({ redriven: deadCount });
        expect((await view(tenant.client, topic, group)).deadLettered).toBe(0);
        const hwAfter = await highWatermarks(tenant.client, topic);
        expect(hwAfter[0] + hwAfter[1] - hwBefore[0] - hwBefore[1], "the redriven messages are new messages of the source topic").toBe(
          deadCount,
        );

        const back = await receiveUntil(tenant.client, topic, group, deadCount, { visibilityTimeoutSeconds: 30 });
        expect(back).toHaveLength(deadCount);
        for (const m of back) {
          expect(m.offset, `${id(m)} is a new offset`).toBeGreaterThanOrEqual(hwBefore[m.partition]);
          expect(m.attempt).toBe(1);
          expect(
            Object.keys(m.headers ?? {}).filter((h) => h.startsWith("x-reservoir-")),
            "no x-reservoir-* headers",
          ).toEqual([]);
        }
        const strip = (m: Msg) => ({ key: m.key, value: m.value, valueBase64: m.valueBase64, headers: m.headers, partition: m.partition });
        const original = sent.map((m) => strip({ ...m, partition: m.partition }));
        expect(back.map(strip).sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)))).toEqual(
          original.sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b))),
        );
        await ackAll(tenant.client, topic, group, back);
        await expectDrained(tenant.client, topic, group);

        const none = await tenant.client.post(`${groupPath(topic, group)}/redrive`, {});
        assertStatus(none, 200);
        expect(none.body, "nothing left to redrive").toEqual({ redriven: 0 });
      });

      it("redrive {max} moves at most max dead letters per call", async () => {
        const { topic, group } = await topicWithGroup(tenant.client, {}, { maxAttempts: 1 });
        await produce(tenant.client, topic, [{ value: "d-0" }, { value: "d-1" }, { value: "d-2" }]);
        await receive(tenant.client, topic, group, { max: 100, visibilityTimeoutSeconds: 1 });
        await exhaust(tenant.client, topic, group, 3);
        expect((await view(tenant.client, topic, group)).deadLettered).toBe(3);
        const one = await tenant.client.post(`${groupPath(topic, group)}/redrive`, { max: 1 });
        assertStatus(one, 200);
        expect(one.body).toEqual({ redriven: 1 });
        expect((await view(tenant.client, topic, group)).deadLettered).toBe(2);
        const rest = await tenant.client.request("POST", `${groupPath(topic, group)}/redrive`);
        assertStatus(rest, 200);
        expect(rest.body).toEqual({ redriven: 2 });
        const back = await receiveUntil(tenant.client, topic, group, 3, { visibilityTimeoutSeconds: 30 });
        expect(back.map((m) => m.value).sort()).toEqual(["d-0", "d-1", "d-2"]);
        for (const m of back) expect(m.offset).toBeGreaterThanOrEqual(3);
        for (const bad of [{ max: 0 }, { max: -1 }, { max: 1.5 }, { max: "1" }, { other: 1 }]) {
          const res = await tenant.client.post(`${groupPath(topic, group)}/redrive`, bad);
          expect(res.status, `${JSON.stringify(bad)}: ${describeResponse(res)}`).toBe(400);
        }
      });
    });

    // ---------------------------------------------------------------- delayed messages

    describe("delayed messages (delaySeconds, deliverAt)", () => {
      it("are readable by offset at once but received by a group only when due", async () => {
        const { topic, group } = await topicWithGroup(tenant.client);
        const start = Date.now();
        await produce(tenant.client, topic, [
          { value: "delayed-2s", delaySeconds: 2 },
          { value: "now" },
          { value: "at+2s", deliverAt: start + 2_000 },
          { value: "delay-0", delaySeconds: 0 },
        ]);
        const read = await readAll(tenant.client, topic, 0);
        expect(
          read.map((m) => m.value),
          "every message is readable by offset at once",
        ).toEqual(["delayed-2s", "now", "at+2s", "delay-0"]);

        // Every receive is timed on the test's clock: a delayed message must never arrive before it is due
        // (delaySeconds counts from the produce, which started after `start`).
        const due: Record<string, number> = { "delayed-2s": start + 2_000, "at+2s": start + 2_000 };
        const got: Received[] = [];
        const timedReceive = async () => {
          const msgs = await receive(tenant.client, topic, group, { max: 100, visibilityTimeoutSeconds: 30, waitMs: 200 });
          const at = Date.now();
          for (const m of msgs) {
            if (due[m.value!] !== undefined) expect(at, `${m.value} received before it was due`).toBeGreaterThanOrEqual(due[m.value!]);
          }
          got.push(...msgs);
          return msgs;
        };
        const first = await timedReceive();
        expect(
          first.map((m) => m.value),
          "the messages due at once come at once",
        ).toEqual(expect.arrayContaining(["now", "delay-0"]));
        await ackAll(tenant.client, topic, group, first);
        const firstDelayedSeen = Date.now();
        const second = await timedReceive();
        await ackAll(tenant.client, topic, group, second);
        if (firstDelayedSeen < start + 1_500)
          expect(
            second.map((m) => m.value),
            "nothing before it is due",
          ).toEqual([]);
        for (const until = Date.now() + 15_000; got.length < 4 && Date.now() < until; )
          await ackAll(tenant.client, topic, group, await timedReceive());

        expect(got.map((m) => [m.offset, m.value, m.attempt]).sort()).toEqual([
          [0, "delayed-2s", 1],
          [1, "now", 1],
          [2, "at+2s", 1],
          [3, "delay-0", 1],
        ]);
        await expectDrained(tenant.client, topic, group);
      });

      it("a delayed message does not hold back the messages after it, and its lease works like any other", async () => {
        const { topic, group } = await topicWithGroup(tenant.client, {}, { maxAttempts: 5 });
        await produce(tenant.client, topic, [{ value: "late", delaySeconds: 2 }]);
        await produce(tenant.client, topic, [{ value: "n-1" }, { value: "n-2" }]);
        const now = await receive(tenant.client, topic, group, { max: 100, visibilityTimeoutSeconds: 30 });
        expect(now.map((m) => m.value)).toEqual(["n-1", "n-2"]);
        await ackAll(tenant.client, topic, group, now);
        const v = await view(tenant.client, topic, group);
        expect(v.partitions[0].committedOffset, "the cursor waits at the delayed message").toBe(0);
        expect(v.partitions[0].lag).toBe(3);
        const late = await receiveUntil(tenant.client, topic, group, 1, { visibilityTimeoutSeconds: 30 });
        expect(late.map((m) => [m.value, m.attempt])).toEqual([["late", 1]]);
        await settle(tenant.client, topic, group, "nack", { receipts: [late[0].receipt] });
        const again = await receive(tenant.client, topic, group, { max: 100 });
        expect(again.map((m) => [m.value, m.attempt])).toEqual([["late", 2]]);
        await ackAll(tenant.client, topic, group, again);
        await expectDrained(tenant.client, topic, group);
      });

      it('ordering "key": a delayed message holds back the later messages of its key until it is delivered and acked; other keys go on', async () => {
        const { topic, group } = await topicWithGroup(tenant.client, {}, { ordering: "key" });
        await produce(tenant.client, topic, [
          { key: "k", value: "k-1-delayed", delaySeconds: 2 },
          { key: "k", value: "k-2" },
          { key: "other", value: "other-1" },
        ]);
        const first = await receive(tenant.client, topic, group, { max: 100, visibilityTimeoutSeconds: 30 });
        expect(
          first.map((m) => m.value),
          "k-2 waits for the delayed k-1; the other key goes on",
        ).toEqual(["other-1"]);
        await ackAll(tenant.client, topic, group, first);
        const later = await receiveUntil(tenant.client, topic, group, 1, { visibilityTimeoutSeconds: 30 });
        expect(
          later.map((m) => [m.value, m.attempt]),
          "the delayed message comes first, alone",
        ).toEqual([["k-1-delayed", 1]]);
        expect(await receive(tenant.client, topic, group, { max: 100 }), "k-2 waits while k-1 is in flight").toEqual([]);
        await ackAll(tenant.client, topic, group, later);
        const last = await receive(tenant.client, topic, group, { max: 100 });
        expect(last.map((m) => [m.value, m.attempt])).toEqual([["k-2", 1]]);
        await ackAll(tenant.client, topic, group, last);
        await expectDrained(tenant.client, topic, group);
      });

      it('ordering "key": a delayed message that is dead-lettered lets its key go on', async () => {
        const { topic, group } = await topicWithGroup(tenant.client, {}, { ordering: "key", maxAttempts: 1 });
        await produce(tenant.client, topic, [
          { key: "k", value: "k-1-delayed", delaySeconds: 1 },
          { key: "k", value: "k-2" },
        ]);
        expect(await receive(tenant.client, topic, group, { max: 100 }), "k-2 waits for the delayed k-1").toEqual([]);
        const due = await receiveUntil(tenant.client, topic, group, 1, { visibilityTimeoutSeconds: 1 });
        expect(due.map((m) => [m.value, m.attempt])).toEqual([["k-1-delayed", 1]]);
        // Not acked: when its only lease ends it is dead-lettered, and k-2 comes.
        const next = await receiveUntil(tenant.client, topic, group, 1, { visibilityTimeoutSeconds: 30 });
        expect(next.map((m) => [m.value, m.attempt])).toEqual([["k-2", 1]]);
        expect((await view(tenant.client, topic, group)).deadLettered).toBe(1);
        await ackAll(tenant.client, topic, group, next);
        await expectDrained(tenant.client, topic, group);
      });

      it("the maximum delay is 7 days: more is 400 delay_too_long and stores nothing", async () => {
        const topic = await createTopic(tenant.client);
        const week = 7 * 24 * 3600;
        for (const m of [
          { value: "x", delaySeconds: week + 1 },
          { value: "x", deliverAt: Date.now() + (week + 3600) * 1000 },
        ]) {
          const res = await tenant.client.post(`${topicPath(topic)}/messages`, { messages: [{ value: "ok" }, m] });
          assertProblem(res, 400, "delay_too_long");
        }
        expect(await highWatermarks(tenant.client, topic)).toEqual([0]);
        await produce(tenant.client, topic, [
          { value: "a week", delaySeconds: week - 60 },
          { value: "past", deliverAt: Date.now() - 60_000 },
        ]);
        for (const m of [
          { value: "x", delaySeconds: -1 },
          { value: "x", delaySeconds: 1.5 },
          { value: "x", deliverAt: "soon" },
        ]) {
          const res = await tenant.client.post(`${topicPath(topic)}/messages`, { messages: [m] });
          assertProblem(res, 400);
        }
        expect(await highWatermarks(tenant.client, topic)).toEqual([2]);
        // The week-long delay is not received now; the message due in the past is.
        const group = uniq("g");
        await putGroup(tenant.client, topic, group, { startAt: "earliest" });
        const got = await receive(tenant.client, topic, group, { max: 100 });
        expect(got.map((m) => m.value)).toEqual(["past"]);
      });
    });

    // ---------------------------------------------------------------- seek

    describe("seek", () => {
      it('seek {to: "latest"} and {to: "earliest"} move the group, drop the leases in flight and answer the group view', async () => {
        const { topic, group } = await topicWithGroup(tenant.client);
        await produce(
          tenant.client,
          topic,
          Array.from({ length: 6 }, (_, i) => ({ value: `m-${i}` })),
        );
        const leased = await receive(tenant.client, topic, group, { max: 4, visibilityTimeoutSeconds: 60 });
        expect(leased.map((m) => m.offset)).toEqual([0, 1, 2, 3]);
        expect(sum(await view(tenant.client, topic, group), "inFlight")).toBe(4);

        const toLatest = await tenant.client.post(`${groupPath(topic, group)}/seek`, { to: "latest" });
        assertStatus(toLatest, 200);
        expect(toLatest.body).toEqual({
          partitions: [{ partition: 0, committedOffset: 6, highWatermark: 6, lag: 0, inFlight: 0 }],
          deadLettered: 0,
        });
        expect(await receive(tenant.client, topic, group, { max: 100 })).toEqual([]);
        const stale = await settle(tenant.client, topic, group, "ack", { receipts: leased.map((m) => m.receipt) });
        expect(stale.acked, "the dropped leases' receipts settle nothing").toBe(0);
        expect(stale.failed.map((f) => f.code)).toEqual(["receipt_expired", "receipt_expired", "receipt_expired", "receipt_expired"]);

        const toEarliest = await tenant.client.post(`${groupPath(topic, group)}/seek`, { to: "earliest" });
        assertStatus(toEarliest, 200);
        expect(toEarliest.body).toEqual({
          partitions: [{ partition: 0, committedOffset: 0, highWatermark: 6, lag: 6, inFlight: 0 }],
          deadLettered: 0,
        });
        const all = await receive(tenant.client, topic, group, { max: 100, visibilityTimeoutSeconds: 60 });
        expect(all.map((m) => [m.offset, m.value])).toEqual(Array.from({ length: 6 }, (_, i) => [i, `m-${i}`]));

        // Seek while everything is leased: the leases are dropped and delivery starts over.
        const again = await tenant.client.post(`${groupPath(topic, group)}/seek`, { to: "earliest" });
        assertStatus(again, 200);
        expect(again.body.partitions[0].inFlight).toBe(0);
        const redelivered = await receive(tenant.client, topic, group, { max: 100, visibilityTimeoutSeconds: 60 });
        expect(redelivered.map((m) => m.offset)).toEqual([0, 1, 2, 3, 4, 5]);
        const old = await settle(tenant.client, topic, group, "ack", { receipts: all.map((m) => m.receipt) });
        expect(old.acked).toBe(0);
        await ackAll(tenant.client, topic, group, redelivered);
        await expectDrained(tenant.client, topic, group);
      });

      it("seek {offset} moves every partition, {offset, partition} only that one", async () => {
        const { topic, group } = await topicWithGroup(tenant.client, { partitions: 2 });
        await produce(tenant.client, topic, [
          ...Array.from({ length: 5 }, (_, i) => ({ value: `p0-${i}`, partition: 0 })),
          ...Array.from({ length: 3 }, (_, i) => ({ value: `p1-${i}`, partition: 1 })),
        ]);
        const res = await tenant.client.post(`${groupPath(topic, group)}/seek`, { offset: 2 });
        assertStatus(res, 200);
        expect(res.body).toEqual({
          partitions: [
            { partition: 0, committedOffset: 2, highWatermark: 5, lag: 3, inFlight: 0 },
            { partition: 1, committedOffset: 2, highWatermark: 3, lag: 1, inFlight: 0 },
          ],
          deadLettered: 0,
        });
        const got = await receiveUntil(tenant.client, topic, group, 4, { visibilityTimeoutSeconds: 60 });
        expect(got.map((m) => m.value).sort()).toEqual(["p0-2", "p0-3", "p0-4", "p1-2"]);
        await ackAll(tenant.client, topic, group, got);

        const one = await tenant.client.post(`${groupPath(topic, group)}/seek`, { offset: 1, partition: 1 });
        assertStatus(one, 200);
        expect(one.body.partitions).toEqual([
          { partition: 0, committedOffset: 5, highWatermark: 5, lag: 0, inFlight: 0 },
          { partition: 1, committedOffset: 1, highWatermark: 3, lag: 2, inFlight: 0 },
        ]);
        const replay = await receiveUntil(tenant.client, topic, group, 2, { visibilityTimeoutSeconds: 60 });
        expect(replay.map((m) => [m.partition, m.offset, m.value])).toEqual([
          [1, 1, "p1-1"],
          [1, 2, "p1-2"],
        ]);
        await ackAll(tenant.client, topic, group, replay);
        await expectDrained(tenant.client, topic, group);
      });

      it("seek {timestamp} moves each partition to the first offset whose timestamp >= T", async () => {
        const { topic, group } = await topicWithGroup(tenant.client, { partitions: 2 });
        await produce(tenant.client, topic, [
          { value: "early-0", partition: 0 },
          { value: "early-1", partition: 0 },
          { value: "early-p1", partition: 1 },
        ]);
        // Make sure the second batch has a later timestamp than the first.
        const firstTs = (await readAll(tenant.client, topic, 0))[1].timestamp as number;
        while (Date.now() <= firstTs + 5) await sleep(10);
        await produce(tenant.client, topic, [
          { value: "late-0", partition: 0 },
          { value: "late-1", partition: 0 },
        ]);
        const p0 = await readAll(tenant.client, topic, 0);
        const p1 = await readAll(tenant.client, topic, 1);
        const T = p0[2].timestamp as number;
        expect(T, "the second batch is later").toBeGreaterThan(firstTs);
        const expectedP0 = p0.findIndex((m) => m.timestamp >= T);
        expect(expectedP0).toBe(2);
        expect(
          p1.filter((m) => m.timestamp >= T),
          "partition 1 has nothing that recent",
        ).toEqual([]);

        const res = await tenant.client.post(`${groupPath(topic, group)}/seek`, { timestamp: T });
        assertStatus(res, 200);
        expect(res.body.partitions).toEqual([
          { partition: 0, committedOffset: expectedP0, highWatermark: 4, lag: 4 - expectedP0, inFlight: 0 },
          // Nothing in partition 1 is that recent: it moves to its high watermark.
          { partition: 1, committedOffset: 1, highWatermark: 1, lag: 0, inFlight: 0 },
        ]);
        const got = await receiveUntil(tenant.client, topic, group, 2, { visibilityTimeoutSeconds: 60 });
        expect(got.map((m) => m.value)).toEqual(["late-0", "late-1"]);

        // A timestamp before everything: the start of every partition.
        const back = await tenant.client.post(`${groupPath(topic, group)}/seek`, { timestamp: 0 });
        assertStatus(back, 200);
        expect(back.body.partitions.map((p: PartitionView) => [p.committedOffset, p.inFlight])).toEqual([
          [0, 0],
          [0, 0],
        ]);
      });

      it("a seek racing with acks in flight never fails, and the group ends where the seek put it", async () => {
        const wrong: string[] = [];
        for (let round = 0; round < 6; round++) {
          const { topic, group } = await topicWithGroup(tenant.client);
          await produce(
            tenant.client,
            topic,
            Array.from({ length: 6 }, (_, i) => ({ value: `m-${i}` })),
          );
          const got: Received[] = [];
          for (let i = 0; i < 6; i++) got.push(...(await receive(tenant.client, topic, group, { max: 1, visibilityTimeoutSeconds: 60 })));
          const [seekRes, ...acks] = await Promise.all([
            tenant.client.post(`${groupPath(topic, group)}/seek`, { to: "latest" }),
            ...got.map((m) => settle(tenant.client, topic, group, "ack", { receipts: [m.receipt] })),
          ]);
          assertStatus(seekRes, 200);
          for (const r of acks as SettleResult[]) expect(r.acked + r.failed.length).toBe(1);
          const v = await view(tenant.client, topic, group);
          if (v.partitions[0].committedOffset !== 6 || v.partitions[0].inFlight !== 0)
            wrong.push(`round ${round}: ${JSON.stringify(v.partitions[0])}`);
        }
        expect(wrong, "views after seek {to: latest} raced with acks").toEqual([]);
      });

      it("refuses invalid seek bodies (400) and a partition that does not exist (404 partition_not_found)", async () => {
        const { topic, group } = await topicWithGroup(tenant.client, { partitions: 2 });
        await produce(tenant.client, topic, [{ value: "x", partition: 0 }]);
        for (const body of [
          {},
          { to: "middle" },
          { offset: -1 },
          { offset: 1.5 },
          { offset: "1" },
          { timestamp: "now" },
          { partition: 0 },
          { offset: 0, extra: 1 },
        ]) {
          const res = await tenant.client.post(`${groupPath(topic, group)}/seek`, body);
          expect(res.status, `${JSON.stringify(body)}: ${describeResponse(res)}`).toBe(400);
          assertProblem(res, 400);
        }
        assertProblem(await tenant.client.request("POST", `${groupPath(topic, group)}/seek`), 400);
        assertProblem(await tenant.client.post(`${groupPath(topic, group)}/seek`, { offset: 0, partition: 2 }), 404, "partition_not_found");
        // Nothing moved.
        expect((await view(tenant.client, topic, group)).partitions.map((p) => p.committedOffset)).toEqual([0, 0]);
      });
    });

    // ---------------------------------------------------------------- the group view

    describe("the group view: lag, inFlight, committedOffset", () => {
      it("counts messages in flight, moves committedOffset past contiguous acks only, and reaches lag 0 and inFlight 0", async () => {
        const { topic, group } = await topicWithGroup(tenant.client);
        await produce(
          tenant.client,
          topic,
          Array.from({ length: 5 }, (_, i) => ({ value: `m-${i}` })),
        );
        expect((await view(tenant.client, topic, group)).partitions).toEqual([
          { partition: 0, committedOffset: 0, highWatermark: 5, lag: 5, inFlight: 0 },
        ]);
        const got = await receive(tenant.client, topic, group, { max: 3, visibilityTimeoutSeconds: 60 });
        expect((await view(tenant.client, topic, group)).partitions).toEqual([
          { partition: 0, committedOffset: 0, highWatermark: 5, lag: 5, inFlight: 3 },
        ]);
        // Ack offset 1 only: the cursor cannot pass the unacked offset 0.
        await ackAll(tenant.client, topic, group, [got[1]]);
        expect((await view(tenant.client, topic, group)).partitions).toEqual([
          { partition: 0, committedOffset: 0, highWatermark: 5, lag: 5, inFlight: 2 },
        ]);
        await ackAll(tenant.client, topic, group, [got[0]]);
        expect((await view(tenant.client, topic, group)).partitions).toEqual([
          { partition: 0, committedOffset: 2, highWatermark: 5, lag: 3, inFlight: 1 },
        ]);
        await ackAll(tenant.client, topic, group, [got[2]]);
        const rest = await receive(tenant.client, topic, group, { max: 100, visibilityTimeoutSeconds: 60 });
        expect((await view(tenant.client, topic, group)).partitions).toEqual([
          { partition: 0, committedOffset: 3, highWatermark: 5, lag: 2, inFlight: 2 },
        ]);
        await ackAll(tenant.client, topic, group, rest);
        expect(await view(tenant.client, topic, group)).toEqual({
          partitions: [{ partition: 0, committedOffset: 5, highWatermark: 5, lag: 0, inFlight: 0 }],
          deadLettered: 0,
        });
      });

      it("acks sent concurrently for messages received one by one bring committedOffset to the high watermark (lag 0)", async () => {
        const stuck: string[] = [];
        for (let round = 0; round < 6; round++) {
          const { topic, group } = await topicWithGroup(tenant.client);
          await produce(
            tenant.client,
            topic,
            Array.from({ length: 6 }, (_, i) => ({ value: `m-${i}` })),
          );
          const got: Received[] = [];
          for (let i = 0; i < 6; i++) got.push(...(await receive(tenant.client, topic, group, { max: 1, visibilityTimeoutSeconds: 60 })));
          expect(got.map((m) => m.offset)).toEqual([0, 1, 2, 3, 4, 5]);
          const results = await Promise.all(got.map((m) => settle(tenant.client, topic, group, "ack", { receipts: [m.receipt] })));
          for (const r of results) expect(r).toEqual({ acked: 1, failed: [] });
          const v = await view(tenant.client, topic, group);
          if (v.partitions[0].committedOffset !== 6 || v.partitions[0].lag !== 0)
            stuck.push(`round ${round}: ${JSON.stringify(v.partitions[0])}`);
        }
        expect(stuck, "views after every message was acked").toEqual([]);
      });

      it("two groups on one topic are independent", async () => {
        const { topic, group } = await topicWithGroup(tenant.client);
        const other = uniq("g2");
        await putGroup(tenant.client, topic, other, { startAt: "earliest" });
        await produce(tenant.client, topic, [{ value: "shared-0" }, { value: "shared-1" }]);
        const a = await receive(tenant.client, topic, group, { max: 100 });
        const b = await receive(tenant.client, topic, other, { max: 100 });
        expect(a.map((m) => m.value)).toEqual(["shared-0", "shared-1"]);
        expect(b.map((m) => m.value)).toEqual(["shared-0", "shared-1"]);
        await ackAll(tenant.client, topic, group, a);
        await expectDrained(tenant.client, topic, group);
        expect(sum(await view(tenant.client, topic, other), "inFlight")).toBe(2);
        const crossed = await settle(tenant.client, topic, group, "ack", { receipts: b.map((m) => m.receipt) });
        expect(
          crossed.failed.map((f) => f.code),
          "a receipt of another group",
        ).toEqual(["receipt_unknown", "receipt_unknown"]);
      });
    });

    // ---------------------------------------------------------------- tenants

    describe("tenant isolation", () => {
      it("another tenant's receipt is receipt_unknown, and another tenant's topic and group answer 404 everywhere", async () => {
        const owner = await newTenant("grp-owner");
        const intruder = await newTenant("grp-intruder");
        // Both own a topic `orders` with a group `billing`.
        for (const t of [owner, intruder]) {
          assertStatus(await t.client.put(topicPath("orders"), {}), 201);
          await putGroup(t.client, "orders", "billing", { startAt: "earliest" });
          await produce(t.client, "orders", [{ value: `${t === owner ? "owner" : "intruder"}-msg` }]);
        }
        const ownerMsgs = await receive(owner.client, "orders", "billing", { max: 10, visibilityTimeoutSeconds: 60 });
        const intruderMsgs = await receive(intruder.client, "orders", "billing", { max: 10, visibilityTimeoutSeconds: 60 });
        expect(ownerMsgs.map((m) => m.value)).toEqual(["owner-msg"]);
        expect(intruderMsgs.map((m) => m.value)).toEqual(["intruder-msg"]);
        // Same topic name, group name, partition and offset: still not the intruder's receipt.
        for (const [action, extra] of [
          ["ack", {}],
          ["nack", {}],
          ["extend", { visibilityTimeoutSeconds: 30 }],
        ] as const) {
          const r = await settle(intruder.client, "orders", "billing", action, { receipts: [ownerMsgs[0].receipt], ...extra });
          expect(r.failed, action).toEqual([{ receipt: ownerMsgs[0].receipt, code: "receipt_unknown" }]);
          expect(
            Object.values(r).find((v) => typeof v === "number"),
            `${action}: nothing settled`,
          ).toBe(0);
        }
        expect(sum(await view(owner.client, "orders", "billing"), "inFlight"), "the owner's lease is untouched").toBe(1);
        await ackAll(owner.client, "orders", "billing", ownerMsgs);
        await ackAll(intruder.client, "orders", "billing", intruderMsgs);

        // The owner's own topic `private`, invisible to the intruder.
        const topic = await createTopic(owner.client);
        await putGroup(owner.client, topic, "billing", { startAt: "earliest" });
        await produce(owner.client, topic, [{ value: "secret" }]);
        const g = groupPath(topic, "billing");
        const calls: [string, () => Promise<ApiResponse>][] = [
          ["PUT group", () => intruder.client.put(g, {})],
          ["GET group", () => intruder.client.get(g)],
          ["receive", () => intruder.client.post(`${g}/receive`, {})],
          ["ack", () => intruder.client.post(`${g}/ack`, { receipts: ["x"] })],
          ["nack", () => intruder.client.post(`${g}/nack`, { receipts: ["x"] })],
          ["extend", () => intruder.client.post(`${g}/extend`, { receipts: ["x"], visibilityTimeoutSeconds: 5 })],
          ["seek", () => intruder.client.post(`${g}/seek`, { to: "latest" })],
          ["redrive", () => intruder.client.post(`${g}/redrive`, {})],
        ];
        for (const [what, call] of calls) {
          const res = await call();
          try {
            assertProblem(res, 404, "topic_not_found");
          } catch (err) {
            throw new Error(`${what}: ${(err as Error).message}`);
          }
        }
        // Nothing the intruder did touched the owner's group.
        expect((await view(owner.client, topic, "billing")).partitions).toEqual([
          { partition: 0, committedOffset: 0, highWatermark: 1, lag: 1, inFlight: 0 },
        ]);
        const mine = await receive(owner.client, topic, "billing", { max: 10 });
        expect(mine.map((m) => [m.value, m.attempt])).toEqual([["secret", 1]]);
      });
    });

    // ---------------------------------------------------------------- limits and validation

    describe("limits and validation", () => {
      it("more than 1,000 receipts is 413 too_many_receipts for ack, nack and extend; 1,000 are accepted and reported one by one", async () => {
        const { topic, group } = await topicWithGroup(tenant.client);
        await produce(tenant.client, topic, [{ value: "m" }]);
        const [m] = await receive(tenant.client, topic, group, { max: 1, visibilityTimeoutSeconds: 60 });
        const over = [m.receipt, ...Array.from({ length: 1000 }, (_, i) => `bogus-${i}`)];
        for (const [action, extra] of [
          ["ack", {}],
          ["nack", {}],
          ["extend", { visibilityTimeoutSeconds: 5 }],
        ] as const) {
          const res = await tenant.client.post(`${groupPath(topic, group)}/${action}`, { receipts: over, ...extra });
          const problem = assertProblem(res, 413, "too_many_receipts");
          expect(problem.detail).toMatch(/1,?000/);
        }
        // Nothing was settled by the refused calls: the lease is still in flight.
        expect(sum(await view(tenant.client, topic, group), "inFlight")).toBe(1);
        const exactly = [m.receipt, ...Array.from({ length: 999 }, (_, i) => `bogus-${i}`)];
        const res = await settle(tenant.client, topic, group, "ack", { receipts: exactly });
        expect(res.acked).toBe(1);
        expect(res.failed).toHaveLength(999);
        expect(new Set(res.failed.map((f) => f.code))).toEqual(new Set(["receipt_unknown"]));
        await expectDrained(tenant.client, topic, group);
      });

      it("receive refuses max 0 or > 1,000, visibilityTimeoutSeconds 0 or > 43,200, waitMs > 30,000 and unknown fields (400), leasing nothing", async () => {
        const { topic, group } = await topicWithGroup(tenant.client);
        await produce(tenant.client, topic, [{ value: "untouched" }]);
        const bad: Record<string, unknown>[] = [
          { max: 0 },
          { max: 1001 },
          { max: 1.5 },
          { max: "10" },
          { visibilityTimeoutSeconds: 0 },
          { visibilityTimeoutSeconds: 43_201 },
          { visibilityTimeoutSeconds: -1 },
          { waitMs: 30_001 },
          { waitMs: -1 },
          { unknown: true },
        ];
        for (const body of bad) {
          const res = await receiveRes(tenant.client, topic, group, body);
          expect(res.status, `${JSON.stringify(body)}: ${describeResponse(res)}`).toBe(400);
          assertProblem(res, 400);
        }
        assertProblem(
          await tenant.client.post(`${groupPath(topic, group)}/receive`, undefined, { raw: "{nope", contentType: "application/json" }),
          400,
          "malformed_json",
        );
        expect(sum(await view(tenant.client, topic, group), "inFlight"), "the refused receives leased nothing").toBe(0);
        // The limits themselves are accepted.
        const ok = await receive(tenant.client, topic, group, { max: 1000, visibilityTimeoutSeconds: 43_200, waitMs: 0 });
        expect(ok.map((m) => [m.value, m.attempt])).toEqual([["untouched", 1]]);
      });

      it("ack, nack and extend refuse malformed bodies (400) and settle nothing", async () => {
        const { topic, group } = await topicWithGroup(tenant.client);
        await produce(tenant.client, topic, [{ value: "m" }]);
        const [m] = await receive(tenant.client, topic, group, { max: 1, visibilityTimeoutSeconds: 60 });
        const g = groupPath(topic, group);
        const cases: [string, unknown][] = [
          ["ack", {}],
          ["ack", { receipts: m.receipt }],
          ["ack", { receipts: [m.receipt, 7] }],
          ["ack", { receipts: [m.receipt], extra: 1 }],
          ["nack", { receipts: [m.receipt], delaySeconds: -1 }],
          ["nack", { receipts: [m.receipt], delaySeconds: 1.5 }],
          ["extend", { receipts: [m.receipt] }],
          ["extend", { receipts: [m.receipt], visibilityTimeoutSeconds: 0 }],
          ["extend", { receipts: [m.receipt], visibilityTimeoutSeconds: 43_201 }],
        ];
        for (const [action, body] of cases) {
          const res = await tenant.client.post(`${g}/${action}`, body);
          expect(res.status, `${action} ${JSON.stringify(body)}: ${describeResponse(res)}`).toBe(400);
          assertProblem(res, 400);
        }
        for (const action of ["ack", "nack", "extend"]) {
          assertProblem(
            await tenant.client.post(`${g}/${action}`, undefined, { raw: "[", contentType: "application/json" }),
            400,
            "malformed_json",
          );
          assertProblem(await tenant.client.request("POST", `${g}/${action}`), 400);
        }
        expect(sum(await view(tenant.client, topic, group), "inFlight"), "still in flight").toBe(1);
        await ackAll(tenant.client, topic, group, [m]);
      });

      it("odd but well-formed input never gets a 5xx", async () => {
        const { topic, group } = await topicWithGroup(tenant.client, { partitions: 2 });
        const g = groupPath(topic, group);
        const odd = [
          "",
          ".",
          "..",
          "a.b",
          "a.b.c",
          "=".repeat(300),
          "é€😀",
          "\u0000",
          "A".repeat(5000),
          "MTIzLjQ1Ni43ODkuMC4x.AAAAAAAAAAAAAAAAAAAAAA",
        ];
        for (const [action, extra] of [
          ["ack", {}],
          ["nack", { delaySeconds: 0 }],
          ["extend", { visibilityTimeoutSeconds: 5 }],
        ] as const) {
          const res = await tenant.client.post(`${g}/${action}`, { receipts: odd, ...extra });
          assertStatus(res, 200);
          expect(res.body.failed.map((f: { code: string }) => f.code)).toEqual(odd.map(() => "receipt_unknown"));
        }
        assertStatus(await tenant.client.post(`${g}/seek`, { offset: Number.MAX_SAFE_INTEGER }), 200);
        assertStatus(await tenant.client.post(`${g}/seek`, { timestamp: Number.MAX_SAFE_INTEGER }), 200);
        assertStatus(await tenant.client.post(`${g}/seek`, { timestamp: -1 }), 200);
        assertStatus(await tenant.client.post(`${g}/redrive`, { max: 10_000 }), 200);
        assertStatus(await tenant.client.post(`${g}/nack`, { receipts: [], delaySeconds: 43_200 }), 200);
        expect(await receive(tenant.client, topic, group, { max: 1000 })).toEqual([]);
        await expectDrained(tenant.client, topic, group);
      });
    });
  });
}
