/**
 * The configuration (README "Configuration", API.md "Configuration (environment)"): the same
 * variable names on Node and Workers, read through one zod schema. A value that does not parse
 * (a non-numeric PORT, `RESERVOIR_MAX_BATCH_BYTES=abc`, a negative linger, `S3_FORCE_PATH_STYLE=maybe`)
 * is an error naming the variable: nothing runs on NaN or on a guess. The Node server refuses to
 * start (exit 1); the Worker answers every request 503 naming it (functions/runtime/workers/worker.ts).
 *
 * An empty value counts as unset (so `PORT=` takes the default), as in most deployment tools.
 */
import { z } from "zod";
import type { S3StoreConfig } from "../storage/objects/s3-store.ts";
import { createAddressGuard } from "./push/address-guard.ts";

export type Env = Record<string, string | undefined>;

export interface Config {
  port: number;
  /** Node: the interface the server listens on. */
  host: string;
  dataDir: string;
  databaseUrl?: string;
  /** Connections in the Postgres pool of one Node instance (a `max` in the URL wins; default 20). */
  databasePoolMax?: number;
  /**
   * Node + Postgres: how long a database statement may go without any answer before it fails
   * (`service_unavailable`) and its connection is destroyed (0: never); see
   * functions/runtime/node/postgres-write-guard.ts.
   */
  databaseCallTimeoutMs: number;
  s3?: S3StoreConfig;
  adminToken?: string;
  /** The deployment secret API keys are derived from (storage/tenancy/derived-keys.ts). */
  keySecret?: string;
  lingerMs: number;
  maxBatchBytes: number;
  /** Bound of the instance's read cache of decoded batches, in estimated bytes held (storage/log/batch-cache.ts). */
  readCacheBytes: number;
  /** Hosts, addresses or CIDRs webhooks may reach although private or loopback. */
  webhookAllowPrivate?: string;
  /** Node: how often the dispatcher sweeps for retries and backlog it was not woken for. */
  dispatchIntervalMs: number;
  /** Workers: how long one cron event keeps sweeping (about once a second). */
  sweepSeconds: number;
  /** Workers: the DNS-over-HTTPS endpoint the address guard resolves host names with. */
  dnsOverHttps?: string;
  /** Server-side bound of a request (a long-poll gets its waitMs on top); see functions/deadline.ts. */
  requestTimeoutMs?: number;
  /** How old an unreferenced object must be before it is deleted (storage/lifecycle/). */
  gcGraceSeconds: number;
  /** Compaction merges segments under half of this into objects of about this size. */
  compactionTargetBytes: number;
  /** Node: how often a maintenance pass runs (retention, compaction, collection, orphans). */
  maintenanceIntervalSeconds: number;
}

/**
 * Variables whose value an error does not echo: secrets (DATABASE_URL may hold a password), and
 * the allow-list, whose message quotes the one entry at fault.
 */
const UNECHOED = new Set([
  "DATABASE_URL",
  "S3_ACCESS_KEY_ID",
  "S3_SECRET_ACCESS_KEY",
  "RESERVOIR_ADMIN_TOKEN",
  "RESERVOIR_KEY_SECRET",
  "RESERVOIR_WEBHOOK_ALLOW_PRIVATE",
]);

/** A bad configuration: `problems` has one line per variable at fault, each starting with its name. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration: ${problems.join("; ")}`);
    this.name = "ConfigError";
  }
}

const blankIsUnset = (value: unknown) => (typeof value === "string" && value.trim() === "" ? undefined : value);

/** An optional string; empty counts as unset. */
const text = () => z.preprocess(blankIsUnset, z.string().optional());

/** A decimal number within [min, max] (a whole one unless `fractions`), as text. */
function numberText(min: number, max: number, unit: string, fractions = false) {
  const what = `must be ${fractions ? "a number" : "a whole number"} from ${min} to ${max} (${unit})`;
  return z
    .string()
    .trim()
    .regex(fractions ? /^\d+(\.\d+)?$/ : /^\d+$/, { error: what })
    .transform(Number)
    .refine((n) => n >= min && n <= max, { error: what });
}

/** A number, or `fallback` when unset. */
const number = (fallback: number, min: number, max: number, unit: string, fractions = false) =>
  z.preprocess(blankIsUnset, numberText(min, max, unit, fractions).default(fallback));

/** A number, or undefined when unset. */
const optionalNumber = (min: number, max: number, unit: string) => z.preprocess(blankIsUnset, numberText(min, max, unit).optional());

