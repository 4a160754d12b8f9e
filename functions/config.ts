/** Reading the environment (API.md, "Configuration"): the same names on Node and Workers. */
import type { S3StoreConfig } from "../storage/objects/s3-store.ts";

export type Env = Record<string, string | undefined>;

export interface Config {
  port: number;
  dataDir: string;
  databaseUrl?: string;
  /** Connections in the Postgres pool of one Node instance (a `max` in the URL wins; default 20). */
  databasePoolMax?: number;
  s3?: S3StoreConfig;
  adminToken?: string;
  lingerMs: number;
  maxBatchBytes: number;
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
}

export function readConfig(env: Env): Config {
  const bucket = env.S3_BUCKET;
  return {
    port: Number(env.PORT ?? 8787),
    dataDir: env.RESERVOIR_DATA_DIR ?? "./.reservoir",
    databaseUrl: env.DATABASE_URL || undefined,
    databasePoolMax: env.DATABASE_POOL_MAX ? Number(env.DATABASE_POOL_MAX) : undefined,
    s3: bucket
      ? {
          bucket,
          endpoint: env.S3_ENDPOINT || undefined,
          region: env.S3_REGION || "auto",
          accessKeyId: env.S3_ACCESS_KEY_ID || undefined,
          secretAccessKey: env.S3_SECRET_ACCESS_KEY || undefined,
          forcePathStyle: /^(1|true|yes)$/i.test(env.S3_FORCE_PATH_STYLE ?? ""),
        }
      : undefined,
    adminToken: env.RESERVOIR_ADMIN_TOKEN || undefined,
    lingerMs: Number(env.RESERVOIR_LINGER_MS ?? 5),
    maxBatchBytes: Number(env.RESERVOIR_MAX_BATCH_BYTES ?? 4 * 1024 * 1024),
    webhookAllowPrivate: env.RESERVOIR_WEBHOOK_ALLOW_PRIVATE || undefined,
    dispatchIntervalMs: Number(env.RESERVOIR_DISPATCH_INTERVAL_MS ?? 1000),
    sweepSeconds: Number(env.RESERVOIR_SWEEP_SECONDS ?? 50),
    dnsOverHttps: env.RESERVOIR_DNS_OVER_HTTPS || undefined,
    requestTimeoutMs: env.RESERVOIR_REQUEST_TIMEOUT_MS ? Number(env.RESERVOIR_REQUEST_TIMEOUT_MS) : undefined,
  };
}
