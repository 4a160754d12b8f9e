import { crc32c as awsCrc32c } from "@aws-crypto/crc32c";
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { FolderObjectStore } from "../../functions/runtime/node/folder-store.ts";
import { ObjectExistsError, ObjectNotFoundError, type ObjectStore } from "../../storage/objects/object-store.ts";
import { ReservoirError } from "../../storage/errors.ts";
import { S3ObjectStore, type S3StoreConfig } from "../../storage/objects/s3-store.ts";
import { nodeS3Store } from "../../functions/runtime/node/s3.ts";
import { startS3, type S3Server } from "../support/s3.ts";

interface Backend {
  store: ObjectStore;
  close(): Promise<void>;
}

const MiB = 1024 * 1024;
const bytes = (n: number) => new Uint8Array(randomBytes(n));
const text = (s: string) => new TextEncoder().encode(s);

async function listAll(store: ObjectStore, prefix: string, limit: number): Promise<string[][]> {
  const pages: string[][] = [];
  let startAfter: string | undefined;
  do {
    const page = await store.list(prefix, { startAfter, limit });
    pages.push(page.keys);
    startAfter = page.nextStartAfter;
  } while (startAfter !== undefined);
  return pages;
}

/** `createOnly`: whether the server refuses to overwrite. s3rver ignores `If-None-Match: *`. */
function objectStoreContract(name: string, createOnly: boolean, open: () => Promise<Backend>) {
  describe(`${name} (ObjectStore contract)`, () => {
    let backend: Backend;
    let store: ObjectStore;
    let ns: string; // a fresh key namespace per test, so tests never see each other's objects
    let n = 0;

    beforeAll(async () => {
      backend = await open();
      store = backend.store;
    });
    afterAll(() => backend?.close());
    beforeEach(() => {
      ns = `tenants/test-${++n}/`;
    });

    it("check() resolves", async () => {
      await expect(store.check()).resolves.toBeUndefined();
    });

    it("round-trips binary data: 0 bytes, every byte value, a few MiB", async () => {
      const allBytes = Uint8Array.from({ length: 256 }, (_, i) => i);
      const big = bytes(3 * MiB + 17);
      await store.put(ns + "empty", new Uint8Array(0));
      await store.put(ns + "all", allBytes);
      await store.put(ns + "big", big);
      expect(await store.get(ns + "empty")).toEqual(new Uint8Array(0));
      expect(await store.get(ns + "all")).toEqual(allBytes);
      const got = await store.get(ns + "big");
      expect(got).toBeInstanceOf(Uint8Array);
      expect(got.byteLength).toBe(big.byteLength);
      expect(Buffer.compare(got, big)).toBe(0);
    });

    it("reads byte ranges", async () => {
      const body = bytes(64 * 1024);
      const size = body.byteLength;
      await store.put(ns + "obj", body);
      const cases = [
        { offset: 0, length: 100 }, // start
        { offset: 30_000, length: 5_000 }, // middle
        { offset: size - 100, length: 100 }, // end
        { offset: 0, length: 1 }, // single bytes
        { offset: 12_345, length: 1 },
        { offset: size - 1, length: 1 },
        { offset: 0, length: size }, // everything
      ];
      for (const range of cases) {
        expect(await store.get(ns + "obj", range), JSON.stringify(range)).toEqual(body.subarray(range.offset, range.offset + range.length));
      }
    });

    it("ranges past the end yield only the bytes that exist", async () => {
      await store.put(ns + "obj", text("0123456789"));
      expect(await store.get(ns + "obj", { offset: 7, length: 10 })).toEqual(text("789"));
      expect(await store.get(ns + "obj", { offset: 10, length: 5 })).toEqual(new Uint8Array(0));
      expect(await store.get(ns + "obj", { offset: 3, length: 0 })).toEqual(new Uint8Array(0));
    });

    it("rejects a missing key with ObjectNotFoundError", async () => {
      await expect(store.get(ns + "missing")).rejects.toBeInstanceOf(ObjectNotFoundError);
      await expect(store.get(ns + "missing", { offset: 0, length: 1 })).rejects.toBeInstanceOf(ObjectNotFoundError);
      await expect(store.get(ns + "missing", { offset: 0, length: 0 })).rejects.toBeInstanceOf(ObjectNotFoundError);
      await expect(store.get(ns + "missing")).rejects.toMatchObject({ key: ns + "missing" });
    });

    // Registered only where the server enforces create-only; s3rver ignores If-None-Match, and
    // the S3 store's side of the contract is proven by the request tests below.
    const createOnlyIt = createOnly ? it : () => {};
    createOnlyIt("never overwrites: a second put of a key rejects with ObjectExistsError", async () => {
      await store.put(ns + "k", text("first"));
      await expect(store.put(ns + "k", text("second"))).rejects.toBeInstanceOf(ObjectExistsError);
      await expect(store.put(ns + "k", new Uint8Array(0))).rejects.toMatchObject({ key: ns + "k" });
      expect(await store.get(ns + "k")).toEqual(text("first"));
    });

    createOnlyIt("never overwrites: of concurrent puts of one key exactly one wins, whole", async () => {
      const bodies = Array.from({ length: 8 }, () => bytes(256 * 1024));
      const results = await Promise.allSettled(bodies.map((b) => store.put(ns + "k", b)));
      const won = results.flatMap((r, i) => (r.status === "fulfilled" ? [i] : []));
      expect(won).toHaveLength(1);
      for (const r of results) if (r.status === "rejected") expect(r.reason).toBeInstanceOf(ObjectExistsError);
      expect(Buffer.compare(await store.get(ns + "k"), bodies[won[0]])).toBe(0);
    });

    it("delete is idempotent and frees the key", async () => {
      await store.put(ns + "k", text("v1"));
      await store.delete(ns + "k");
      await expect(store.get(ns + "k")).rejects.toBeInstanceOf(ObjectNotFoundError);
      await expect(store.delete(ns + "k")).resolves.toBeUndefined();
      await expect(store.delete(ns + "never-existed")).resolves.toBeUndefined();
      await store.put(ns + "k", text("v2"));
      expect(await store.get(ns + "k")).toEqual(text("v2"));
      expect((await store.list(ns)).keys).toEqual([ns + "k"]);
    });

    it("head() tells an object's size and age; a missing key rejects with ObjectNotFoundError", async () => {
      const before = Date.now();
      await store.put(ns + "obj", bytes(12_345));
      const info = await store.head(ns + "obj");
      expect(info.size).toBe(12_345);
      // Servers keep whole seconds (S3's Last-Modified); the folder store keeps milliseconds.
      expect(info.lastModified).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000);
      expect(info.lastModified).toBeLessThanOrEqual(Date.now());
      expect(await store.head(ns + "empty").catch((e) => e)).toBeInstanceOf(ObjectNotFoundError);
      await store.put(ns + "empty", new Uint8Array(0));
      expect((await store.head(ns + "empty")).size).toBe(0);
    });

    it("deleteMany deletes exactly the keys named, absent ones included", async () => {
      const keys = Array.from({ length: 12 }, (_, i) => `${ns}segments/${String(i).padStart(4, "0")}`);
      for (const key of keys) await store.put(key, text(key));
      await store.deleteMany([...keys.filter((_, i) => i % 3 === 0), `${ns}segments/absent`]);
      expect((await store.list(ns)).keys).toEqual(keys.filter((_, i) => i % 3 !== 0));
      await expect(store.deleteMany([])).resolves.toBeUndefined();
      await store.deleteMany(keys);
      expect(await store.list(ns)).toEqual({ keys: [] });
    });

    it("keeps keys that need escaping intact through put, get, head, list and delete", async () => {
      const keys = [`${ns}a b+c/x=1&y`, `${ns}a b+c/t é (1)*!'~.bin`, `${ns}a b+c/%2F?#`];
      for (const key of keys) await store.put(key, text(key));
      for (const key of keys) expect(await store.get(key, { offset: 0, length: 1000 }), key).toEqual(text(key));
      for (const key of keys) expect((await store.head(key)).size, key).toBe(text(key).byteLength);
      expect((await store.list(`${ns}a b+c/`)).keys).toEqual([...keys].sort());
      expect((await store.list(`${ns}a b+c/`, { startAfter: `${ns}a b+c/t` })).keys).toEqual(
        [...keys].sort().filter((k) => k > `${ns}a b+c/t`),
      );
      await store.deleteMany(keys.slice(1));
      await store.delete(keys[0]);
      expect(await store.list(ns)).toEqual({ keys: [] });
    });

    it("lists only keys under the prefix, in lexicographic order", async () => {
      // Not "a" with "a-b": s3rver orders keys by its file names ("a-b._S3rver_object" before
      // "a._S3rver_object"). Segment ids are fixed-width; the folder store's own tests cover it.
      const segments = ["0001", "0002", "0010", "00100", "01", "1", "A", "B", "a", "b"];
      for (const id of [...segments].reverse()) await store.put(`${ns}segments/${id}`, text(id));
      await store.put(`${ns}seg`, text("x"));
      await store.put(`${ns}other/1`, text("x"));
      await store.put(`tenants/test-${n}x/segments/1`, text("a tenant whose id extends ours"));

      const expected = segments.map((id) => `${ns}segments/${id}`);
      expect(await store.list(`${ns}segments/`)).toEqual({ keys: expected });
      // A prefix need not end at a "/".
      expect((await store.list(`${ns}segments/00`)).keys).toEqual(expected.slice(0, 4));
      expect((await store.list(`${ns}seg`)).keys).toEqual([`${ns}seg`, ...expected]);
      expect((await store.list(ns)).keys).toEqual([`${ns}other/1`, `${ns}seg`, ...expected]);
      expect(await store.list(`${ns}nothing/`)).toEqual({ keys: [] });
    });

    it("paginates with startAfter and limit", async () => {
      const keys = Array.from({ length: 7 }, (_, i) => `${ns}segments/${String(i * 10).padStart(4, "0")}`);
      for (const key of keys) await store.put(key, text(key));

      expect(await listAll(store, `${ns}segments/`, 3)).toEqual([keys.slice(0, 3), keys.slice(3, 6), keys.slice(6)]);
      // A page that ends exactly at the last key says the listing is complete.
      expect(await listAll(store, `${ns}segments/`, 7)).toEqual([keys]);
      expect(await store.list(`${ns}segments/`, { limit: 1 })).toEqual({ keys: [keys[0]], nextStartAfter: keys[0] });
      // startAfter need not be an existing key.
      expect((await store.list(`${ns}segments/`, { startAfter: `${ns}segments/0025` })).keys).toEqual(keys.slice(3));
      expect((await store.list(`${ns}segments/`, { startAfter: keys[6] })).keys).toEqual([]);
      expect((await store.list(`${ns}segments/`, { startAfter: `${ns}a`, limit: 2 })).keys).toEqual(keys.slice(0, 2));
    });
  });
}

