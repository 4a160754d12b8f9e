/**
 * The client: one object per service and key, with the API grouped as the contract groups it
 * (topics, groups, subscriptions, transactions, admin) and the helpers built on it (a batching
 * producer, a consumer loop, read iterators).
 */
import { Admin } from "./admin.ts";
import { Consumer, type ConsumerOptions, type Handler } from "./consumer.ts";
import { Groups } from "./groups.ts";
import { type ClientOptions, seg, Transport } from "./http.ts";
import { iterateMessages, type ReadOptions, readPage } from "./iterate.ts";
import { Producer, type ProducerOptions } from "./producer.ts";
import { Subscriptions } from "./subscriptions.ts";
import { Topics } from "./topics.ts";
import { Transactions } from "./transactions.ts";
import type { Message, MessageIn, ProduceResponse, ReadResult, ResponseBody, UsageRow } from "./types.ts";
import { toMessage } from "./values.ts";
import { BATCHES_TYPE } from "./batches.ts";
import { encodeProduceBatches, type ProduceBatch, type ProducedRange } from "./produce-batches.ts";

export class Reservoir {
  readonly http: Transport;
  readonly topics: Topics;
  readonly groups: Groups;
  readonly subscriptions: Subscriptions;
  readonly transactions: Transactions;
  /** Operator calls: construct the client with the operator token as `apiKey`. */
  readonly admin: Admin;

  constructor(opts: ClientOptions) {
    this.http = new Transport(opts);
    this.topics = new Topics(this.http);
    this.groups = new Groups(this.http, opts.verifyChecksums);
    this.subscriptions = new Subscriptions(this.http);
    this.transactions = new Transactions(this.http, opts.retry);
    this.admin = new Admin(this.http);
  }

  /**
   * One produce request, as it is: offsets in request order. Not retried (see `producer()` for
   * batching, retries and idempotency keys).
   */
  produce(topic: string, messages: (MessageIn | string | Uint8Array)[]): Promise<ProduceResponse> {
    return this.http.json("POST", `/v1/topics/${seg(topic)}/messages`, { body: { messages: messages.map(toMessage) } });
  }

  /**
   * One produce request in batches (docs/batches.md): each batch's messages go to its partition
   * (or the server's choice), stored as encoded here. One range of offsets per batch, in order.
   * Not retried. No idempotency keys, delays or transactions: `produce` has them.
   */
  async produceBatches(topic: string, batches: ProduceBatch[]): Promise<ProducedRange[]> {
    const body = encodeProduceBatches(batches);
    const answer = await this.http.json<{ batches: ProducedRange[] }>("POST", `/v1/topics/${seg(topic)}/messages`, {
      raw: { body, contentType: BATCHES_TYPE },
    });
    return answer.batches;
  }

  /** One read of a partition from an offset (with `waitMs`, a long-poll). */
  read(
    topic: string,
    partition: number,
    q: { offset?: number; limit?: number; waitMs?: number } = {},
    signal?: AbortSignal,
  ): Promise<ReadResult> {
    return readPage(this.http, topic, partition, { offset: q.offset ?? 0, limit: q.limit, waitMs: q.waitMs }, signal);
  }

  /** The first offset per partition whose timestamp is at or after `timestamp`. */
  async offsetsAt(topic: string, timestamp: number): Promise<ResponseBody<"getOffsets">["offsets"]> {
    return (await this.http.json<ResponseBody<"getOffsets">>("GET", `/v1/topics/${seg(topic)}/offsets`, { query: { timestamp } })).offsets;
  }

  /** The tenant's usage per UTC hour, `from` inclusive, `to` exclusive (manage scope). */
  async usage(q: { from?: number; to?: number } = {}): Promise<UsageRow[]> {
    return (await this.http.json<ResponseBody<"getUsage">>("GET", "/v1/usage", { query: { ...q, format: "json" } })).usage;
  }

  /** A batching producer with retries and idempotency keys. Close it (or flush) before exiting. */
  producer(opts?: ProducerOptions): Producer {
    return new Producer(this.http, opts);
  }

  /** Starts a consumer loop on a group; `stop()` it to end gracefully. */
  consume(topic: string, group: string, handler: Handler, opts?: ConsumerOptions): Consumer {
    return new Consumer(this.groups, topic, group, handler, opts);
  }

  /** The messages of a partition from an offset, as an async iterator (see ReadOptions). */
  messages(topic: string, partition: number, opts?: ReadOptions): AsyncGenerator<Message> {
    return iterateMessages(this.http, topic, partition, opts);
  }
}
