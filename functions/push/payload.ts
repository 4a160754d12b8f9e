/**
 * The body of a delivery: the message as the API shows it plus `id` and `attempt` (format
 * "json"), or a CloudEvents 1.0 structured-mode event (format "cloudevents").
 */
import { encodeBase64 } from "hono/utils/encode";
import type { SegmentRecord } from "../../storage/segment/codec.ts";
import type { PayloadFormat } from "../../storage/subscriptions/subscriptions.ts";
import { messageJson } from "../message-json.ts";

export interface Payload {
  contentType: string;
  body: string;
}

export interface DeliveredMessage {
  id: string;
  topic: string;
  partition: number;
  offset: number;
  attempt: number;
  record: SegmentRecord;
}

const decoder = new TextDecoder("utf-8", { ignoreBOM: true });

export function payload(format: PayloadFormat, m: DeliveredMessage): Payload {
  if (format === "cloudevents") return { contentType: "application/cloudevents+json", body: JSON.stringify(cloudEvent(m)) };
  const body = { id: m.id, ...messageJson(m.topic, m.partition, m.offset, m.record), attempt: m.attempt };
  return { contentType: "application/json", body: JSON.stringify(body) };
}

function cloudEvent(m: DeliveredMessage): Record<string, unknown> {
  const r = m.record;
  const headers = r.headers && Object.keys(r.headers).length > 0 ? r.headers : undefined;
  const declared = headers && Object.entries(headers).find(([k]) => k.toLowerCase() === "content-type")?.[1];
  const contentType = declared ?? (r.binary ? "application/octet-stream" : "text/plain; charset=utf-8");
  return {
    specversion: "1.0",
    id: m.id,
    source: `/v1/topics/${m.topic}`,
    type: "reservoir.message",
    time: new Date(r.timestamp).toISOString(),
    ...(r.key !== undefined && { subject: r.key }),
    datacontenttype: contentType,
    ...(r.binary ? { data_base64: encodeBase64(r.value.slice().buffer) } : { data: textData(decoder.decode(r.value), contentType) }),
    partition: m.partition,
    offset: m.offset,
    attempt: m.attempt,
    ...(headers && { headers: JSON.stringify(headers) }),
  };
}

/** A JSON content type's text is sent as the JSON value itself, as structured mode wants. */
function textData(text: string, contentType: string): unknown {
  if (!/^application\/([\w.+-]+\+)?json\b/i.test(contentType)) return text;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** The webhook-id: one per message and subscription, the same for every attempt. */
export function webhookId(subscriptionId: number, partition: number, offset: number): string {
  return `msg_${subscriptionId}_${partition}_${offset}`;
}
