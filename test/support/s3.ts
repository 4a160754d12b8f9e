import { createWriteStream } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import type { Server } from "node:http";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { S3StoreConfig } from "../../storage/objects/s3-store.ts";

// s3rver ships no types; this is the part of its API we use.
interface S3rver {
  run(): Promise<{ port: number }>;
  close(): Promise<void>;
  httpServer?: Server;
}
type S3rverOptions = {
  address: string;
  port: number;
  silent: boolean;
  directory: string;
  vhostBuckets: boolean;
  configureBuckets: { name: string }[];
};
const require = createRequire(import.meta.url);
const S3rver = require("s3rver") as new (options: S3rverOptions) => S3rver;

// s3rver encrypts ListObjectsV2 continuation tokens with single DES, which OpenSSL 3 (Node >= 17)
// no longer offers, so every truncated listing fails with InternalError (jamhall/s3rver#818).
// Three-key DES with K1 = K2 = K3 is exactly single DES, and the default provider has it.
const crypto = require("node:crypto") as typeof import("node:crypto");
const { createCipheriv, createDecipheriv } = crypto;
const asDes = (key: Buffer) => ["des-ede3-cbc", Buffer.concat([key, key, key])] as const;
Object.assign(crypto, {
  createCipheriv: (algorithm: string, key: Buffer, iv: Buffer, options?: object) =>
    algorithm === "des" ? createCipheriv(...asDes(key), iv, options) : createCipheriv(algorithm, key, iv, options),
  createDecipheriv: (algorithm: string, key: Buffer, iv: Buffer, options?: object) =>
    algorithm === "des" ? createDecipheriv(...asDes(key), iv, options) : createDecipheriv(algorithm, key, iv, options),
});

// s3rver answers a PUT once the body has gone through its MD5 transform, not once its file holds
// the body: the write stream may not even have opened the file yet. A GET right after the answer
// can then read an empty or short object (seen in the benchmark's S3 baseline: an object of 30
// messages read back with none), where S3 reads every write it acknowledged. This putObject
// answers once the file is written, then writes the metadata as s3rver's does.
type StoredObject = { bucket: string; key: string; content: Buffer | NodeJS.ReadableStream; metadata: unknown };
interface FilesystemStore {
  getResourcePath(bucket: string, key: string, resource: string): string;
  putMetadata(bucket: string, key: string, metadata: unknown, md5: string): Promise<void>;
}
const FilesystemStore = require("s3rver/lib/stores/filesystem") as { prototype: FilesystemStore & Record<string, unknown> };
FilesystemStore.prototype.putObject = async function putObject(this: FilesystemStore, object: StoredObject) {
  const path = this.getResourcePath(object.bucket, object.key, "object");
  await mkdir(dirname(path), { recursive: true });
  const md5 = crypto.createHash("md5");
  let size = 0;
  const count = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      md5.update(chunk);
      size += chunk.length;
      done(null, chunk);
    },
  });
  const content = Buffer.isBuffer(object.content) ? Readable.from([object.content], { objectMode: false }) : object.content;
  await pipeline(content, count, createWriteStream(path));
  const digest = md5.digest("hex");
  await this.putMetadata(object.bucket, object.key, object.metadata, digest);
  return { size, md5: digest };
};

export interface S3Server {
  config: S3StoreConfig;
  /** S3_ENDPOINT, S3_BUCKET, S3_REGION, S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY, S3_FORCE_PATH_STYLE */
  env: Record<string, string>;
  stop(): Promise<void>;
}

/**
 * A real s3rver on 127.0.0.1 (random port, fresh directory under `parent`, the temp directory by
 * default) with one empty bucket.
 */
export async function startS3(parent = tmpdir()): Promise<S3Server> {
  const directory = await mkdtemp(join(parent, "reservoir-s3rver-"));
  const bucket = "reservoir-test";
  const server = new S3rver({
    address: "127.0.0.1",
    port: 0,
    silent: true,
    directory,
    vhostBuckets: false,
    configureBuckets: [{ name: bucket }],
  });
  const { port } = await server.run();
  const config: S3StoreConfig = {
    endpoint: `http://127.0.0.1:${port}`,
    region: "us-east-1",
    bucket,
    accessKeyId: "S3RVER",
    secretAccessKey: "S3RVER",
    forcePathStyle: true,
  };
  let stopped: Promise<void> | undefined;
  return {
    config,
    env: {
      S3_ENDPOINT: config.endpoint!,
      S3_BUCKET: bucket,
      S3_REGION: config.region,
      S3_ACCESS_KEY_ID: config.accessKeyId!,
      S3_SECRET_ACCESS_KEY: config.secretAccessKey!,
      S3_FORCE_PATH_STYLE: "true",
    },
    stop() {
      stopped ??= (async () => {
        const closed = server.close();
        // Keep-alive sockets from clients (also in other processes) would hold close() open.
        server.httpServer?.closeAllConnections();
        await closed;
        await rm(directory, { recursive: true, force: true });
      })();
      return stopped;
    },
  };
}