/** true/false in the usual spellings; anything else is an error rather than a silent false. */
const flag = (fallback: boolean) =>
  z.preprocess(
    blankIsUnset,
    z
      .string()
      .trim()
      .toLowerCase()
      .refine((v) => ["1", "true", "yes", "on", "0", "false", "no", "off"].includes(v), {
        error: "must be true or false (also 1/0, yes/no, on/off)",
      })
      .transform((v) => ["1", "true", "yes", "on"].includes(v))
      .optional()
      .transform((v) => v ?? fallback),
  );

/** One of `choices`, or `fallback` when unset. */
const oneOf = <const Choice extends string>(choices: readonly [Choice, ...Choice[]], fallback: NoInfer<Choice>) =>
  z.preprocess(blankIsUnset, z.enum(choices, { error: `must be one of ${choices.join(", ")}` }).default(fallback as Choice));

/** An absolute URL with one of `schemes` (e.g. "https:"). */
const url = (schemes: string[]) =>
  z.preprocess(
    blankIsUnset,
    z
      .string()
      .trim()
      .refine((v) => URL.canParse(v) && schemes.includes(new URL(v).protocol), {
        error: `must be a URL starting with ${schemes.map((s) => `${s}//`).join(" or ")}`,
      })
      .optional(),
  );

const envSchema = z
  .object({
    PORT: number(8787, 0, 65_535, "port"),
    HOST: text(),
    RESERVOIR_DATA_DIR: text(),
    DATABASE_URL: url(["postgres:", "postgresql:"]),
    DATABASE_POOL_MAX: optionalNumber(1, 10_000, "connections"),
    // Below the request deadline (65 s by default), so a stuck statement fails its request first.
    DATABASE_CALL_TIMEOUT_MS: number(30_000, 0, 3_600_000, "milliseconds"),
    S3_BUCKET: text(),
    S3_ENDPOINT: url(["http:", "https:"]),
    S3_REGION: text(),
    S3_ACCESS_KEY_ID: text(),
    S3_SECRET_ACCESS_KEY: text(),
    S3_FORCE_PATH_STYLE: flag(false),
    S3_PAYLOAD_CHECKSUM: oneOf(["crc32c", "sha256"], "crc32c"),
    RESERVOIR_ADMIN_TOKEN: text(),
    // A secret, not a password: at least 32 characters (e.g. `openssl rand -base64 32`).
    RESERVOIR_KEY_SECRET: z.preprocess(blankIsUnset, z.string().min(32, { error: "must be at least 32 characters" }).optional()),
    RESERVOIR_LINGER_MS: number(5, 0, 60_000, "milliseconds", true),
    RESERVOIR_MAX_BATCH_BYTES: number(4 * 1024 * 1024, 1, 1024 * 1024 * 1024, "bytes"),
    // 0 turns the read cache off. A Worker isolate has 128 MB in all: keep it well under that there.
    // On a server, 256 MiB keeps the last quarter GB written in memory: a consumer that falls that
    // far behind a peak catches up without a GET (docs/benchmarks.md, "Session 9: the tail in memory").
    RESERVOIR_READ_CACHE_BYTES: number(256 * 1024 * 1024, 0, 64 * 1024 * 1024 * 1024, "bytes"),
    RESERVOIR_WEBHOOK_ALLOW_PRIVATE: text().superRefine((value, ctx) => {
      try {
        // The guard parses its list eagerly and throws on an entry it cannot read.
        createAddressGuard(value, async () => []);
      } catch (error) {
        ctx.addIssue({ code: "custom", message: (error as Error).message.replace(/^RESERVOIR_WEBHOOK_ALLOW_PRIVATE: /, "") });
      }
    }),
    RESERVOIR_DISPATCH_INTERVAL_MS: number(1000, 1, 3_600_000, "milliseconds"),
    RESERVOIR_SWEEP_SECONDS: number(50, 0, 900, "seconds", true),
    RESERVOIR_DNS_OVER_HTTPS: url(["https:"]),
    RESERVOIR_REQUEST_TIMEOUT_MS: optionalNumber(1, 3_600_000, "milliseconds"),
    // At least 2 s: a flush's commit deadline is half of it (commitDeadline below).
    RESERVOIR_GC_GRACE_SECONDS: number(3600, 2, 30 * 86_400, "seconds"),
    RESERVOIR_MAINTENANCE_INTERVAL_SECONDS: number(60, 1, 86_400, "seconds"),
    RESERVOIR_COMPACTION_TARGET_BYTES: number(4 * 1024 * 1024, 1024, 1024 * 1024 * 1024, "bytes"),
  })
  .superRefine((env, ctx) => {
    // The Node pool honours a `max` in the URL over DATABASE_POOL_MAX: it must be a count too.
    const urlMax = env.DATABASE_URL ? new URL(env.DATABASE_URL).searchParams.get("max") : null;
    if (urlMax !== null && !/^[1-9]\d{0,4}$/.test(urlMax)) {
      ctx.addIssue({
        code: "custom",
        path: ["DATABASE_URL"],
        message: "its max parameter must be a whole number of connections from 1 to 99999",
      });
    }
    // One key without the other would silently fall back to the default chain (Node) or fail
    // at the first PUT (Workers): say so at start instead.
    if (Boolean(env.S3_ACCESS_KEY_ID) !== Boolean(env.S3_SECRET_ACCESS_KEY)) {
      const missing = env.S3_ACCESS_KEY_ID ? "S3_SECRET_ACCESS_KEY" : "S3_ACCESS_KEY_ID";
      ctx.addIssue({ code: "custom", path: [missing], message: "must be set together with the other S3 key (or neither)" });
    }
  });

