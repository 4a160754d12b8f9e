// A client of the answer in batches (functions/stored-batches.ts): the SDK's decoder
// (client/src/batches.ts, written from docs/batches.md), with each message rebuilt as the JSON
// form shows it (value or valueBase64, no receipt), so that tests can compare the two.
import { BATCHES_TYPE, decodeBatchesAnswer } from "../../client/src/batches.ts";

export { BATCHES_TYPE };

export interface BatchesAnswer {
  status: number;
  contentType: string | null;
  leases: { partition: number; firstOffset: number; lastOffset: number; receipt: string; attempt: number }[];
  messages: Record<string, unknown>[];
  /** The outcome of the request's `ack` receipts, when it had some. */
  ack?: { acked: number; failed: { receipt: string; code: string; offset?: number }[] };
}

export async function fetchBatches(url: string, token: string, json: unknown, topic: string): Promise<BatchesAnswer> {
  const res = await fetch(url, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, accept: BATCHES_TYPE, "content-type": "application/json" },
    body: JSON.stringify(json),
  });
  const bytes = new Uint8Array(await res.arrayBuffer());
  if (res.status !== 200) throw new Error(`POST ${url} answered ${res.status}: ${new TextDecoder().decode(bytes)}`);
  const { leases, messages, ack } = decodeBatchesAnswer(bytes);
  return {
    status: res.status,
    contentType: res.headers.get("content-type"),
    ...(ack && { ack }),
    leases,
    messages: messages.map((m) => {
      const out: Record<string, unknown> = { topic, partition: m.partition, offset: m.offset, timestamp: m.timestamp };
      if (m.key !== undefined) out.key = m.key;
      if (m.headers) out.headers = m.headers;
      if (m.binary) out.valueBase64 = Buffer.from(m.value).toString("base64");
      else out.value = new TextDecoder("utf-8", { fatal: true }).decode(m.value);
      out.attempt = m.attempt;
      return out;
    }),
  };
}
