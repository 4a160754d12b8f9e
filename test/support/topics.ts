/** Topic calls shared by the contract suites (through HTTP; every check fails the test). */
import { expect } from "vitest";
import { assertStatus, describeResponse, type Api } from "./http.ts";

type Msg = Record<string, any>;

export const topicPath = (topic: string) => `/v1/topics/${encodeURIComponent(topic)}`;

export async function produce(client: Api, topic: string, messages: Msg[]): Promise<{ partition: number; offset: number }[]> {
  const res = await client.post(`${topicPath(topic)}/messages`, { messages });
  assertStatus(res, 200);
  expect(res.body.offsets, describeResponse(res)).toHaveLength(messages.length);
  return res.body.offsets;
}

/** Every message of a partition from `from` up to its high watermark. */
export async function readAll(client: Api, topic: string, partition: number, from = 0): Promise<Msg[]> {
  const out: Msg[] = [];
  let offset = from;
  for (let page = 0; page < 1000; page++) {
    const res = await client.get(`${topicPath(topic)}/partitions/${partition}/messages`, { query: { offset, limit: 1000 } });
    assertStatus(res, 200);
    out.push(...(res.body.messages as Msg[]));
    if (res.body.messages.length === 0 || res.body.nextOffset >= res.body.highWatermark) break;
    offset = res.body.nextOffset;
  }
  return out;
}

/** The topic's high watermarks (next offset per partition). */
export async function highWatermarks(client: Api, topic: string): Promise<number[]> {
  const res = await client.get(topicPath(topic));
  assertStatus(res, 200);
  expect(Array.isArray(res.body.highWatermarks), describeResponse(res)).toBe(true);
  return res.body.highWatermarks as number[];
}

/** Runs `reject` (which must get a refusal) and asserts the topic's high watermarks did not move. */
export async function expectNoChange(client: Api, topic: string, reject: () => Promise<unknown>): Promise<void> {
  const before = await highWatermarks(client, topic);
  await reject();
  expect(await highWatermarks(client, topic), "a rejected request must change nothing").toEqual(before);
}
