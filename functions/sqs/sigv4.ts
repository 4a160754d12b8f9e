/**
 * AWS Signature Version 4, checked rather than made: the request's own Authorization header
 * names the key, the scope and the signed headers; the signature is computed again with
 * @smithy/signature-v4 (the AWS SDK's signer) over exactly those headers and the body, and
 * compared in constant time. Header-signed requests only (what SDKs and `curl --aws-sigv4`
 * send); query-string presigning is not accepted.
 */
import { SignatureV4 } from "@smithy/signature-v4";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex } from "@noble/hashes/utils.js";
import { secretsEqual } from "../../storage/metadata/secrets.ts";
import { SqsError } from "./errors.ts";

/** AWS's limit between the request's X-Amz-Date and the server's clock. */
export const MAX_SKEW_MS = 15 * 60 * 1000;

export interface SignedRequest {
  accessKeyId: string;
  region: string;
  check(secretAccessKey: string): Promise<boolean>;
}

/** The Checksum the signer wants (SHA-256, or HMAC-SHA256 when given a secret), from @noble/hashes: pure JS on both runtimes. */
class NobleSha256 {
  private readonly hash: { update(data: Uint8Array): unknown; digest(): Uint8Array };
  constructor(secret?: string | Uint8Array | ArrayBuffer | ArrayBufferView) {
    this.hash = secret === undefined ? sha256.create() : hmac.create(sha256, toBytes(secret));
  }
  update(data: string | Uint8Array | ArrayBuffer | ArrayBufferView): void {
    this.hash.update(toBytes(data));
  }
  async digest(): Promise<Uint8Array> {
    return this.hash.digest();
  }
  reset(): void {}
}

function toBytes(data: string | Uint8Array | ArrayBuffer | ArrayBufferView): Uint8Array {
  if (typeof data === "string") return new TextEncoder().encode(data);
  if (data instanceof Uint8Array) return data;
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return new Uint8Array(data);
}

const AUTH =
  /^AWS4-HMAC-SHA256\s+Credential=([^/\s,]+)\/(\d{8})\/([^/\s,]+)\/([^/\s,]+)\/aws4_request,\s*SignedHeaders=([a-z0-9;_.-]+),\s*Signature=([0-9a-f]{64})\s*$/;
const AMZ_DATE = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/;

/**
 * Reads the signature of `request` (whose body is `body`), or throws the SQS refusal: no
 * signature (MissingAuthenticationToken), a malformed one (IncompleteSignature), a date more
 * than 15 minutes away (RequestExpired), another service (SignatureDoesNotMatch).
 */
export function readSignature(request: Request, body: Uint8Array, now: number): SignedRequest {
  const header = request.headers.get("authorization");
  if (!header?.startsWith("AWS4-HMAC-SHA256")) {
    throw new SqsError("MissingAuthenticationToken", "Request is missing Authentication Token");
  }
  const match = AUTH.exec(header!);
  if (!match) throw new SqsError("IncompleteSignature", "The Authorization header is not a well-formed AWS Signature Version 4");
  const [, accessKeyId, shortDate, region, service, signedList, signature] = match;
  const amzDate = request.headers.get("x-amz-date");
  const date = amzDate ? AMZ_DATE.exec(amzDate) : null;
  if (!date) throw new SqsError("IncompleteSignature", "The request must carry an X-Amz-Date header (yyyyMMddTHHmmssZ)");
  const signingDate = new Date(Date.UTC(+date[1], +date[2] - 1, +date[3], +date[4], +date[5], +date[6]));
  if (Number.isNaN(signingDate.getTime()) || amzDate!.slice(0, 8) !== shortDate) {
    throw new SqsError("IncompleteSignature", "X-Amz-Date does not agree with the credential scope's date");
  }
  if (Math.abs(signingDate.getTime() - now) > MAX_SKEW_MS) {
    throw new SqsError(
      "RequestExpired",
      `Signature expired: ${amzDate} is more than 15 minutes away from the server's time (${new Date(now).toISOString()})`,
    );
  }
  // A declared payload hash must be the body's: the signer trusts the header over the body.
  const declaredHash = request.headers.get("x-amz-content-sha256");
  if (declaredHash !== null && declaredHash !== bytesToHex(sha256(body))) {
    throw new SqsError(
      "SignatureDoesNotMatch",
      "The x-amz-content-sha256 header does not match the request body (an unsigned payload is not accepted).",
    );
  }
  const signed = signedList.split(";");
  if (!signed.includes("host")) throw new SqsError("IncompleteSignature", "The signed headers must include host");
  const headers: Record<string, string> = {};
  for (const name of signed) {
    const value = request.headers.get(name);
    if (value === null) throw new SqsError("IncompleteSignature", `The signed header '${name}' is missing from the request`);
    headers[name] = value;
  }
  const url = new URL(request.url);
  const query: Record<string, string | string[]> = {};
  for (const [k, v] of url.searchParams) {
    const seen = query[k];
    query[k] = seen === undefined ? v : Array.isArray(seen) ? [...seen, v] : [seen, v];
  }
  return {
    accessKeyId,
    region,
    async check(secretAccessKey: string): Promise<boolean> {
      if (service !== "sqs") return false;
      const signer = new SignatureV4({
        service,
        region,
        credentials: { accessKeyId, secretAccessKey },
        sha256: NobleSha256,
        uriEscapePath: true,
        // Only what the client signed: no x-amz-content-sha256 of our own.
        applyChecksum: false,
      });
      const again = await signer.sign(
        {
          method: request.method,
          protocol: url.protocol,
          hostname: url.hostname,
          path: url.pathname,
          query,
          headers,
          body,
        },
        { signingDate, signableHeaders: new Set(signed) },
      );
      const expected = /Signature=([0-9a-f]{64})/.exec(String(again.headers.authorization))?.[1] ?? "";
      return secretsEqual(expected, signature);
    },
  };
}
