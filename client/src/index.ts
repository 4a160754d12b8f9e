/**
 * @reservoir/client: a typed SDK for Reservoir. It imports nothing but Web APIs (fetch, Web
 * Crypto, TextEncoder, AbortSignal), so it runs in Node 20+, Cloudflare Workers, Deno, Bun and
 * browsers. The CLI (src/cli/) is a separate entry with its own dependencies.
 */
export { Reservoir } from "./client.ts";
export type { ClientOptions } from "./http.ts";
export { type ErrorCode, isProblem, ReservoirError } from "./errors.ts";
export { Producer, type ProducerOptions } from "./producer.ts";
export { Consumer, type ConsumerOptions, type ConsumerStats, type Handler, type HandlerContext } from "./consumer.ts";
export type { ReadOptions, StartFrom } from "./iterate.ts";
export { TransactionHandle, type TransactionAcks } from "./transactions.ts";
export { backoffDelay, type RetryPolicy } from "./retry.ts";
export { signWebhook, verifyWebhook, webhookHeaders, WebhookVerificationError, type VerifyOptions } from "./webhooks.ts";
export { base64ToBytes, bytesToBase64, toMessage, valueBytes, valueText } from "./values.ts";
// (No constants: the workerd test runs the bundle as a Worker module, whose exports must be handlers.)
export { type BatchAcked, type BatchLease, type BatchMessage, type DecodeOptions, decodeBatchesAnswer } from "./batches.ts";
export { type BatchMessageIn, encodeProduceBatches, type ProduceBatch, type ProducedRange } from "./produce-batches.ts";
export type * from "./types.ts";
export type { components, operations, paths, ProblemCode } from "./generated/openapi.ts";
