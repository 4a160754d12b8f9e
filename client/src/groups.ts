/** Consumer groups: settings, receive (long-poll), ack, nack, extend, seek, redrive, the view. */
import { BATCHES_TYPE, type BatchAcked, type BatchLease, type BatchMessage, decodeBatchesAnswer } from "./batches.ts";
import { seg, type Transport } from "./http.ts";
import type {
  AckResponse,
  ExtendResponse,
  Group,
  GroupSettings,
  GroupView,
  NackResponse,
  ReceiptRef,
  ReceivedMessage,
  ReceiveRequest,
  ResponseBody,
  SeekRequest,
} from "./types.ts";

export class Groups {
  constructor(
    private readonly http: Transport,
    /** Answers in batches: check each batch's CRC32C (ClientOptions.verifyChecksums). */
    private readonly verifyChecksums = false,
  ) {}

  private path(topic: string, group: string, action = ""): string {
    return `/v1/topics/${seg(topic)}/groups/${seg(group)}${action ? `/${action}` : ""}`;
  }

  /** Creates the group or updates its settings (never its position: see `seek`). */
  put(topic: string, group: string, settings: GroupSettings = {}): Promise<Group> {
    return this.http.json<ResponseBody<"putGroup">>("PUT", this.path(topic, group), { body: settings });
  }

  /** Committed offsets, lag and in-flight counts per partition, and the dead-letter count. */
  get(topic: string, group: string): Promise<GroupView> {
    return this.http.json<ResponseBody<"getGroup">>("GET", this.path(topic, group));
  }

  /** Leases up to `max` messages; with `waitMs`, waits for some. */
  async receive(topic: string, group: string, request: ReceiveRequest = {}, signal?: AbortSignal): Promise<ReceivedMessage[]> {
    const res = await this.http.json<ResponseBody<"receiveMessages">>("POST", this.path(topic, group, "receive"), {
      body: request,
      waitMs: request.waitMs,
      signal,
    });
    return res.messages;
  }

  /**
   * The same lease, answered in batches: the stored bytes, decoded here (docs/batches.md). The
   * fastest receive for large batches; there is no receipt per message: settle with the leases'
   * receipts, or a part of one ({receipt, firstOffset, lastOffset}). With `request.ack`, those
   * receipts are acknowledged first, in the same call, and `ack` says how that went. With the
   * client's `verifyChecksums`, each batch's CRC32C is checked: an answer that fails it throws
   * (its messages stay leased until their visibility timeout).
   */
  async receiveBatches(
    topic: string,
    group: string,
    request: ReceiveRequest = {},
    signal?: AbortSignal,
  ): Promise<{ leases: BatchLease[]; messages: BatchMessage[]; ack?: BatchAcked }> {
    const bytes = await this.http.bytes("POST", this.path(topic, group, "receive"), {
      body: request,
      waitMs: request.waitMs,
      signal,
      accept: BATCHES_TYPE,
    });
    return decodeBatchesAnswer(bytes, { verifyChecksums: this.verifyChecksums });
  }

  ack(topic: string, group: string, receipts: ReceiptRef[]): Promise<AckResponse> {
    return this.http.json("POST", this.path(topic, group, "ack"), { body: { receipts } });
  }

  /** Makes the messages visible again after `delaySeconds` (default at once). */
  nack(topic: string, group: string, receipts: ReceiptRef[], delaySeconds?: number): Promise<NackResponse> {
    return this.http.json("POST", this.path(topic, group, "nack"), { body: { receipts, delaySeconds } });
  }

  extend(topic: string, group: string, receipts: ReceiptRef[], visibilityTimeoutSeconds: number): Promise<ExtendResponse> {
    return this.http.json("POST", this.path(topic, group, "extend"), { body: { receipts, visibilityTimeoutSeconds } });
  }

  /** Moves the group to an offset (of one partition or all), a time, or an end; leases in flight are dropped. */
  seek(topic: string, group: string, to: SeekRequest): Promise<GroupView> {
    return this.http.json<ResponseBody<"seekGroup">>("POST", this.path(topic, group, "seek"), { body: to });
  }

  /** Moves up to `max` of the group's dead letters back to the topic. */
  async redrive(topic: string, group: string, max?: number): Promise<number> {
    const res = await this.http.json<ResponseBody<"redriveDeadLetters">>("POST", this.path(topic, group, "redrive"), {
      body: max === undefined ? {} : { max },
    });
    return res.redriven;
  }
}
