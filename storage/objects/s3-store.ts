// No `node:*` imports here: this module is also bundled into the Cloudflare Worker.
/**
 * The object store on any S3-compatible service (AWS S3, R2, MinIO), through
 * @aws-sdk/client-s3: SigV4 signing, the standard retry strategy, clock-skew correction,
 * credential refresh and the addressing rules of each service come from the SDK.
 *
 * The runtime pieces are injected by the entry point, so this module needs none: on Node a
 * keep-alive NodeHttpHandler and the AWS default credential chain (functions/runtime/node/s3.ts), on
 * Workers the fetch handler.
 *
 * Every failure of the service (network, 5xx, throttling after the retries, refused
 * credentials, a missing bucket) leaves here as `unavailable(...)`; only the outcomes the
 * ObjectStore contract names (exists, not found) have their own errors.
 */
import {
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  type ListObjectsV2CommandOutput,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
  type S3ClientConfig,
} from "@aws-sdk/client-s3";
import { unavailable } from "../errors.ts";
import { crc32c } from "../segment/crc32c.ts";
import {
  ObjectExistsError,
  ObjectNotFoundError,
  type ByteRange,
  type ListPage,
  type ObjectInfo,
  type ObjectStore,
} from "./object-store.ts";

export interface S3Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  /** When temporary keys expire; the SDK asks the provider again shortly before. */
  expiration?: Date;
}

export interface S3StoreConfig {
  endpoint?: string;
  region: string;
  bucket: string;
  accessKeyId?: string;
  secretAccessKey?: string;
  /** Where keys come from when not given above (the AWS default chain on Node). */
  credentials?: () => Promise<S3Credentials>;
  forcePathStyle?: boolean;
  /** Prepended to every key (e.g. "reservoir/"); hidden from callers. */
  prefix?: string;
  /**
   * How an upload's bytes are protected on the way (S3_PAYLOAD_CHECKSUM; README "Configuration").
   * "crc32c", the default: the body's CRC32C in the signed `x-amz-checksum-crc32c` header, which
   * S3 checks before it stores anything (400 BadDigest otherwise), and the payload itself
   * unsigned. A segment's checksum comes from its batches' (SegmentWriter.checksum), so the
   * upload costs no pass over its bytes. "sha256": the payload's SHA-256 signed, SigV4's classic
   * form, about 1 ms of CPU per MiB here: for an S3-compatible service that refuses checksum
   * headers, or a plaintext endpoint on a network where someone could alter requests.
   */
  payloadChecksum?: "crc32c" | "sha256";
  /** The runtime's HTTP handler (Node: keep-alive NodeHttpHandler; default: the SDK's own for the runtime). */
  requestHandler?: S3ClientConfig["requestHandler"];
}

/** DeleteObjects takes at most this many keys per request. */
const DELETE_BATCH = 1000;

export class S3ObjectStore implements ObjectStore {
  private readonly client: S3Client;
  private readonly bucket: string;
  private readonly prefix: string;
  private readonly sendsCrc32c: boolean;

  constructor(config: S3StoreConfig) {
    if (!config.bucket) throw new Error("S3_BUCKET is empty");
    if (config.endpoint !== undefined) {
      try {
        new URL(config.endpoint);
      } catch {
        throw new Error(`S3_ENDPOINT is not a URL: ${JSON.stringify(config.endpoint)}`);
      }
    }
    this.bucket = config.bucket;
    this.prefix = config.prefix ?? "";
    this.sendsCrc32c = (config.payloadChecksum ?? "crc32c") === "crc32c";
    const { accessKeyId, secretAccessKey } = config;
    this.client = new S3Client({
      endpoint: config.endpoint,
      region: config.region,
      forcePathStyle: config.forcePathStyle ?? false,
      // Static keys, else the injected provider. Never the SDK's own default: on Workers it has
      // none, and on Node the entry point chooses (and the tests can see) which chain it is.
      credentials: accessKeyId && secretAccessKey ? { accessKeyId, secretAccessKey } : (config.credentials ?? missingCredentials),
      requestHandler: config.requestHandler,
      // Flexible checksums only where S3 requires one (DeleteObjects). By default (since 3.729)
      // the SDK computes a CRC32 of every upload and validates one on every download. Not
      // needed here: each segment carries a CRC32C per batch, checked by the reader on
      // every read, ranged ones included (which a whole-object checksum cannot cover), so it
      // is end to end; and the upload's body is still covered by the signed SHA-256 payload
      // hash. Several S3-compatible services also reject the flexible-checksum headers.
      requestChecksumCalculation: "WHEN_REQUIRED",
      responseChecksumValidation: "WHEN_REQUIRED",
      // The standard strategy (3 attempts, exponential backoff with jitter, a retry quota so an
      // outage does not multiply the load): retries 5xx, throttling and transient network errors.
      retryMode: "standard",
      maxAttempts: 3,
      // The levers below were measured one by one (docs/benchmarks.md, "The S3 client").
      // The middleware stack is resolved once per command class instead of on every call (about
      // a third of the SDK's own CPU per request); nothing here adds middleware per command.
      cacheMiddleware: true,
      // Node: no `Expect: 100-continue` on bodies over 2 MiB, which costs a round trip before
      // every full segment to save sending one that would be refused (a misconfiguration).
      expectContinueHeader: false,
    });
    const stack = this.client.middlewareStack;
    // Per request work Reservoir has no use for: the user agent string (built and escaped per
    // request), Lambda's recursion detection header, and a logger that logs nothing.
    for (const name of ["getUserAgentMiddleware", "recursionDetectionMiddleware", "loggerMiddleware"]) stack.remove(name);
    stack.add(payloadHash, { step: "build", name: "reservoirPayloadHash", override: true });
  }

