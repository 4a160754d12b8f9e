/**
 * Check-back (API.md "Transactions"): an open transaction with a checkUrl whose timeout has
 * passed is asked about at once and then every checkIntervalSeconds. The request is
 * `POST checkUrl` with `{ "transactionId" }`, signed like a webhook (Standard Webhooks, keyed by
 * the transaction's checkSecret; webhook-id `<transactionId>_check_<n>`), through the same
 * transport as webhooks (so the address guard applies at every attempt). A 2xx whose JSON body
 * is `{ "action": "commit" | "rollback" | "unknown" }` decides; anything else counts as unknown.
 * Both runtimes call sweepTransactions: Node on a timer, Workers from the Cron Trigger.
 */
import type { ReceiptSigner } from "../../storage/groups/receipts.ts";
import type { Database } from "../../storage/metadata/db.ts";
import { claimDueChecks, expireUnchecked, pruneEnded, recordCheck, type CheckAnswer } from "../../storage/transactions/sweep.ts";
import type { TransactionRow } from "../../storage/transactions/transactions.ts";
import { signatureHeader } from "../push/signing.ts";
import type { WebhookTransport } from "../push/transport.ts";

/** How long a check may take before it counts as unknown. */
export const CHECK_TIMEOUT_MS = 10_000;
/** A claim outlives the check it covers, so no other instance checks the transaction meanwhile. */
const CLAIM_MS = CHECK_TIMEOUT_MS * 3;
const PRUNE_EVERY_MS = 10 * 60 * 1000;

export interface TransactionSweepIo {
  db: Database;
  receipts: ReceiptSigner;
  transport: WebhookTransport;
  now: () => number;
  /** A check's commit made messages visible in these topics (wake their webhook dispatch). */
  committed?: (subscribedTopicIds: number[]) => void;
}

export interface SweepResult {
  expired: number;
  checked: number;
}

let lastPrune = 0;

/** One pass: roll back what timed out without a checkUrl, then check back what is due. */
export async function sweepTransactions(io: TransactionSweepIo): Promise<SweepResult> {
  const expired = await expireUnchecked(io.db, io.now());
  const due = await claimDueChecks(io.db, io.now(), CLAIM_MS);
  await Promise.all(due.map((row) => checkOne(io, row)));
  if (io.now() - lastPrune > PRUNE_EVERY_MS) {
    lastPrune = io.now();
    await pruneEnded(io.db, io.now());
  }
  return { expired, checked: due.length };
}

async function checkOne(io: TransactionSweepIo, row: TransactionRow): Promise<void> {
  const answer = await ask(io, row);
  const recorded = await recordCheck(io.db, io.receipts, row, answer, io.now());
  const subscribed = recorded.committed?.subscribedTopicIds ?? [];
  if (subscribed.length > 0) io.committed?.(subscribed);
}

async function ask(io: TransactionSweepIo, row: TransactionRow): Promise<CheckAnswer> {
  const body = JSON.stringify({ transactionId: row.id });
  const id = `${row.id}_check_${row.checks + 1}`;
  const timestamp = Math.floor(io.now() / 1000);
  const outcome = await io.transport({
    url: new URL(row.checkUrl!),
    headers: {
      "content-type": "application/json",
      "user-agent": "Reservoir-Transactions/1",
      "webhook-id": id,
      "webhook-timestamp": String(timestamp),
      "webhook-signature": await signatureHeader([row.checkSecret!], id, timestamp, body),
    },
    body,
    timeoutMs: CHECK_TIMEOUT_MS,
    keepBody: true,
  });
  if (outcome.kind !== "response" || outcome.status < 200 || outcome.status >= 300) return "unknown";
  try {
    const action = (JSON.parse(outcome.body ?? "") as { action?: unknown })?.action;
    return action === "commit" || action === "rollback" ? action : "unknown";
  } catch {
    return "unknown";
  }
}
