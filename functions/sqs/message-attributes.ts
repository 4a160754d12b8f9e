/**
 * Message attributes travel as headers, so that a message sent through SQS reads the same
 * through /v1, webhooks and transactions: an attribute's name is the header name, a String or
 * Number value is the header value, a Binary value is its base64. The header names carry no
 * type: the SQS DataType of every attribute that is not a plain "String" (and a FIFO message's
 * deduplication id) are kept in one companion header, `x-reservoir-sqs`, a JSON object
 * `{ "types"?: { name: DataType }, "dedup"?: id }`, which SQS clients never see as an
 * attribute. A header without a type (e.g. produced through /v1) is a String attribute.
 */
import { decodeBase64, encodeBase64 } from "hono/utils/encode";
import { SqsError } from "./errors.ts";
import type { MessageAttributeValue } from "./md5.ts";
import type { Input } from "./input.ts";

export const COMPANION_HEADER = "x-reservoir-sqs";

export interface Companion {
  types?: Record<string, string>;
  dedup?: string;
}

/** An attribute as the JSON protocol carries it (BinaryValue base64-encoded). */
export interface WireAttribute {
  DataType: string;
  StringValue?: string;
  BinaryValue?: string;
}

const NAME = /^[A-Za-z0-9_.-]{1,256}$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

export interface ParsedAttributes {
  headers: Record<string, string>;
  /** For the MD5 and the size: the attributes with binary values decoded. */
  values: Record<string, MessageAttributeValue>;
  types: Record<string, string>;
  /** Bytes counted against the message size: names, types and values. */
  bytes: number;
}

/** Validates SQS message attributes (SQS's rules) and turns them into headers. */
export function parseAttributes(raw: Input | undefined): ParsedAttributes {
  const parsed: ParsedAttributes = { headers: {}, values: {}, types: {}, bytes: 0 };
  if (!raw) return parsed;
  const names = Object.keys(raw);
  if (names.length > 10)
    throw new SqsError("InvalidParameterValue", `Number of message attributes [${names.length}] exceeds the allowed maximum [10].`);
  const encoder = new TextEncoder();
  for (const name of names) {
    const lower = name.toLowerCase();
    if (
      !NAME.test(name) ||
      name.includes("..") ||
      name.startsWith(".") ||
      name.endsWith(".") ||
      lower.startsWith("aws.") ||
      lower.startsWith("amazon.") ||
      lower === COMPANION_HEADER
    ) {
      throw new SqsError("InvalidParameterValue", `Message attribute name '${name}' is invalid.`);
    }
    const value = raw[name] as Partial<WireAttribute> | null;
    if (!value || typeof value !== "object" || typeof value.DataType !== "string") {
      throw new SqsError("InvalidParameterValue", `The message attribute '${name}' must contain non-empty message attribute type.`);
    }
    const type = value.DataType;
    const base = /^(String|Number|Binary)(\.[A-Za-z0-9_.-]{1,200})?$/.exec(type)?.[1];
    if (!base)
      throw new SqsError(
        "InvalidParameterValue",
        `The message attribute '${name}' has an invalid message attribute type, the set of supported type prefixes is Binary, Number, and String.`,
      );
    if (base === "Binary") {
      if (typeof value.BinaryValue !== "string" || value.BinaryValue === "" || !BASE64.test(value.BinaryValue)) {
        throw new SqsError("InvalidParameterValue", `The message attribute '${name}' with type 'Binary' must use field 'Binary'.`);
      }
      const bytes = decodeBase64(value.BinaryValue);
      parsed.headers[name] = value.BinaryValue;
      parsed.values[name] = { DataType: type, BinaryValue: bytes };
      parsed.bytes += bytes.byteLength;
    } else {
      if (typeof value.StringValue !== "string" || value.StringValue === "") {
        throw new SqsError(
          "InvalidParameterValue",
          `The message attribute '${name}' must contain non-empty message attribute value for message attribute type '${base}'.`,
        );
      }
      if (base === "Number" && !/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(value.StringValue)) {
        throw new SqsError("InvalidParameterValue", `Can't cast the value of message (user) attribute '${name}' to a number.`);
      }
      if (!validText(value.StringValue))
        throw new SqsError("InvalidMessageContents", `The message attribute '${name}' contains characters outside the allowed set.`);
      parsed.headers[name] = value.StringValue;
      parsed.values[name] = { DataType: type, StringValue: value.StringValue };
      parsed.bytes += encoder.encode(value.StringValue).byteLength;
    }
    if (type !== "String") parsed.types[name] = type;
    parsed.bytes += encoder.encode(name).byteLength + encoder.encode(type).byteLength;
  }
  return parsed;
}

/** The headers a message is stored with: its attributes plus the companion header when needed. */
export function withCompanion(headers: Record<string, string>, companion: Companion): Record<string, string> {
  const kept: Companion = {};
  if (companion.types && Object.keys(companion.types).length > 0) kept.types = companion.types;
  if (companion.dedup !== undefined) kept.dedup = companion.dedup;
  return Object.keys(kept).length > 0 ? { ...headers, [COMPANION_HEADER]: JSON.stringify(kept) } : headers;
}

export interface StoredAttributes {
  attributes: Record<string, MessageAttributeValue>;
  companion: Companion;
}

/** A stored message's headers as SQS message attributes (typed by the companion header). */
export function attributesOf(headers: Record<string, string> | undefined): StoredAttributes {
  const out: StoredAttributes = { attributes: {}, companion: {} };
  if (!headers) return out;
  const raw = headers[COMPANION_HEADER];
  if (raw !== undefined) {
    try {
      const parsed = JSON.parse(raw) as Companion;
      if (parsed && typeof parsed === "object") out.companion = parsed;
    } catch {
      // A companion header set by hand through /v1 that is not ours: its attributes are Strings.
    }
  }
  const types = out.companion.types ?? {};
  for (const [name, value] of Object.entries(headers)) {
    if (name === COMPANION_HEADER) continue;
    const type = typeof types[name] === "string" ? types[name] : "String";
    if (type.startsWith("Binary") && BASE64.test(value)) out.attributes[name] = { DataType: type, BinaryValue: decodeBase64(value) };
    else out.attributes[name] = { DataType: type.startsWith("Binary") ? "String" : type, StringValue: value };
  }
  return out;
}

/** Attributes for the JSON answer (binary values base64-encoded again). */
export function wireAttributes(attributes: Record<string, MessageAttributeValue>): Record<string, WireAttribute> {
  const out: Record<string, WireAttribute> = {};
  for (const [name, v] of Object.entries(attributes)) {
    out[name] =
      v.BinaryValue !== undefined
        ? { DataType: v.DataType, BinaryValue: encodeBase64(v.BinaryValue.slice().buffer) }
        : { DataType: v.DataType, StringValue: v.StringValue ?? "" };
  }
  return out;
}

/** SQS's allowed characters: #x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD | #x10000-#x10FFFF. */
export function validText(text: string): boolean {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the control characters SQS refuses are the point.
  return text.isWellFormed() && !/[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/.test(text);
}

/** Whether `name` is selected by ReceiveMessage's MessageAttributeNames ("All", ".*", "prefix.*", names). */
export function selected(name: string, patterns: string[]): boolean {
  return patterns.some((p) => p === "All" || p === ".*" || p === name || (p.endsWith(".*") && name.startsWith(p.slice(0, -1))));
}