  /**
   * Create-only rests on the server honouring `If-None-Match: *` on PUT, as AWS S3, R2 and MinIO
   * do. s3rver (the test double) ignores the header and overwrites.
   */
  async put(key: string, body: Uint8Array, checksum?: number): Promise<void> {
    try {
      await this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: this.prefix + key,
          Body: body,
          ContentLength: body.byteLength,
          IfNoneMatch: "*",
          ChecksumCRC32C: this.sendsCrc32c ? base64Crc32c(checksum ?? crc32c(body)) : undefined,
        }),
      );
    } catch (error) {
      // 409 ConditionalRequestConflict: another conditional write to the key is in flight. A
      // retry of a PUT that did land also ends here; the object is then an orphan for the collector.
      const name = errorName(error);
      if (status(error) === 412 || name === "PreconditionFailed" || name === "ConditionalRequestConflict") throw new ObjectExistsError(key);
      throw this.failure("PUT", key, error);
    }
  }

  async get(key: string, range?: ByteRange): Promise<Uint8Array> {
    if (range) checkRange(range);
    try {
      const res = await this.client.send(
        new GetObjectCommand({
          Bucket: this.bucket,
          Key: this.prefix + key,
          // An empty range still asks for a byte, so that a missing key is reported as such.
          Range: range ? `bytes=${range.offset}-${range.offset + Math.max(range.length, 1) - 1}` : undefined,
        }),
      );
      const bytes = res.Body ? await bodyBytes(res.Body, res.ContentLength) : new Uint8Array(0);
      // Trims the byte an empty range asked for, and guards against s3rver, which answers
      // `bytes=0-0` with the whole object (it reads end 0 as "no end").
      return range && bytes.byteLength > range.length ? bytes.subarray(0, range.length) : bytes;
    } catch (error) {
      if (errorName(error) === "NoSuchKey") throw new ObjectNotFoundError(key);
      // A range starting at or past the end: same answer as a short read, like the folder store.
      if (errorName(error) === "InvalidRange" || status(error) === 416) return new Uint8Array(0);
      throw this.failure("GET", key, error);
    }
  }

  async head(key: string): Promise<ObjectInfo> {
    try {
      const res = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.prefix + key }));
      return { size: res.ContentLength ?? 0, lastModified: res.LastModified?.getTime() ?? 0 };
    } catch (error) {
      // A HEAD answer has no body, so no error code: a 404 is the key's unless the bucket is gone.
      if (status(error) === 404 && errorName(error) !== "NoSuchBucket") throw new ObjectNotFoundError(key);
      throw this.failure("HEAD", key, error);
    }
  }

  async delete(key: string): Promise<void> {
    try {
      // S3 answers 204 for absent keys too, so this is idempotent as is.
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.prefix + key }));
    } catch (error) {
      throw this.failure("DELETE", key, error);
    }
  }

  async deleteMany(keys: string[]): Promise<void> {
    for (let i = 0; i < keys.length; i += DELETE_BATCH) {
      const batch = keys.slice(i, i + DELETE_BATCH);
      let errors: { Key?: string; Code?: string; Message?: string }[];
      try {
        const res = await this.client.send(
          new DeleteObjectsCommand({
            Bucket: this.bucket,
            Delete: { Objects: batch.map((key) => ({ Key: this.prefix + key })), Quiet: true },
          }),
        );
        errors = res.Errors ?? [];
      } catch (error) {
        throw this.failure("DELETE", `${batch.length} keys from ${batch[0]}`, error);
      }
      // Quiet mode reports only the keys it could not delete (an absent key is deleted).
      if (errors.length > 0) {
        const first = errors[0];
        throw unavailable(
          `S3 DELETE: ${errors.length} of ${batch.length} keys not deleted, e.g. ${first.Key}: ${first.Code} ${first.Message ?? ""}`.trim(),
        );
      }
    }
  }

  async list(prefix: string, options: { startAfter?: string; limit?: number } = {}): Promise<ListPage> {
    const limit = options.limit ?? 1000;
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`invalid list limit: ${limit}`);
    let res: ListObjectsV2CommandOutput;
    try {
      res = await this.client.send(
        new ListObjectsV2Command({
          Bucket: this.bucket,
          Prefix: this.prefix + prefix,
          StartAfter: options.startAfter === undefined ? undefined : this.prefix + options.startAfter,
          MaxKeys: limit,
        }),
      );
    } catch (error) {
      throw this.failure("LIST", prefix, error);
    }
    const keys = (res.Contents ?? []).map((o) => o.Key!.slice(this.prefix.length));
    return res.IsTruncated && keys.length > 0 ? { keys, nextStartAfter: keys[keys.length - 1] } : { keys };
  }

  async check(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
    } catch (error) {
      throw this.failure("HEAD bucket", this.bucket, error);
    }
  }

  /** The service failed (after the SDK's retries): what went wrong, in the operator's terms. */
  private failure(operation: string, key: string, error: unknown) {
    const code = status(error);
    const answer = code === undefined ? describe(error) : `${code} ${errorName(error) ?? ""}`.trim();
    let hint = "";
    if (code === 401 || code === 403 || error === missingCredentialsError) {
      hint = ": check S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY (or the AWS credentials and their permissions on the bucket)";
    } else if (errorName(error) === "NoSuchBucket" || (operation === "HEAD bucket" && code === 404)) {
      hint = `: the bucket '${this.bucket}' does not exist (S3_BUCKET)`;
    }
    const attempts = (error as { $metadata?: { attempts?: number } })?.$metadata?.attempts;
    return unavailable(`S3 ${operation} ${key}: ${answer}${attempts && attempts > 1 ? ` after ${attempts} attempts` : ""}${hint}`, error);
  }
}