objectStoreContract("FolderObjectStore", true, async () => {
  const dir = await mkdtemp(join(tmpdir(), "reservoir-folder-"));
  return {
    store: new FolderObjectStore(dir),
    close: () => rm(dir, { recursive: true, force: true }),
  };
});

// The store as the Node server builds it: keep-alive NodeHttpHandler, default credential chain.
objectStoreContract("S3ObjectStore on s3rver", false, async () => {
  const s3 = await startS3();
  return { store: nodeS3Store(s3.config), close: () => s3.stop() };
});

describe("FolderObjectStore", () => {
  let dir: string;
  let store: FolderObjectStore;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "reservoir-folder-"));
    store = new FolderObjectStore(dir);
    return () => rm(dir, { recursive: true, force: true });
  });

  it("rejects keys that would escape or alias the root", async () => {
    for (const key of ["", "/abs", "../up", "a/../../up", "a//b", "a/./b", "a/", ".reservoir-tmp-x"]) {
      await expect(store.put(key, text("x")), key).rejects.toBeInstanceOf(RangeError);
      await expect(store.get(key), key).rejects.toBeInstanceOf(RangeError);
    }
    await expect(store.list("../")).rejects.toBeInstanceOf(RangeError);
  });

  it("keeps keys as files and leaves no temporary files behind", async () => {
    await store.put("tenants/t/segments/1", text("one"));
    await expect(store.put("tenants/t/segments/1", text("two"))).rejects.toBeInstanceOf(ObjectExistsError);
    expect(await readdir(join(dir, "tenants/t/segments"))).toEqual(["1"]);
  });

  it("makes a directory again that was removed behind its back", async () => {
    await store.put("tenants/t/segments/1", text("one"));
    await rm(join(dir, "tenants"), { recursive: true });
    await store.put("tenants/t/segments/2", text("two"));
    expect(new TextDecoder().decode(await store.get("tenants/t/segments/2"))).toBe("two");
    expect(await readdir(join(dir, "tenants/t/segments"))).toEqual(["2"]);
  });

  it("stores every one of many concurrent PUTs into one directory (their directory fsyncs shared)", async () => {
    const keys = Array.from({ length: 40 }, (_, i) => `tenants/t/segments/${String(i).padStart(2, "0")}`);
    await Promise.all(keys.map((key) => store.put(key, text(key))));
    expect((await store.list("tenants/t/")).keys).toEqual(keys);
    for (const key of keys) expect(new TextDecoder().decode(await store.get(key))).toBe(key);
    expect((await readdir(join(dir, "tenants/t/segments"))).filter((n) => n.startsWith(".reservoir-tmp-"))).toEqual([]);
  });

  it("never lists an interrupted write", async () => {
    await store.put("tenants/t/segments/1", text("one"));
    // What a crash between writing the temporary file and linking it leaves behind.
    await writeFile(join(dir, "tenants/t/segments/.reservoir-tmp-crashed"), text("half"));
    expect((await store.list("tenants/t/")).keys).toEqual(["tenants/t/segments/1"]);
  });

  it("orders keys lexicographically across directory depths", async () => {
    const keys = ["a", "a-b/c", "a.x", "ab/c/d", "b/0", "b/1/2", "b/10", "b0"];
    for (const key of [...keys].reverse()) await store.put(key, text(key));
    const sorted = [...keys].sort();
    expect((await store.list("")).keys).toEqual(sorted);
    expect((await listAll(store, "", 3)).flat()).toEqual(sorted);
    expect((await store.list("", { startAfter: "a-b/c/z" })).keys).toEqual(sorted.slice(2));
  });

  it("check() creates a missing root", async () => {
    const nested = new FolderObjectStore(join(dir, "not", "yet"));
    await expect(nested.check()).resolves.toBeUndefined();
  });

  it("reports a filesystem failure as the service being unavailable (503), naming the cause", async () => {
    // A root that is a file: every write and the health check fail in the filesystem.
    await writeFile(join(dir, "a-file"), text("x"));
    const broken = new FolderObjectStore(join(dir, "a-file"));
    for (const attempt of [broken.put("tenants/t/segments/1", text("x")), broken.check()]) {
      const error = await attempt.catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ReservoirError);
      expect(error).toMatchObject({ code: "service_unavailable", cause: { code: expect.stringMatching(/^E[A-Z]+$/) } });
      expect((error as Error).message).toMatch(/^folder store: could not (write|check) /);
    }
  });
});

