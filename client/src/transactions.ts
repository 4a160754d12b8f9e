/**
 * Transactions: begin, produce into (any topics; nothing is visible before commit), commit with
 * the acks of what was consumed, or roll back. Commit and rollback are safe to repeat (a
 * committed transaction answers its offsets again), so they are retried on retryable errors;
 * producing into a transaction is not (a repeat would add the messages twice).
 */
import { seg, type Transport } from "./http.ts";
import { type RetryPolicy, withRetries } from "./retry.ts";
import type {
  BeginTransactionRequest,
  CommitTransactionRequest,
  CommitTransactionResponse,
  MessageIn,
  ProducePendingResponse,
  ResponseBody,
  Transaction,
} from "./types.ts";
import { toMessage } from "./values.ts";

export type TransactionAcks = NonNullable<CommitTransactionRequest["acks"]>;

export class Transactions {
  constructor(
    private readonly http: Transport,
    private readonly retry: RetryPolicy = {},
  ) {}

  async begin(opts: BeginTransactionRequest = {}): Promise<TransactionHandle> {
    const res = await this.http.json<ResponseBody<"beginTransaction">>("POST", "/v1/transactions", { body: opts });
    return new TransactionHandle(this, res.transactionId, res.expiresAt, res.checkSecret);
  }

  get(transactionId: string): Promise<Transaction> {
    return this.http.json("GET", `/v1/transactions/${seg(transactionId)}`);
  }

  async produce(transactionId: string, topic: string, messages: (MessageIn | string | Uint8Array)[]): Promise<number> {
    const res = await this.http.json<ProducePendingResponse>("POST", `/v1/topics/${seg(topic)}/messages`, {
      body: { transactionId, messages: messages.map(toMessage) },
    });
    return res.pending;
  }

  commit(transactionId: string, acks?: TransactionAcks): Promise<CommitTransactionResponse> {
    const body = acks === undefined ? {} : { acks };
    return withRetries(() => this.http.json("POST", `/v1/transactions/${seg(transactionId)}/commit`, { body }), this.retry);
  }

  async rollback(transactionId: string): Promise<void> {
    await withRetries(() => this.http.json("POST", `/v1/transactions/${seg(transactionId)}/rollback`, { body: {} }), this.retry);
  }

  /**
   * Runs `work` in a new transaction and commits it, with the acks `work` recorded through
   * `tx.ack(...)`; rolls back if `work` throws (and rethrows).
   */
  async run<T>(
    work: (tx: TransactionHandle) => Promise<T>,
    opts: BeginTransactionRequest = {},
  ): Promise<{ offsets: CommitTransactionResponse["offsets"]; result: T }> {
    const tx = await this.begin(opts);
    let result: T;
    try {
      result = await work(tx);
    } catch (error) {
      await tx.rollback().catch(() => {
        // The transaction times out and rolls back by itself; the work's error is the one to see.
      });
      throw error;
    }
    const { offsets } = await tx.commit();
    return { offsets, result };
  }
}

/** One open transaction. */
export class TransactionHandle {
  constructor(
    private readonly transactions: Transactions,
    readonly id: string,
    readonly expiresAt: number,
    /** The check-back secret (`whsec_…`), when begun with a `checkUrl`. */
    readonly checkSecret?: string,
  ) {}

  /** Adds messages to the transaction; resolves to how many this call added. */
  produce(topic: string, messages: (MessageIn | string | Uint8Array)[]): Promise<number> {
    return this.transactions.produce(this.id, topic, messages);
  }

  private readonly recorded: TransactionAcks = [];

  /** Records receipts (of messages this transaction consumed) for the commit to ack. */
  ack(topic: string, group: string, receipts: string[]): void {
    this.recorded.push({ topic, group, receipts });
  }

  /**
   * Makes the messages visible and applies the acks (those recorded with `ack` plus `acks`),
   * all or nothing.
   */
  commit(acks: TransactionAcks = []): Promise<CommitTransactionResponse> {
    const all = [...this.recorded, ...acks];
    return this.transactions.commit(this.id, all.length > 0 ? all : undefined);
  }

  rollback(): Promise<void> {
    return this.transactions.rollback(this.id);
  }

  state(): Promise<Transaction> {
    return this.transactions.get(this.id);
  }
}
