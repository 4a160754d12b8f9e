/**
 * The values the core exchanges with Postgres, through every driver an entry opens: array
 * parameters as literals (storage/metadata/sql-array.ts) and bigint columns as numbers
 * (storage/metadata/pg-types.ts). postgres.js runs with `fetch_types: false`, as on Workers,
 * where no array type of the database is known to the driver.
 */
import { PGlite } from "@electric-sql/pglite";
import { sql } from "drizzle-orm";
import { drizzle as pgliteDrizzle } from "drizzle-orm/pglite";
import { drizzle as postgresDrizzle } from "drizzle-orm/postgres-js";
import postgres from "postgres";
import { afterAll, describe, expect, it } from "vitest";
import { rows, type Database } from "../../storage/metadata/db.ts";
import { pgliteParsers, postgresJsTypes } from "../../storage/metadata/pg-types.ts";
import { arrayLiteral, sqlArray } from "../../storage/metadata/sql-array.ts";
import { freshDatabase } from "../support/postgres.ts";

const awkward = ['a"b', "c,d", "back\\slash", "{braces}", "NULL", "", " spaced ", "ünïcødé ✓", null];
const offsets = [0, 1, 2 ** 40, Number.MAX_SAFE_INTEGER];

const cleanups: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function drivers(): Promise<[string, Database][]> {
  const pglite = await PGlite.create({ parsers: pgliteParsers });
  cleanups.push(() => pglite.close());
  const database = await freshDatabase({ migrated: false });
  cleanups.push(() => database.drop());
  const client = postgres(database.url, { max: 1, fetch_types: false, types: postgresJsTypes, onnotice: () => {} });
  cleanups.push(() => client.end());
  return [
    ["PGlite", pgliteDrizzle(pglite) as unknown as Database],
    ["postgres.js without fetched types", postgresDrizzle(client) as unknown as Database],
  ];
}

describe("driver values", async () => {
  const all = await drivers();

  it.each(all)("%s: text and bigint arrays bind as literals, element for element", async (_, db) => {
    const found = await rows<{ t: string | null; n: number | null }>(
      db,
      sql`SELECT * FROM unnest(${sqlArray(awkward, "text")}, ${sqlArray(offsets, "bigint")}) AS x(t, n)`,
    );
    expect(found.map((r) => r.t)).toEqual(awkward);
    expect(found.map((r) => r.n)).toEqual([...offsets, ...Array(awkward.length - offsets.length).fill(null)]);
  });

  it.each(all)("%s: an empty array and a nested literal (int[] inside text[]) bind", async (_, db) => {
    const [r] = await rows<{ empty: number; nested: number[] }>(
      db,
      sql`SELECT cardinality(${sqlArray([], "int")}) AS empty,
                 to_json((${sqlArray([arrayLiteral([3, 1, 2])], "text")})[1]::int[]) AS nested`,
    );
    expect(r).toEqual({ empty: 0, nested: [3, 1, 2] });
  });

  it.each(all)("%s: bigint columns, counts and JSON arrays come back as numbers", async (_, db) => {
    const [r] = await rows<{ big: number; n: number; agg: number[][] }>(
      db,
      sql`SELECT ${Number.MAX_SAFE_INTEGER}::bigint AS big, count(*) AS n,
                 json_agg(json_build_array(x, x * 2::bigint) ORDER BY x) AS agg
          FROM generate_series(1::bigint, 3::bigint) x`,
    );
    expect(r).toEqual({
      big: Number.MAX_SAFE_INTEGER,
      n: 3,
      agg: [
        [1, 2],
        [2, 4],
        [3, 6],
      ],
    });
  });

  it("refuses what cannot be an array element", () => {
    expect(() => arrayLiteral([Number.NaN])).toThrow(TypeError);
    expect(() => arrayLiteral([Number.POSITIVE_INFINITY])).toThrow(TypeError);
  });
});
