/**
 * Text that Postgres can store. A `text` or `jsonb` value cannot hold U+0000, and UTF-8 cannot
 * encode a lone surrogate (the driver would send bytes Postgres refuses). Every string of a
 * request that may reach SQL or JSONB — path and query parameters, JSON bodies, idempotency
 * keys — is checked here, at the edge, so that such input is a 400 and never a failed query.
 *
 * Message keys, values and headers are not SQL: they are bytes in segments, where U+0000 is
 * an ordinary character (functions/produce/entries.ts refuses only lone surrogates there).
 * Receipts are not SQL either (below).
 */
import { ReservoirError } from "../storage/errors.ts";

/** Where in `value` (a parsed JSON value or a record of parameters) an unstorable string sits, or null. */
export function unstorableText(value: unknown, path: (string | number)[] = []): (string | number)[] | null {
  if (typeof value === "string") return storable(value) ? null : path;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const at = unstorableText(value[i], [...path, i]);
      if (at !== null) return at;
    }
    return null;
  }
  if (typeof value === "object" && value !== null) {
    for (const key of Object.keys(value)) {
      // A member's name is stored too (e.g. the names of a filter's headers, in JSONB).
      if (!storable(key)) return [...path, "(name)"];
      const at = unstorableText((value as Record<string, unknown>)[key], [...path, key]);
      if (at !== null) return at;
    }
  }
  return null;
}

/**
 * Members of a JSON body that never reach SQL: receipts are opaque tokens, verified by their
 * MAC and decoded into numbers; one that is garbage is that receipt's `receipt_unknown`, not
 * the whole request's 400, so that the other receipts of an ack still count.
 */
const OPAQUE_MEMBERS = new Set(["receipts"]);

/** Throws a 400 naming the first unstorable string of `value` (found at `where`: "query", "messages.3"). */
export function refuseUnstorableText(value: unknown, where: string): void {
  const stored =
    typeof value === "object" && value !== null && !Array.isArray(value)
      ? Object.fromEntries(Object.entries(value).filter(([key]) => !OPAQUE_MEMBERS.has(key)))
      : value;
  const path = unstorableText(stored);
  if (path === null) return;
  const at = [where, ...path].join(".");
  throw new ReservoirError("invalid_request", `${at}: text must not contain U+0000 or unpaired surrogates`, {
    errors: [{ path: at, message: "contains U+0000 or an unpaired surrogate" }],
  });
}

function storable(text: string): boolean {
  return !text.includes("\u0000") && text.isWellFormed();
}
