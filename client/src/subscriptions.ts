/** Webhook subscriptions: settings, pause/resume, replay, secret rotation, the delivery log. */
import { seg, type Transport } from "./http.ts";
import type { Deliveries, ReplayRequest, ResponseBody, Subscription, SubscriptionSettings } from "./types.ts";

export class Subscriptions {
  constructor(private readonly http: Transport) {}

  private path(topic: string, name: string, action = ""): string {
    return `/v1/topics/${seg(topic)}/subscriptions/${seg(name)}${action ? `/${action}` : ""}`;
  }

  /** Creates (the answer carries the `secret`, shown only now) or updates a subscription. */
  put(topic: string, name: string, settings: SubscriptionSettings): Promise<Subscription> {
    return this.http.json<ResponseBody<"putSubscription">>("PUT", this.path(topic, name), { body: settings });
  }

  get(topic: string, name: string): Promise<Subscription> {
    return this.http.json<ResponseBody<"getSubscription">>("GET", this.path(topic, name));
  }

  async delete(topic: string, name: string): Promise<void> {
    await this.http.json("DELETE", this.path(topic, name));
  }

  pause(topic: string, name: string): Promise<Subscription> {
    return this.http.json<ResponseBody<"pauseSubscription">>("POST", this.path(topic, name, "pause"), { body: {} });
  }

  resume(topic: string, name: string): Promise<Subscription> {
    return this.http.json<ResponseBody<"resumeSubscription">>("POST", this.path(topic, name, "resume"), { body: {} });
  }

  /** Delivers again from an offset, a time or an end. */
  replay(topic: string, name: string, from: ReplayRequest): Promise<Subscription> {
    return this.http.json<ResponseBody<"replaySubscription">>("POST", this.path(topic, name, "replay"), { body: from });
  }

  /** A new secret (in the answer); the old one keeps signing for `graceSeconds`. */
  rotateSecret(topic: string, name: string, graceSeconds?: number): Promise<Subscription> {
    return this.http.json<ResponseBody<"rotateSubscriptionSecret">>("POST", this.path(topic, name, "rotate-secret"), {
      body: graceSeconds === undefined ? {} : { graceSeconds },
    });
  }

  /** The latest delivery attempts, newest first. */
  async deliveries(topic: string, name: string, limit?: number): Promise<Deliveries["deliveries"]> {
    return (await this.http.json<Deliveries>("GET", this.path(topic, name, "deliveries"), { query: { limit } })).deliveries;
  }
}