/** The variables the schema reads (README's configuration table lists the same). */
export const configVariables: readonly string[] = Object.keys(envSchema.shape);

/** The configuration in `env`, or a ConfigError naming every variable that does not parse. */
export function readConfig(env: Env): Config {
  const result = envSchema.safeParse(env);
  if (!result.success) {
    const problems = result.error.issues.map((issue) => {
      const name = String(issue.path[0] ?? "configuration");
      const raw = env[name];
      const shown = raw === undefined || UNECHOED.has(name) ? "" : `=${JSON.stringify(raw)}`;
      return `${name}${shown}: ${issue.message}`;
    });
    throw new ConfigError(problems);
  }
  const e = result.data;
  return {
    port: e.PORT,
    host: e.HOST ?? "0.0.0.0",
    dataDir: e.RESERVOIR_DATA_DIR ?? "./.reservoir",
    databaseUrl: e.DATABASE_URL,
    databasePoolMax: e.DATABASE_POOL_MAX,
    databaseCallTimeoutMs: e.DATABASE_CALL_TIMEOUT_MS,
    s3: e.S3_BUCKET
      ? {
          bucket: e.S3_BUCKET,
          endpoint: e.S3_ENDPOINT,
          region: e.S3_REGION ?? "auto",
          accessKeyId: e.S3_ACCESS_KEY_ID,
          secretAccessKey: e.S3_SECRET_ACCESS_KEY,
          forcePathStyle: e.S3_FORCE_PATH_STYLE,
          payloadChecksum: e.S3_PAYLOAD_CHECKSUM,
        }
      : undefined,
    adminToken: e.RESERVOIR_ADMIN_TOKEN,
    keySecret: e.RESERVOIR_KEY_SECRET,
    lingerMs: e.RESERVOIR_LINGER_MS,
    maxBatchBytes: e.RESERVOIR_MAX_BATCH_BYTES,
    readCacheBytes: e.RESERVOIR_READ_CACHE_BYTES,
    webhookAllowPrivate: e.RESERVOIR_WEBHOOK_ALLOW_PRIVATE,
    dispatchIntervalMs: e.RESERVOIR_DISPATCH_INTERVAL_MS,
    sweepSeconds: e.RESERVOIR_SWEEP_SECONDS,
    dnsOverHttps: e.RESERVOIR_DNS_OVER_HTTPS,
    requestTimeoutMs: e.RESERVOIR_REQUEST_TIMEOUT_MS,
    gcGraceSeconds: e.RESERVOIR_GC_GRACE_SECONDS,
    compactionTargetBytes: e.RESERVOIR_COMPACTION_TARGET_BYTES,
    maintenanceIntervalSeconds: e.RESERVOIR_MAINTENANCE_INTERVAL_SECONDS,
  };
}

/**
 * A flush not committed this long after its PUT started is failed, never committed late
 * (DESIGN.md, write path step 3): 60 s, or half the GC grace period if that is shorter, so
 * that the orphan pass never deletes an object a commit could still name.
 */
export function commitDeadlineMs(config: Pick<Config, "gcGraceSeconds">): number {
  return Math.min(60_000, (config.gcGraceSeconds * 1000) / 2);
}
