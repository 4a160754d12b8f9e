/**
 * The S3 store's Node pieces, injected by functions/runtime/node/server.ts (the core imports no runtime): a
 * NodeHttpHandler on keep-alive agents, and the AWS default credential chain when no static
 * keys are configured.
 */
import { Agent as HttpAgent } from "node:http";
import { Agent as HttpsAgent } from "node:https";
import { NodeHttpHandler } from "@smithy/node-http-handler";
import { S3ObjectStore, type S3StoreConfig } from "../../../storage/objects/s3-store.ts";
import { awsDefaultCredentials } from "./aws-credentials.ts";

/**
 * Sockets per agent: flushes in flight (up to the batcher's limit per tenant, one PUT each)
 * plus the ranged GETs of consumers. Beyond this, requests wait for a socket in the agent
 * rather than opening ever more connections to the store (the SDK logs a warning then).
 */
const MAX_SOCKETS = 256;
/** A connection not established within this long fails (and is retried by the SDK). */
const CONNECTION_TIMEOUT_MS = 5_000;
/** A request not answered within this long fails (and the flush or read that made it, with 503). */
const REQUEST_TIMEOUT_MS = 60_000;

export function nodeS3RequestHandler(): NodeHttpHandler {
  const agent = { keepAlive: true, maxSockets: MAX_SOCKETS };
  return new NodeHttpHandler({
    httpAgent: new HttpAgent(agent),
    httpsAgent: new HttpsAgent(agent),
    connectionTimeout: CONNECTION_TIMEOUT_MS,
    requestTimeout: REQUEST_TIMEOUT_MS,
    throwOnRequestTimeout: true,
  });
}

/** The S3 store as the Node server runs it. */
export function nodeS3Store(config: S3StoreConfig): S3ObjectStore {
  return new S3ObjectStore({
    ...config,
    credentials: config.credentials ?? awsDefaultCredentials(),
    requestHandler: config.requestHandler ?? nodeS3RequestHandler(),
  });
}
