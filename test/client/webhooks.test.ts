// The SDK's Standard Webhooks verifier against the reference implementation (the
// `standardwebhooks` package), both ways, with the same secrets and payloads: what one signs the
// other accepts, and what either refuses (a changed body, id or timestamp, another secret, an old
// or future timestamp) the other refuses too. Fixed secrets and payloads (no randomness).
import { Webhook } from "standardwebhooks";
import { describe, expect, test } from "vitest";
import { signWebhook, verifyWebhook, WebhookVerificationError, webhookHeaders } from "../../client/src/index.ts";

const secrets = [
  "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
  // 32 bytes 0..31, as Reservoir's secrets are 32 random bytes.
  `whsec_${Buffer.from(Array.from({ length: 32 }, (_, i) => i)).toString("base64")}`,
];
const payloads = [
  '{"id":"msg_1_0_0","topic":"orders","partition":0,"offset":0,"timestamp":1767225600000,"value":"hello","attempt":1}',
  '{"transactionId":"tx_abc"}',
  // Non-ASCII and JSON escapes: the signature covers the bytes as sent.
  '{"value":"h\\u00e9llo w\u00f6rld \u{1F30A}","headers":{"a":"b"}}',
];
const now = 1_767_225_600_000;
const ts = Math.floor(now / 1000);

function reference(secret: string) {
  return new Webhook(secret);
}

/** Whether the reference accepts these headers and body (its clock is the real one: give it a fresh timestamp). */
function referenceAccepts(secret: string, headers: Record<string, string>, body: string): boolean {
  try {
    reference(secret).verify(body, headers);
    return true;
  } catch {
    return false;
  }
}

describe("Standard Webhooks verifier", () => {
  test("the SDK's signatures are the reference's, byte for byte", async () => {
    for (const secret of secrets) {
      for (const [i, body] of payloads.entries()) {
        const id = `msg_${i}`;
        expect(await signWebhook(secret, id, ts, body)).toBe(reference(secret).sign(id, new Date(ts * 1000), body));
      }
    }
  });

  test("what the reference signs, the SDK verifies, and returns the parsed body", async () => {
    for (const secret of secrets) {
      for (const [i, body] of payloads.entries()) {
        const headers = {
          "webhook-id": `msg_${i}`,
          "webhook-timestamp": String(ts),
          "webhook-signature": reference(secret).sign(`msg_${i}`, new Date(ts * 1000), body),
        };
        expect(await verifyWebhook(secret, headers, body, { now })).toEqual(JSON.parse(body));
        // A Fetch Headers object works the same.
        expect(await verifyWebhook(secret, new Headers(headers), body, { now })).toEqual(JSON.parse(body));
      }
    }
  });

  test("what the SDK signs, the reference verifies", async () => {
    const fresh = Math.floor(Date.now() / 1000);
    for (const secret of secrets) {
      for (const [i, body] of payloads.entries()) {
        const headers = await webhookHeaders(secret, `msg_${i}`, fresh, body);
        expect(referenceAccepts(secret, headers, body)).toBe(true);
      }
    }
  });

  test("tampering is refused by both: body, id, timestamp, secret", async () => {
    const fresh = Math.floor(Date.now() / 1000);
    const [secret, other] = secrets as [string, string];
    const body = payloads[0]!;
    const good = await webhookHeaders(secret, "msg_x", fresh, body);
    const cases: [string, Record<string, string>, string, string][] = [
      ["changed body", good, body.replace("hello", "hellO"), secret],
      ["changed id", { ...good, "webhook-id": "msg_y" }, body, secret],
      ["changed timestamp", { ...good, "webhook-timestamp": String(fresh - 1) }, body, secret],
      ["another secret", good, body, other],
      ["no signature", { ...good, "webhook-signature": "" }, body, secret],
      ["another version", { ...good, "webhook-signature": good["webhook-signature"]!.replace("v1,", "v2,") }, body, secret],
    ];
    for (const [what, headers, b, s] of cases) {
      expect(referenceAccepts(s, headers, b), `reference, ${what}`).toBe(false);
      await expect(verifyWebhook(s, headers, b), `SDK, ${what}`).rejects.toBeInstanceOf(WebhookVerificationError);
    }
  });

  test("timestamps outside five minutes are refused by both; inside, accepted", async () => {
    const secret = secrets[0]!;
    const body = payloads[1]!;
    const real = Math.floor(Date.now() / 1000);
    for (const [offset, accepted] of [
      [-301, false],
      [301, false],
      [-290, true],
      [290, true],
    ] as const) {
      const headers = await webhookHeaders(secret, "msg_t", real + offset, body);
      expect(referenceAccepts(secret, headers, body), `reference at ${offset} s`).toBe(accepted);
      const sdk = verifyWebhook(secret, headers, body, { now: real * 1000 });
      if (accepted) await expect(sdk).resolves.toEqual(JSON.parse(body));
      else await expect(sdk).rejects.toThrow(/too old|in the future/);
    }
  });

  test("during a rotation either secret verifies, and several signatures in one header are tried", async () => {
    const [oldSecret, newSecret] = secrets as [string, string];
    const body = payloads[0]!;
    const both = `${await signWebhook(newSecret, "msg_r", ts, body)} ${await signWebhook(oldSecret, "msg_r", ts, body)}`;
    const headers = { "webhook-id": "msg_r", "webhook-timestamp": String(ts), "webhook-signature": both };
    expect(await verifyWebhook(oldSecret, headers, body, { now })).toEqual(JSON.parse(body));
    expect(await verifyWebhook([newSecret], headers, body, { now })).toEqual(JSON.parse(body));
    const onlyOld = { ...headers, "webhook-signature": await signWebhook(oldSecret, "msg_r", ts, body) };
    expect(await verifyWebhook([newSecret, oldSecret], onlyOld, body, { now })).toEqual(JSON.parse(body));
    await expect(verifyWebhook(newSecret, onlyOld, body, { now })).rejects.toThrow("no signature matches");
  });
});
