/**
 * One Postgres array parameter, sent as an array literal (`{1,2,3}`) cast to its element type.
 * A literal is plain text to every driver, so none of them needs the database's array types:
 * the Worker's per-request clients skip reading pg_type (postgres.js's `fetch_types`), and
 * drizzle does not expand it into a list of parameters as it does a JS array. Results go the
 * other way as JSON (`json_agg`, `to_json`), which every driver parses without type lookups.
 */
import { sql, type SQL } from "drizzle-orm";

export type ArrayElement = "bigint" | "int" | "text";

export function sqlArray(items: readonly (number | string | null)[], type: ArrayElement): SQL {
  return sql`${arrayLiteral(items)}::${sql.raw(type)}[]`;
}

/** Postgres's array input syntax: numbers bare, strings quoted with `"` and `\` escaped, NULL. */
export function arrayLiteral(items: readonly (number | string | null)[]): string {
  const elements = items.map((item) => {
    if (item === null) return "NULL";
    if (typeof item === "number") {
      if (!Number.isFinite(item)) throw new TypeError(`not a finite number in an array parameter: ${item}`);
      return String(item);
    }
    return `"${item.replace(/[\\"]/g, "\\$&")}"`;
  });
  return `{${elements.join(",")}}`;
}
