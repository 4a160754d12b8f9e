/** Topics: create (idempotent PUT), list, describe, change, delete. */
import { seg, type Transport } from "./http.ts";
import type { ResponseBody, Topic, TopicDetail, TopicSettings } from "./types.ts";

export class Topics {
  constructor(private readonly http: Transport) {}

  /** Creates the topic, or returns it if it exists with the same settings (409 `topic_exists` if they differ). */
  create(name: string, settings: TopicSettings = {}): Promise<Topic> {
    return this.http.json<ResponseBody<"putTopic">>("PUT", `/v1/topics/${seg(name)}`, { body: settings });
  }

  async list(): Promise<Topic[]> {
    return (await this.http.json<ResponseBody<"listTopics">>("GET", "/v1/topics")).topics;
  }

  /** The topic with its high watermarks, earliest offsets and stored bytes. */
  get(name: string): Promise<TopicDetail> {
    return this.http.json<ResponseBody<"getTopic">>("GET", `/v1/topics/${seg(name)}`);
  }

  /** Grows partitions or changes retention (`retentionBytes: null` removes the size limit). */
  update(name: string, settings: TopicSettings): Promise<Topic> {
    return this.http.json<ResponseBody<"updateTopic">>("PATCH", `/v1/topics/${seg(name)}`, { body: settings });
  }

  async delete(name: string): Promise<void> {
    await this.http.json("DELETE", `/v1/topics/${seg(name)}`);
  }
}
