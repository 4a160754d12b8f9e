/**
 * Who signed an SQS request. The access key id is a key's keyId; its secret is that key's
 * apiKey, which the server does not store but derives again from the deployment secret
 * (storage/tenancy/derived-keys.ts). The signature is checked first, without the database;
 * then the derived key goes through the very key check /v1's Bearer keys do (one statement:
 * the key by its hash, quotas, the request counted), so a deleted key is refused at once.
 */
import type { Context } from "hono";
import { sha256Hex } from "../../storage/metadata/secrets.ts";
import { deriveApiKey } from "../../storage/tenancy/derived-keys.ts";
import { authenticate, keyHasHash, type Principal } from "../../storage/tenancy/tenants.ts";
import type { AppEnv } from "../runtime.ts";
import { SqsError } from "./errors.ts";
import { readSignature } from "./sigv4.ts";

const KEY_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const unknownKey = () => new SqsError("InvalidClientTokenId", "The security token included in the request is invalid.");

export async function authenticateSigV4(
  c: Context<AppEnv>,
  body: Uint8Array,
  bytes: number,
): Promise<{ principal: Principal; region: string }> {
  const signed = readSignature(c.req.raw, body, c.env.clock.now());
  if (!KEY_ID.test(signed.accessKeyId)) throw unknownKey();
  const apiKey = deriveApiKey(c.env.keySecret, signed.accessKeyId);
  if (!(await signed.check(apiKey))) {
    // Which refusal: an unknown key id (or one made before keys were derived) is not a bad signature.
    if (!(await keyHasHash(c.env.db, signed.accessKeyId, sha256Hex(apiKey)))) throw unknownKey();
    throw new SqsError(
      "SignatureDoesNotMatch",
      "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.",
    );
  }
  const principal = await authenticate(c.env.db, apiKey, bytes);
  if (!principal || principal.keyId !== signed.accessKeyId) throw unknownKey();
  return { principal, region: signed.region };
}
