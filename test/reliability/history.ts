/**
 * The history of a campaign run: every request the clients made and what it answered, every
 * webhook delivery the sink saw, every injected fault, and the final reads of every partition.
 * One JSON object per line (JSONL), the run's header first; `npm run reliability -- --replay
 * <file>` feeds a history back through the checker.
 */
import { readFileSync, writeFileSync } from "node:fs";

export interface At {
  partition: number;
  offset: number;
}

/** A message as the checker knows it: `id` is its identity and its idempotency key. */
export interface LogEntry extends At {
  id: string;
  key?: string;
}

export type HistoryEvent =
  | { type: "run"; seed: number; mode: string; startedAt: string; config: Record<string, unknown> }
  /** One produce attempt; `status` is the HTTP status, or "error" for a network failure. */
  | {
      type: "produce";
      t: number;
      client: number;
      server: number;
      attempt: number;
      topic: string;
      ids: string[];
      keys: string[];
      status: number | "error";
      offsets?: At[];
      error?: string;
    }
  /** A read by offset during the load. */
  | {
      type: "read";
      t: number;
      topic: string;
      partition: number;
      from: number;
      status: number | "error";
      error?: string;
      messages: LogEntry[];
    }
  | {
      type: "receive";
      t: number;
      topic: string;
      group: string;
      consumer: number;
      status: number | "error";
      error?: string;
      messages: (LogEntry & { receipt: string; attempt: number })[];
    }
  | {
      type: "ack";
      t: number;
      topic: string;
      group: string;
      receipts: string[];
      status: number | "error";
      error?: string;
      failed?: { receipt: string; code: string }[];
    }
  /** A transaction's end as the client finally knows it (after retries and, if needed, a GET). */
  | {
      type: "txn";
      t: number;
      txn: string;
      topic: string;
      ids: string[];
      keys: string[];
      intent: "commit" | "rollback";
      outcome: "committed" | "rolled_back" | "unknown";
      offsets?: At[];
    }
  /** One webhook delivery attempt as the sink saw it (times: performance.now() of the sink). */
  | {
      type: "webhook";
      sub: string;
      webhookId: string;
      id: string;
      key?: string;
      partition: number;
      offset: number;
      attempt: number;
      status: number | "abandoned";
      arrivedAt: number;
      respondedAt: number;
    }
  | { type: "fault"; t: number; fault: Record<string, unknown> }
  /** A server process that exited on its own (not by the schedule's kill -9), with its last output. */
  | { type: "crash"; server: number; exit: string; output: string }
  | { type: "final"; topic: string; partition: number; earliest: number; highWatermark: number; messages: LogEntry[] }
  | { type: "group-final"; topic: string; group: string; committed: number[]; inFlight: number[] };

export function writeHistory(path: string, events: HistoryEvent[]): void {
  writeFileSync(path, events.map((e) => JSON.stringify(e)).join("\n") + "\n");
}

export function readHistory(path: string): HistoryEvent[] {
  return readFileSync(path, "utf8")
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l) as HistoryEvent);
}
