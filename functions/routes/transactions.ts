/**
 * Transactions (API.md "Transactions"): begin, commit (with carried consumer-group acks),
 * rollback and state. Producing into one is the produce route with `transactionId`.
 */
import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { ReservoirError } from "../../storage/errors.ts";
import { commitTransaction } from "../../storage/transactions/commit.ts";
import { beginTransaction, getTransaction, rollbackTransaction } from "../../storage/transactions/transactions.ts";
import { requireScope } from "../auth.ts";
import { newWebhookSecret } from "../push/signing.ts";
import type { AppEnv } from "../runtime.ts";
import {
  BeginTransaction,
  BegunTransaction,
  CommitTransaction,
  CommittedTransaction,
  errorResponses,
  problemContent,
  TransactionParams,
  TransactionView,
} from "../schemas.ts";

const security = [{ apiKey: [] }];
const json = <T extends z.ZodType>(schema: T) => ({ "application/json": { schema } });
const DEFAULT_TIMEOUT_S = 60;
const DEFAULT_CHECK_INTERVAL_S = 30;
const MAX_RECEIPTS = 1000;

const beginRoute = createRoute({
  method: "post",
  path: "/v1/transactions",
  operationId: "beginTransaction",
  summary: "Begin a transaction: produce into it with transactionId, then commit or roll back",
  description:
    "At most 1,000 open transactions per tenant (429 too_many_transactions); each holds at most 10,000 messages and 64 MiB of records (413 transaction_too_large on produce). Without a checkUrl, a transaction still open at its timeout is rolled back; with one, it is checked back.",
  security,
  middleware: [requireScope("produce")] as const,
  request: { body: { content: json(BeginTransaction), required: false } },
  responses: {
    201: { description: "Begun", content: json(BegunTransaction) },
    429: { description: "too_many_transactions: the tenant has 1,000 open transactions", content: problemContent },
    ...errorResponses,
  },
});

const commitRoute = createRoute({
  method: "post",
  path: "/v1/transactions/{id}/commit",
  operationId: "commitTransaction",
  summary: "Commit: every message of the transaction and every carried ack take effect together",
  description:
    "Offsets come back in production order. Committing a committed transaction answers its offsets again. A producer may still commit or roll back a transaction with a checkUrl after its timeout, until a check-back ends it.",
  security,
  middleware: [requireScope("produce")] as const,
  request: { params: TransactionParams, body: { content: json(CommitTransaction), required: false } },
  responses: {
    200: { description: "Committed", content: json(CommittedTransaction) },
    409: {
      description:
        "transaction_not_open: rolled back or timed out; receipt_expired / receipt_unknown: an ack's receipt is not current, nothing took effect, the transaction is still open",
      content: problemContent,
    },
    ...errorResponses,
  },
});

const rollbackRoute = createRoute({
  method: "post",
  path: "/v1/transactions/{id}/rollback",
  operationId: "rollbackTransaction",
  summary: "Roll back: its messages are dropped, never seen by anyone (200 again if rolled back already)",
  security,
  middleware: [requireScope("produce")] as const,
  request: { params: TransactionParams, body: { content: json(z.object({}).strict()), required: false } },
  responses: {
    200: { description: "Rolled back", content: json(TransactionView) },
    409: { description: "transaction_not_open: it is committed", content: problemContent },
    ...errorResponses,
  },
});

const getRoute = createRoute({
  method: "get",
  path: "/v1/transactions/{id}",
  operationId: "getTransaction",
  summary: "The state of a transaction and how many check-backs it has had",
  security,
  middleware: [requireScope("produce")] as const,
  request: { params: TransactionParams },
  responses: { 200: { description: "The transaction", content: json(TransactionView) }, ...errorResponses },
});

export function registerTransactions(app: OpenAPIHono<AppEnv>) {
  app.openapi(beginRoute, async (c) => {
    const body = c.req.valid("json") ?? {};
    if (body.checkIntervalSeconds !== undefined && body.checkUrl === undefined) {
      throw new ReservoirError("invalid_request", "checkIntervalSeconds needs a checkUrl");
    }
    if (body.checkUrl !== undefined) await c.env.guard.check(new URL(body.checkUrl));
    const checkSecret = body.checkUrl !== undefined ? newWebhookSecret() : undefined;
    const begun = await beginTransaction(c.env.db, {
      tenantId: c.get("principal").tenantId,
      timeoutMs: (body.timeoutSeconds ?? DEFAULT_TIMEOUT_S) * 1000,
      checkUrl: body.checkUrl,
      checkSecret,
      checkIntervalMs: (body.checkIntervalSeconds ?? DEFAULT_CHECK_INTERVAL_S) * 1000,
      now: c.env.clock.now(),
    });
    return c.json({ transactionId: begun.id, expiresAt: begun.expiresAt, ...(checkSecret && { checkSecret }) }, 201);
  });

  app.openapi(commitRoute, async (c) => {
    const { id } = c.req.valid("param");
    const acks = c.req.valid("json")?.acks ?? [];
    const receipts = acks.reduce((n, a) => n + a.receipts.length, 0);
    if (receipts > MAX_RECEIPTS) {
      throw new ReservoirError("too_many_receipts", `${receipts} receipts in one commit; the limit is ${MAX_RECEIPTS}`, {
        limit: MAX_RECEIPTS,
      });
    }
    const committed = await commitTransaction(c.env.db, c.env.receipts, {
      tenantId: c.get("principal").tenantId,
      id,
      acks,
      now: c.env.clock.now(),
    });
    c.env.commits.wake(committed);
    if (committed.subscribedTopicIds.length > 0) c.env.push.wake(committed.subscribedTopicIds);
    return c.json({ offsets: committed.offsets }, 200);
  });

  app.openapi(rollbackRoute, async (c) => {
    const { id } = c.req.valid("param");
    const tenantId = c.get("principal").tenantId;
    await rollbackTransaction(c.env.db, tenantId, id, c.env.clock.now());
    return c.json(view(await getTransaction(c.env.db, tenantId, id)), 200);
  });

  app.openapi(getRoute, async (c) => {
    const { id } = c.req.valid("param");
    return c.json(view(await getTransaction(c.env.db, c.get("principal").tenantId, id)), 200);
  });
}

function view(row: { id: string; state: "open" | "committed" | "rolled_back"; expiresAt: number; checks: number }) {
  return { transactionId: row.id, state: row.state, expiresAt: row.expiresAt, checks: row.checks };
}
