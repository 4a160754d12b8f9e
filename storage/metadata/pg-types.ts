/**
 * How the core's values come back from Postgres, decided once for every driver the entries
 * open (postgres.js on Node and Workers, PGlite embedded, the tests' clients): `bigint` (int8:
 * offsets, ids, millisecond times, counts) as a JS number. They all stay far below 2^53 (an
 * offset per message for 285 years at a million messages a second), so rows are typed with
 * `number` and no module converts a column itself. postgres.js alone would give strings and
 * PGlite numbers; one parser for both means neither leaks.
 */
export const INT8_OID = 20;

export const parseInt8 = (text: string): number => Number(text);

/** postgres.js's `types` option. */
export const postgresJsTypes = {
  int8: { to: INT8_OID, from: [INT8_OID], serialize: (n: number | bigint | string) => String(n), parse: parseInt8 },
};

/** PGlite's `parsers` option. */
export const pgliteParsers = { [INT8_OID]: parseInt8 };
