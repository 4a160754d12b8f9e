// No `node:*` imports here: this module is also bundled into the Cloudflare Worker.
import {
  GetObjectCommand,
  DeleteObjectCommand,
  HeadBucketCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from "@aws-sdk/client-s3";
import {
  ObjectExistsError,
  ObjectNotFoundError,
  type ByteRange,
  type ListPage,
  type ObjectStore,
} from "./object-store.ts";

export interface S3StoreConfig {
  endpoint?: string;
  region: string;
  bucket: string;
  accessKeyId?: string;
  secretAccessKey?: string;
  forcePathStyle?: boolean;
  /** Prepended to every key (e.g. "reservoir/"); hidden from callers. */
  prefix?: string;
}

export class S3ObjectStore implements ObjectStore {
  private readonly client: S3Client;
  private readonly bucket: string;
  private readonly prefix: string;

  constructor(config: S3StoreConfig) {
    this.bucket = config.bucket;
    this.prefix = config.prefix ?? "";
    this.client = new S3Client({
      endpoint: config.endpoint,
      region: config.region,
      forcePathStyle: config.forcePathStyle,
      credentials:
        config.accessKeyId && config.secretAccessKey
          ? { accessKeyId: config.accessKeyId, secretAccessKey: config.secretAccessKey }
          : undefined,
      // Since 3.729 the SDK adds flexible (CRC32) checksum headers to uploads and asks for checksums
      // on downloads by default. s3rver ignores both, but several S3-compatible services reject
      // the headers; S3 already verifies the body against the signed SHA-256 payload hash.
      requestChecksumCalculation: "WHEN_REQUIRED",
      responseChecksumValidation: "WHEN_REQUIRED",
    });
  }

  /**
   * Create-only rests on the server honouring `If-None-Match: *` on PUT, as AWS S3, R2 and MinIO
   * do. s3rver (the test double) ignores the header and overwrites.
   */
  async put(key: string, body: Uint8Array): Promise<void> {
    try {
      await this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: this.prefix + key,
          Body: body,
          ContentLength: body.byteLength,
          IfNoneMatch: "*",
        }),
      );
    } catch (err) {
      // 409 ConditionalRequestConflict: another conditional write to the key is in flight. Note an
      // SDK retry of a PUT that did land also ends here; the object is then an orphan for the GC.
      const status = err instanceof S3ServiceException ? err.$metadata.httpStatusCode : undefined;
      if (status === 412 || errorName(err) === "PreconditionFailed" || errorName(err) === "ConditionalRequestConflict") {
        throw new ObjectExistsError(key);
      }
      throw err;
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
      const bytes = res.Body ? await res.Body.transformToByteArray() : new Uint8Array(0);
      // Trims the byte an empty range asked for, and guards against s3rver, which answers
      // `bytes=0-0` with the whole object (it reads end 0 as "no end").
      return range && bytes.byteLength > range.length ? bytes.subarray(0, range.length) : bytes;
    } catch (err) {
      if (errorName(err) === "NoSuchKey") throw new ObjectNotFoundError(key);
      // A range starting at or past the end: same answer as a short read, like the folder store.
      if (errorName(err) === "InvalidRange") return new Uint8Array(0);
      throw err;
    }
  }

  async delete(key: string): Promise<void> {
    // S3 answers 204 for absent keys too, so this is idempotent as is.
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.prefix + key }));
  }

  async list(prefix: string, options: { startAfter?: string; limit?: number } = {}): Promise<ListPage> {
    const limit = options.limit ?? 1000;
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`invalid list limit: ${limit}`);
    const res = await this.client.send(
      new ListObjectsV2Command({
        Bucket: this.bucket,
        Prefix: this.prefix + prefix,
        StartAfter: options.startAfter === undefined ? undefined : this.prefix + options.startAfter,
        MaxKeys: limit,
      }),
    );
    const keys = (res.Contents ?? []).map((o) => o.Key!.slice(this.prefix.length));
    return res.IsTruncated && keys.length > 0 ? { keys, nextStartAfter: keys[keys.length - 1] } : { keys };
  }

  async check(): Promise<void> {
    await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
  }
}

function checkRange(range: ByteRange): void {
  if (!Number.isSafeInteger(range.offset) || range.offset < 0 || !Number.isSafeInteger(range.length) || range.length < 0) {
    throw new RangeError(`invalid byte range: offset ${range.offset}, length ${range.length}`);
  }
}

function errorName(err: unknown): string | undefined {
  return err instanceof S3ServiceException ? err.name : undefined;
}