/**
 * The payload hash the signer signs, set as `x-amz-content-sha256` (which the signer takes as
 * given) before the retry step, so once per PUT rather than per attempt. A body whose CRC32C
 * header S3 checks goes unsigned; any other body's SHA-256 is taken by Web Crypto, which on Node
 * runs on the thread pool: the SDK would hash on the event loop (about 3 ms per 4 MiB segment,
 * during which the server serves nothing).
 */
const payloadHash =
  <Input extends object, Output extends object>(next: (args: { input: Input; request: unknown }) => Promise<Output>) =>
  async (args: { input: Input; request: unknown }): Promise<Output> => {
    const request = args.request as { headers?: Record<string, string>; body?: unknown } | undefined;
    const body = request?.body;
    if (request?.headers?.["x-amz-checksum-crc32c"] !== undefined) {
      request.headers["x-amz-content-sha256"] = "UNSIGNED-PAYLOAD";
    } else if (request?.headers && body instanceof Uint8Array && body.byteLength > 0) {
      const digest = await crypto.subtle.digest("SHA-256", body as Uint8Array<ArrayBuffer>);
      request.headers["x-amz-content-sha256"] = hex(new Uint8Array(digest));
    }
    return next(args);
  };

/** A CRC32C as S3 writes it in a checksum header: its four bytes, big-endian, in base64. */
function base64Crc32c(crc: number): string {
  return btoa(String.fromCharCode(crc >>> 24, (crc >>> 16) & 0xff, (crc >>> 8) & 0xff, crc & 0xff));
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));
function hex(bytes: Uint8Array): string {
  let out = "";
  for (const b of bytes) out += HEX[b];
  return out;
}

const missingCredentialsError = new Error("S3 credentials are not configured (S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY)");
const missingCredentials = async (): Promise<S3Credentials> => {
  throw missingCredentialsError;
};

function status(error: unknown): number | undefined {
  return error instanceof S3ServiceException ? error.$metadata.httpStatusCode : undefined;
}

function errorName(error: unknown): string | undefined {
  return error instanceof S3ServiceException ? error.name : undefined;
}

function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const code = (error as { code?: unknown }).code;
  return typeof code === "string" && !error.message.includes(code) ? `${error.message} (${code})` : error.message;
}

function checkRange(range: ByteRange): void {
  if (!Number.isSafeInteger(range.offset) || range.offset < 0 || !Number.isSafeInteger(range.length) || range.length < 0) {
    throw new RangeError(`invalid byte range: offset ${range.offset}, length ${range.length}`);
  }
}

/**
 * A GET's body as one array. With its length known and a body that iterates its chunks (Node's
 * response stream; a Worker's ReadableStream), each chunk is copied straight into an array of
 * that length. The SDK's own `transformToByteArray` pipes the chunks into a list through a
 * Writable and then concatenates them: a second copy and a second segment-sized allocation per
 * GET, which on the consume path fed the major collections (docs/benchmarks.md).
 */
async function bodyBytes(body: { transformToByteArray(): Promise<Uint8Array> }, length: number | undefined): Promise<Uint8Array> {
  const chunks = body as unknown as Partial<AsyncIterable<Uint8Array>>;
  if (length === undefined || typeof chunks[Symbol.asyncIterator] !== "function") return body.transformToByteArray();
  const out = new Uint8Array(length);
  let at = 0;
  for await (const chunk of chunks as AsyncIterable<Uint8Array>) {
    if (at + chunk.byteLength > length) throw new Error(`the body is longer than its Content-Length, ${length} bytes`);
    out.set(chunk, at);
    at += chunk.byteLength;
  }
  if (at !== length) throw new Error(`the body ended at ${at} of its Content-Length, ${length} bytes`);
  return out;
}
