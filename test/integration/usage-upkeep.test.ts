// Usage upkeep on a real Postgres (storage/usage/rollup.ts): roll-ups running on two
// connections at once (two instances) while deltas keep arriving move every delta exactly
// once, so the export's totals never change by a roll-up; the hourly storage sample records
// each tenant's stored bytes once per hour (the first sample wins).

import { sql } from "drizzle-orm";
import { drizzle } from "drizzle-orm/postgres-js";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Database, rows } from "../../storage/metadata/db.ts";
import { postgresJsTypes } from "../../storage/metadata/pg-types.ts";
import { createTenant } from "../../storage/tenancy/tenants.ts";
import { usageRows } from "../../storage/usage/export.ts";
import { recordUsage } from "../../storage/usage/meter.ts";
import { rollUpUsage, sampleStorage, usageUpkeep } from "../../storage/usage/rollup.ts";
import { freshDatabase, type FreshDatabase } from "../support/postgres.ts";

describe("usage upkeep", () => {
  let fresh: FreshDatabase;
  let clients: ReturnType<typeof postgres>[] = [];
  let dbs: Database[] = [];

  beforeAll(async () => {
    fresh = await freshDatabase();
    clients = [0, 1].map(() => postgres(fresh.url, { max: 4, types: postgresJsTypes, onnotice: () => {} }));
    dbs = clients.map((c) => drizzle(c) as unknown as Database);
  }, 60_000);

  afterAll(async () => {
    for (const c of clients) await c.end();
    await fresh?.drop();
  });

  async function totals(db: Database, tenantId: string) {
    const sum: Record<string, number> = {};
    for await (const row of usageRows(db, { tenantId, from: 0, to: 8.64e15 })) {
      for (const [k, v] of Object.entries(row)) if (typeof v === "number" && k !== "hour") sum[k] = (sum[k] ?? 0) + v;
    }
    return sum;
  }

  it("roll-ups on two connections, concurrent with new deltas, move every delta exactly once", async () => {
    const tenants = [await createTenant(dbs[0], "a", {}), await createTenant(dbs[0], "b", {})];
    const expected = tenants.map(() => ({ messagesIn: 0, bytesIn: 0, requests: 0 }));
    let writing = true;
    const writer = (async () => {
      for (let i = 0; i < 600; i++) {
        const t = i % 2;
        const delta = { messagesIn: 1 + (i % 3), bytesIn: 100 + i, requests: 1 };
        await recordUsage(dbs[0], tenants[t].tenantId, delta);
        expected[t].messagesIn += delta.messagesIn;
        expected[t].bytesIn += delta.bytesIn;
        expected[t].requests += 1;
      }
      writing = false;
    })();
    // Small batches, so that the two roll-ups interleave many times.
    const roller = async (db: Database) => {
      while (writing) await rollUpUsage(db, 7);
    };
    await Promise.all([writer, roller(dbs[0]), roller(dbs[1])]);
    for (const [t, tenant] of tenants.entries()) {
      expect(await totals(dbs[1], tenant.tenantId)).toMatchObject(expected[t]);
    }
    await Promise.all([usageUpkeep(dbs[0]), usageUpkeep(dbs[1])]);
    const [left] = await rows<{ n: string | number }>(dbs[0], sql`SELECT count(*) AS n FROM usage_deltas`);
    expect(Number(left.n)).toBe(0);
    for (const [t, tenant] of tenants.entries()) {
      expect(await totals(dbs[0], tenant.tenantId)).toMatchObject(expected[t]);
    }
  });

  it("samples each tenant's stored bytes once per hour: the first sample wins", async () => {
    const t = await createTenant(dbs[0], "stored", {});
    await dbs[0].execute(
      sql`INSERT INTO segments (id, tenant_id, object_key, byte_length) VALUES ('s1-' || ${t.tenantId}, ${t.tenantId}, 'k1', 1000), ('s2-' || ${t.tenantId}, ${t.tenantId}, 'k2', 234)`,
    );
    expect(await sampleStorage(dbs[0])).toBeGreaterThan(0);
    await dbs[0].execute(
      sql`INSERT INTO segments (id, tenant_id, object_key, byte_length) VALUES ('s3-' || ${t.tenantId}, ${t.tenantId}, 'k3', 5000)`,
    );
    await sampleStorage(dbs[1]);
    expect((await totals(dbs[0], t.tenantId)).storageByteHours).toBe(1234);
  });

  it("reads a range of more rows than a page, in hour order, each once", async () => {
    const t = await createTenant(dbs[0], "long", {});
    const HOURS = 2_345;
    // Alternate hours rolled up and still in deltas, so that a page mixes both.
    await dbs[0].execute(sql`INSERT INTO usage_hourly (tenant_id, hour, requests)
      SELECT ${t.tenantId}, h::bigint * 3600000, 1 FROM generate_series(0, ${HOURS - 1}) AS h WHERE h % 2 = 0`);
    await dbs[0].execute(sql`INSERT INTO usage_deltas (tenant_id, hour, requests)
      SELECT ${t.tenantId}, h::bigint * 3600000, 1 FROM generate_series(0, ${HOURS - 1}) AS h`);
    const hours: number[] = [];
    for await (const row of usageRows(dbs[1], { tenantId: t.tenantId, from: 0, to: HOURS * 3_600_000 })) {
      hours.push(row.hour);
      expect(row.requests).toBe(row.hour % 7_200_000 === 0 ? 2 : 1);
    }
    expect(hours).toEqual(Array.from({ length: HOURS }, (_, h) => h * 3_600_000));
  });
});