describe("S3ObjectStore", () => {
  let s3: S3Server;
  beforeAll(async () => {
    s3 = await startS3();
  });
  afterAll(() => s3?.stop());

  it("check() fails as unavailable when nothing listens at the endpoint", async () => {
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
    const { port } = probe.address() as AddressInfo;
    await new Promise((resolve) => probe.close(resolve));
    const store = nodeS3Store({ ...s3.config, endpoint: `http://127.0.0.1:${port}` });
    await expect(store.check()).rejects.toMatchObject({
      name: "ReservoirError",
      code: "service_unavailable",
      message: expect.stringMatching(/ECONNREFUSED/),
    });
  });

  it("check() fails as unavailable for a missing bucket, naming S3_BUCKET", async () => {
    const store = nodeS3Store({ ...s3.config, bucket: "no-such-bucket" });
    await expect(store.check()).rejects.toMatchObject({
      code: "service_unavailable",
      message: expect.stringMatching(/'no-such-bucket' does not exist \(S3_BUCKET\)/),
    });
    await expect(store.put("k", text("x"))).rejects.toMatchObject({
      code: "service_unavailable",
      message: expect.stringMatching(/does not exist/),
    });
  });

  it("refuses a configuration that cannot work, at construction", () => {
    expect(() => new S3ObjectStore({ ...s3.config, endpoint: "not a url" })).toThrow(/S3_ENDPOINT is not a URL/);
    expect(() => new S3ObjectStore({ ...s3.config, bucket: "" })).toThrow(/S3_BUCKET/);
  });

  it("keeps the configured key prefix out of callers' sight", async () => {
    const scoped = nodeS3Store({ ...s3.config, prefix: "scoped/" });
    const raw = nodeS3Store(s3.config);
    await scoped.put("tenants/t/segments/1", text("one"));
    await scoped.put("tenants/t/segments/2", text("two"));
    expect(await scoped.get("tenants/t/segments/1")).toEqual(text("one"));
    expect((await scoped.head("tenants/t/segments/2")).size).toBe(3);
    expect(await scoped.list("tenants/t/", { limit: 1 })).toEqual({
      keys: ["tenants/t/segments/1"],
      nextStartAfter: "tenants/t/segments/1",
    });
    expect((await scoped.list("tenants/", { startAfter: "tenants/t/segments/1" })).keys).toEqual(["tenants/t/segments/2"]);
    expect((await raw.list("scoped/")).keys).toEqual(["scoped/tenants/t/segments/1", "scoped/tenants/t/segments/2"]);
    await scoped.deleteMany(["tenants/t/segments/1"]);
    expect((await raw.list("scoped/")).keys).toEqual(["scoped/tenants/t/segments/2"]);
  });

  it("s3rver ignores If-None-Match on PUT (why create-only is checked against a stub below)", async () => {
    const store = nodeS3Store(s3.config);
    await store.put("overwritten", text("first"));
    await store.put("overwritten", text("second"));
    expect(await store.get("overwritten")).toEqual(text("second"));
  });

  describe("against a server that answers like S3", () => {
    let requests: { method?: string; url?: string; headers: IncomingHttpHeaders; body: Buffer }[];
    /** The answers to give, in order; the last one repeats. */
    let answers: { status: number; code: string }[];
    let config: S3StoreConfig;
    let close: () => Promise<void>;

    beforeAll(async () => {
      const stub = createServer((req, res) => {
        const chunks: Buffer[] = [];
        req.on("data", (chunk: Buffer) => chunks.push(chunk));
        req.on("end", () => {
          requests.push({ method: req.method, url: req.url, headers: req.headers, body: Buffer.concat(chunks) });
          const answer = answers.length > 1 ? answers.shift()! : answers[0];
          res.writeHead(answer.status, { "content-type": "application/xml" });
          if (answer.status === 200) res.end();
          else res.end(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>${answer.code}</Code><Message>stub</Message></Error>`);
        });
      });
      await new Promise<void>((resolve) => stub.listen(0, "127.0.0.1", resolve));
      config = { ...s3.config, endpoint: `http://127.0.0.1:${(stub.address() as AddressInfo).port}` };
      close = () => new Promise((resolve) => stub.close(() => resolve()).closeAllConnections());
    });
    afterAll(() => close?.());
    beforeEach(() => {
      requests = [];
    });

    it.each([
      { status: 412, code: "PreconditionFailed" },
      { status: 409, code: "ConditionalRequestConflict" },
    ])("sends If-None-Match: * and maps $status $code to ObjectExistsError", async (a) => {
      answers = [a];
      const store = nodeS3Store(config);
      await expect(store.put("tenants/t/segments/1", text("x"))).rejects.toEqual(new ObjectExistsError("tenants/t/segments/1"));
      expect(requests).toHaveLength(1);
      expect(requests[0].method).toBe("PUT");
      expect(requests[0].headers["if-none-match"]).toBe("*");
      // WHEN_REQUIRED: none of the SDK's own flexible-checksum machinery (an algorithm header, a
      // trailer, aws-chunked encoding) that some S3-compatible services reject; the one checksum
      // header is the store's own (below).
      const checksumHeaders = Object.keys(requests[0].headers).filter(
        (h) => h.startsWith("x-amz-checksum-") || h.startsWith("x-amz-sdk-checksum"),
      );
      expect(checksumHeaders).toEqual(["x-amz-checksum-crc32c"]);
      expect(requests[0].headers["x-amz-trailer"]).toBeUndefined();
      expect(requests[0].headers["content-encoding"]).toBeUndefined();
    });

    it("refused credentials fail at once as unavailable, saying which settings to check", async () => {
      answers = [{ status: 403, code: "AccessDenied" }];
      const error = await nodeS3Store(config)
        .put("k", text("x"))
        .catch((e: unknown) => e);
      expect(error).toMatchObject({
        name: "ReservoirError",
        code: "service_unavailable",
        cause: { name: "AccessDenied", $metadata: { httpStatusCode: 403 } },
      });
      expect((error as Error).message).toMatch(/^S3 PUT k: 403 AccessDenied: check S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY/);
      expect(requests).toHaveLength(1);
    });

    it("declares the body's CRC32C in a signed header, which S3 checks before storing, and sends the payload unsigned", async () => {
      answers = [{ status: 200, code: "" }];
      const body = randomBytes(70_000);
      await nodeS3Store(config).put("k", body);
      const crc = awsCrc32c(body);
      expect(requests[0].body.equals(body)).toBe(true);
      expect(requests[0].headers["x-amz-checksum-crc32c"]).toBe(
        Buffer.from([crc >>> 24, crc >>> 16, crc >>> 8, crc].map((b) => b & 0xff)).toString("base64"),
      );
      expect(requests[0].headers["x-amz-content-sha256"]).toBe("UNSIGNED-PAYLOAD");
      expect(requests[0].headers.authorization).toMatch(
        /^AWS4-HMAC-SHA256 Credential=S3RVER\/.*SignedHeaders=.*x-amz-checksum-crc32c.*x-amz-content-sha256.*Signature=[0-9a-f]{64}$/,
      );
    });

    it("sends the checksum the caller already has (a segment's, from its batches') as given", async () => {
      answers = [{ status: 200, code: "" }];
      await nodeS3Store(config).put("k", text("the segment"), 0x01020304);
      expect(requests[0].headers["x-amz-checksum-crc32c"]).toBe(Buffer.from([1, 2, 3, 4]).toString("base64"));
    });

    it("with S3_PAYLOAD_CHECKSUM=sha256, signs the payload's SHA-256 instead and sends no checksum header", async () => {
      answers = [{ status: 200, code: "" }];
      const body = text("the segment");
      await nodeS3Store({ ...config, payloadChecksum: "sha256" }).put("k", body, 0x01020304);
      expect(Object.keys(requests[0].headers).filter((h) => h.startsWith("x-amz-checksum-"))).toEqual([]);
      expect(requests[0].headers["x-amz-content-sha256"]).toBe(createHash("sha256").update(body).digest("hex"));
      expect(requests[0].headers.authorization).toMatch(
        /^AWS4-HMAC-SHA256 Credential=S3RVER\/.*SignedHeaders=.*x-amz-content-sha256.*Signature=[0-9a-f]{64}$/,
      );
    });

    it("without keys in the configuration, the Node store signs with the AWS default chain (here its AWS_* variables)", async () => {
      answers = [{ status: 200, code: "" }];
      const saved = { id: process.env.AWS_ACCESS_KEY_ID, secret: process.env.AWS_SECRET_ACCESS_KEY };
      process.env.AWS_ACCESS_KEY_ID = "AKIDFROMTHECHAIN";
      process.env.AWS_SECRET_ACCESS_KEY = "secret-from-the-chain";
      try {
        const store = nodeS3Store({ ...config, accessKeyId: undefined, secretAccessKey: undefined });
        await store.put("k", text("x"));
        expect(requests[0].headers.authorization).toMatch(/Credential=AKIDFROMTHECHAIN\//);
      } finally {
        for (const [name, value] of [
          ["AWS_ACCESS_KEY_ID", saved.id],
          ["AWS_SECRET_ACCESS_KEY", saved.secret],
        ] as const) {
          if (value === undefined) delete process.env[name];
          else process.env[name] = value;
        }
      }
    });

    it("without keys or a chain, fails as unavailable saying what to set, and sends nothing", async () => {
      answers = [{ status: 200, code: "" }];
      const store = new S3ObjectStore({ ...config, accessKeyId: undefined, secretAccessKey: undefined });
      await expect(store.put("k", text("x"))).rejects.toMatchObject({
        code: "service_unavailable",
        message: expect.stringMatching(/S3_ACCESS_KEY_ID/),
      });
      expect(requests).toHaveLength(0);
    });

    it.each([
      { status: 503, code: "SlowDown" },
      { status: 500, code: "InternalError" },
      { status: 429, code: "TooManyRequests" },
    ])("retries $status $code and succeeds when the server recovers", async (failure) => {
      answers = [failure, { status: 200, code: "" }];
      await expect(nodeS3Store(config).put("k", text("x"))).resolves.toBeUndefined();
      expect(requests.map((r) => r.method)).toEqual(["PUT", "PUT"]);
    });

    it("gives up after 3 attempts as unavailable, with the last answer", async () => {
      answers = [{ status: 503, code: "SlowDown" }];
      const error = await nodeS3Store(config)
        .get("k")
        .catch((e: unknown) => e);
      expect(error).toMatchObject({
        code: "service_unavailable",
        message: "S3 GET k: 503 SlowDown after 3 attempts",
        cause: { name: "SlowDown" },
      });
      expect(requests).toHaveLength(3);
    });
  });
});
