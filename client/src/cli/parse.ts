/** Flag values checked before anything is sent: a bad one is a UsageError (exit 2). */
import type { StartFrom } from "../iterate.ts";
import { UsageError } from "./errors.ts";

export function int(name: string, min = 0, max = Number.MAX_SAFE_INTEGER) {
  return (raw: string): number => {
    const n = Number(raw);
    if (!/^-?\d+$/.test(raw.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
      throw new UsageError(`${name} must be a whole number from ${min} to ${max}, not "${raw}"`);
    }
    return n;
  };
}

/** A time: ms since the epoch, or an ISO 8601 date (`2026-01-01T00:00:00Z`). */
export function timestamp(name: string) {
  return (raw: string): number => {
    if (/^\d+$/.test(raw)) return Number(raw);
    const t = Date.parse(raw);
    if (Number.isNaN(t)) throw new UsageError(`${name} must be ms since the epoch or an ISO 8601 time, not "${raw}"`);
    return t;
  };
}

/** `earliest`, `latest`, an offset, or a time (`@` then ms or ISO 8601). */
export function startFrom(raw: string): StartFrom {
  if (raw === "earliest" || raw === "latest") return raw;
  if (raw.startsWith("@")) return { timestamp: timestamp("--from @time")(raw.slice(1)) };
  return int("--from (earliest, latest, an offset, or @time)")(raw);
}
