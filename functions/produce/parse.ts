/**
 * Reads a produce body once (JSON or ndjson) and validates it. Checks run cheapest first so
 * that a refused request costs little: media type, size while reading, syntax, count, shape.
 */
import type { z } from "@hono/zod-openapi";
import { readBoundedBytes } from "../bounded-body.ts";
import { ReservoirError } from "../../storage/errors.ts";
import { isUtf8, mediaType } from "../media-type.ts";
import { limits, MessageIn, ProduceBody } from "../schemas.ts";
import { scanProduceBody } from "./scan-body.ts";
import { BATCHES_TYPE } from "../stored-batches.ts";
import type { Runtime } from "../runtime.ts";

/** `valueBytes`: a `value` as its UTF-8 bytes, from the byte scan (scan-body.ts), in place of the string. */
export type IncomingMessage = z.infer<typeof MessageIn> & { valueBytes?: Uint8Array };
export interface ProduceRequestBody {
  messages: IncomingMessage[];
  transactionId?: string;
}

export type BodyFormat = "json" | "ndjson";

/** A produce body's format: JSON, ndjson, or record batches (functions/produce/batches.ts). */
export function bodyFormat(contentType: string | undefined): BodyFormat | "batches" {
  const media = mediaType(contentType);
  if (media.type === BATCHES_TYPE) return "batches";
  const format = media.type === "application/json" ? "json" : media.type === "application/x-ndjson" ? "ndjson" : undefined;
  if (!format) {
    throw new ReservoirError(
      "unsupported_media_type",
      `produce takes Content-Type application/json, application/x-ndjson or ${BATCHES_TYPE}`,
    );
  }
  if (!isUtf8(media)) throw new ReservoirError("unsupported_media_type", `${format} is UTF-8; charset=${media.charset} is not accepted`);
  return format;
}

/** The body's bytes, refused as soon as they pass the limit (also without Content-Length). */
export function readBody(request: Request, maxBytes: number, declaredBody?: Runtime["declaredBody"]): Promise<Uint8Array> {
  const tooLarge = () => new ReservoirError("body_too_large", `the request body exceeds the limit of ${maxBytes} bytes (8 MiB)`);
  return readBoundedBytes(request, maxBytes, tooLarge, declaredBody);
}

const utf8 = new TextDecoder();

/**
 * A JSON body of printable ASCII without escapes is scanned from its bytes (scan-body.ts); any
 * other body is decoded (malformed UTF-8 becoming U+FFFD, as Request.text() does), parsed and checked.
 */
export function parseProduceBody(bytes: Uint8Array, format: BodyFormat): ProduceRequestBody {
  if (format === "json") {
    const scanned = scanProduceBody(bytes);
    if (scanned) return scanned;
  }
  const text = utf8.decode(bytes);
  let raw: unknown;
  if (format === "json") {
    raw = parseJson(text, "the request body");
  } else {
    const lines = text.split("\n").filter((line) => line.trim() !== "");
    checkCount(lines.length);
    raw = { messages: lines.map((line, i) => parseJson(line, `line ${i + 1}`)) };
  }
  if (raw && typeof raw === "object" && Array.isArray((raw as { messages?: unknown }).messages)) {
    checkCount((raw as { messages: unknown[] }).messages.length);
  }
  const body = plainBody(raw) ? raw : validated(raw);
  if (body.messages.length === 0) {
    throw new ReservoirError("invalid_request", "messages must hold at least one message");
  }
  return body;
}

function validated(raw: unknown): ProduceRequestBody {
  const parsed = ProduceBody.safeParse(raw);
  if (!parsed.success) throw invalid(parsed.error);
  return parsed.data;
}

/*
 * A fast path for the schema: a body it accepts is used as parsed, where zod would copy every
 * message (a thousand objects per request). It accepts only what ProduceBody accepts; anything
 * else, valid or not, goes through zod, which also words the errors.
 */
const MESSAGE_KEYS = new Set(Object.keys(MessageIn.shape));

const isRecord = (x: unknown): x is Record<string, unknown> => typeof x === "object" && x !== null && !Array.isArray(x);
const optional = (x: unknown, check: (x: unknown) => boolean) => x === undefined || check(x);
const isString = (x: unknown) => typeof x === "string";
const isCount = (x: unknown) => typeof x === "number" && Number.isSafeInteger(x) && x >= 0;

function plainBody(raw: unknown): raw is ProduceRequestBody {
  if (!isRecord(raw) || !Array.isArray(raw.messages) || !optional(raw.transactionId, isString)) return false;
  for (const k in raw) if (k !== "messages" && k !== "transactionId") return false;
  return raw.messages.every(plainMessage);
}

function plainMessage(m: unknown): boolean {
  if (!isRecord(m)) return false;
  for (const k in m) if (!MESSAGE_KEYS.has(k)) return false;
  return (
    (m.value === undefined) !== (m.valueBase64 === undefined) &&
    optional(m.value, isString) &&
    optional(m.valueBase64, isString) &&
    optional(m.key, isString) &&
    optional(m.headers, plainHeaders) &&
    optional(m.partition, isCount) &&
    optional(m.idempotencyKey, (k) => typeof k === "string" && k.length >= 1 && k.length <= 256) &&
    optional(m.delaySeconds, isCount) &&
    optional(m.deliverAt, isCount)
  );
}

function plainHeaders(h: unknown): boolean {
  // "__proto__" is left to zod, whose copy decides what becomes of it.
  if (!isRecord(h) || Object.hasOwn(h, "__proto__")) return false;
  for (const k in h) if (typeof h[k] !== "string") return false;
  return true;
}

function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new ReservoirError("malformed_json", `${what} is not valid JSON`);
  }
}

function checkCount(n: number): void {
  if (n > limits.messagesPerRequest) {
    throw new ReservoirError("too_many_messages", `${n} messages in one request; the limit is ${limits.messagesPerRequest}`, {
      limit: limits.messagesPerRequest,
    });
  }
}

export function invalid(error: z.ZodError): ReservoirError {
  const issue = error.issues[0];
  const where = issue.path.length ? issue.path.join(".") : "body";
  return new ReservoirError("invalid_request", `${where}: ${issue.message}`, {
    errors: error.issues.slice(0, 20).map((i) => ({ path: i.path.join("."), message: i.message })),
  });
}
