/**
 * A JSON produce body read straight from its bytes, for the common case: printable ASCII with no
 * escapes. Each message's value is then a view of the body, the very bytes that get stored, and
 * no string is made for it. At max rate the generic path's text of a 1,000-message body and its
 * 1,000 parsed values were two thirds of all the server allocated, and collecting them a third
 * of its CPU (docs/benchmarks.md, "Session 10").
 *
 * Anything else returns undefined and the generic path (TextDecoder, JSON.parse, zod) takes the
 * body and decides, with its own errors: escapes, bytes outside printable ASCII within strings,
 * numbers that are not plain non-negative integers, null, duplicate or unknown keys, a header
 * named `__proto__`, no messages or too many, an idempotency key of the wrong length, and
 * malformed JSON. So a body scanned here gives exactly what JSON.parse and the schema would have.
 */
import { limits } from "../schemas.ts";
import type { IncomingMessage, ProduceRequestBody } from "./parse.ts";

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;

/** The message fields as bytes; a field's index is its bit, to catch a repeated one. */
const FIELDS = ["value", "valueBase64", "key", "headers", "partition", "idempotencyKey", "delaySeconds", "deliverAt"];
const [VALUE, VALUE_BASE64, KEY, HEADERS, PARTITION, IDEMPOTENCY_KEY, DELAY_SECONDS, DELIVER_AT] = FIELDS.keys();
const FIELD_BYTES = FIELDS.map((name) => Uint8Array.from(name, (ch) => ch.charCodeAt(0)));
const MESSAGES = Uint8Array.from("messages", (ch) => ch.charCodeAt(0));
const TRANSACTION_ID = Uint8Array.from("transactionId", (ch) => ch.charCodeAt(0));
/** Longer than any safe integer's digits would be refused by the schema anyway: left to it. */
const MAX_DIGITS = 15;

const ascii = new TextDecoder();

/** Thrown inside the scan to give up; caught once at the top. */
const GIVE_UP = Symbol("generic path");

export function scanProduceBody(bytes: Uint8Array): ProduceRequestBody | undefined {
  try {
    return new BodyScanner(bytes).body();
  } catch (error) {
    if (error === GIVE_UP) return undefined;
    throw error;
  }
}

class BodyScanner {
  private at = 0;
  /** The last string read: [start, end) of its content. */
  private start = 0;
  private end = 0;
  /** The body as 32-bit words from its first 4-aligned byte, for the string scan. */
  private readonly words: Uint32Array;
  /** The body index of words[0]. */
  private readonly wordStart: number;

  constructor(private readonly b: Uint8Array) {
    this.wordStart = (4 - (b.byteOffset & 3)) & 3;
    const count = Math.max(0, (b.byteLength - this.wordStart) >> 2);
    this.words = count > 0 ? new Uint32Array(b.buffer, b.byteOffset + this.wordStart, count) : new Uint32Array(0);
  }

  body(): ProduceRequestBody {
    let messages: IncomingMessage[] | undefined;
    let transactionId: string | undefined;
    this.expect(OPEN_OBJECT);
    if (!this.closes(CLOSE_OBJECT)) {
      do {
        this.string();
        this.expect(COLON);
        if (this.named(MESSAGES) && messages === undefined) messages = this.messages();
        else if (this.named(TRANSACTION_ID) && transactionId === undefined) transactionId = this.text();
        else throw GIVE_UP;
      } while (this.next(CLOSE_OBJECT));
    }
    this.space();
    if (this.at !== this.b.length || messages === undefined || messages.length === 0) throw GIVE_UP;
    return transactionId === undefined ? { messages } : { messages, transactionId };
  }

  private messages(): IncomingMessage[] {
    const out: IncomingMessage[] = [];
    this.expect(OPEN_ARRAY);
    if (this.closes(CLOSE_ARRAY)) return out;
    do {
      if (out.length === limits.messagesPerRequest) throw GIVE_UP;
      out.push(this.message());
    } while (this.next(CLOSE_ARRAY));
    return out;
  }

  private message(): IncomingMessage {
    // Every field present from the start (undefined when absent): one object shape for all.
    const m: IncomingMessage = {
      valueBytes: undefined,
      valueBase64: undefined,
      key: undefined,
      headers: undefined,
      partition: undefined,
      idempotencyKey: undefined,
      delaySeconds: undefined,
      deliverAt: undefined,
    };
    let seen = 0;
    this.expect(OPEN_OBJECT);
    if (!this.closes(CLOSE_OBJECT)) {
      do {
        this.string();
        const field = this.field();
        if (field < 0 || seen & (1 << field)) throw GIVE_UP;
        seen |= 1 << field;
        this.expect(COLON);
        switch (field) {
          case VALUE:
            this.string();
            m.valueBytes = this.b.subarray(this.start, this.end);
            break;
          case VALUE_BASE64:
            m.valueBase64 = this.text();
            break;
          case KEY:
            m.key = this.text();
            break;
          case HEADERS:
            m.headers = this.headers();
            break;
          case PARTITION:
            m.partition = this.count();
            break;
          case IDEMPOTENCY_KEY: {
            const key = this.text();
            if (key.length < 1 || key.length > 256) throw GIVE_UP;
            m.idempotencyKey = key;
            break;
          }
          case DELAY_SECONDS:
            m.delaySeconds = this.count();
            break;
          case DELIVER_AT:
            m.deliverAt = this.count();
            break;
        }
      } while (this.next(CLOSE_OBJECT));
    }
    if ((m.valueBytes === undefined) === (m.valueBase64 === undefined)) throw GIVE_UP;
    return m;
  }

  private headers(): Record<string, string> {
    const headers: Record<string, string> = {};
    this.expect(OPEN_OBJECT);
    if (this.closes(CLOSE_OBJECT)) return headers;
    do {
      const name = this.text();
      // JSON.parse keeps a repeated name's last value; "__proto__" is the schema's to decide.
      if (name === "__proto__" || Object.hasOwn(headers, name)) throw GIVE_UP;
      this.expect(COLON);
      headers[name] = this.text();
    } while (this.next(CLOSE_OBJECT));
    return headers;
  }

  /** True, past it, when the next token closes what was just opened (it is empty). */
  private closes(close: number): boolean {
    this.space();
    if (this.b[this.at] !== close) return false;
    this.at++;
    return true;
  }

  /** After a member: true past a comma (another member follows), false past `close`. */
  private next(close: number): boolean {
    this.space();
    const c = this.b[this.at++];
    if (c === COMMA) return true;
    if (c === close) return false;
    throw GIVE_UP;
  }

  /** A plain non-negative integer (no sign, fraction or exponent), as JSON.parse gives it. */
  private count(): number {
    this.space();
    const b = this.b;
    const start = this.at;
    let n = 0;
    while (b[this.at] >= 0x30 && b[this.at] <= 0x39) n = n * 10 + b[this.at++] - 0x30;
    const digits = this.at - start;
    if (digits === 0 || digits > MAX_DIGITS || (digits > 1 && b[start] === 0x30)) throw GIVE_UP;
    const next = b[this.at];
    if (next === 0x2e || next === 0x65 || next === 0x45) throw GIVE_UP; // . e E
    return n;
  }

  private text(): string {
    this.string();
    return ascii.decode(this.b.subarray(this.start, this.end));
  }

  /**
   * A string of printable ASCII without escapes: its content is then [start, end), and the
   * position past its closing quote. Word by word until a word holds a quote, a backslash, a
   * control byte or a byte ≥ 0x80 (`special`), then bytewise.
   */
  private string(): void {
    this.expect(QUOTE);
    const b = this.b;
    const length = b.length;
    const wordStart = this.wordStart;
    let i = this.at;
    this.start = i;
    while (i < length && ((i - wordStart) & 3) !== 0) {
      const c = b[i];
      if (c === QUOTE) {
        this.closeAt(i);
        return;
      }
      if (!printable(c)) throw GIVE_UP;
      i++;
    }
    const words = this.words;
    let w = (i - wordStart) >> 2;
    // Four words a step (one branch per 16 bytes: a fifth less time per KiB than one word a
    // step), then the word that stopped it found one at a time.
    const quads = words.length - 3;
    for (; w < quads; w += 4)
      if ((special(words[w]) | special(words[w + 1]) | special(words[w + 2]) | special(words[w + 3])) & HIGH_BITS) break;
    for (; w < words.length; w++) if (special(words[w]) & HIGH_BITS) break;
    for (i = Math.max(i, wordStart + w * 4); i < length; i++) {
      const c = b[i];
      if (c === QUOTE) {
        this.closeAt(i);
        return;
      }
      if (!printable(c)) throw GIVE_UP;
    }
    throw GIVE_UP;
  }

  private closeAt(quote: number): void {
    this.end = quote;
    this.at = quote + 1;
  }

  /** Whether the last string read is `name`. */
  private named(name: Uint8Array): boolean {
    if (this.end - this.start !== name.length) return false;
    for (let k = 0; k < name.length; k++) if (this.b[this.start + k] !== name[k]) return false;
    return true;
  }

  /** The message field the last string read names, or −1. */
  private field(): number {
    for (let f = 0; f < FIELD_BYTES.length; f++) if (this.named(FIELD_BYTES[f])) return f;
    return -1;
  }

  private expect(c: number): void {
    this.space();
    if (this.b[this.at] !== c) throw GIVE_UP;
    this.at++;
  }

  /** JSON's whitespace: space, tab, line feed, carriage return. */
  private space(): void {
    const b = this.b;
    let c = b[this.at];
    while (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) c = b[++this.at];
  }
}

const HIGH_BITS = 0x80808080;

/**
 * A word whose bytes' high bits are all clear here holds no quote, backslash, control byte or
 * byte ≥ 0x80. Each test subtracts per byte: a byte equal to the quote or backslash (0 after the
 * XOR) or below 0x20 borrows, which sets its high bit. No byte that should be found is missed; a
 * byte ≥ 0x80 sets its own (the `| x`), and a borrow can only set the bit of a byte above one
 * that was found, so the word as a whole is exact. (Without bytes ≥ 0x80 the classic `& ~x`
 * of each test adds nothing, and `| x` covers the words that have them.) The subtractions give
 * doubles that `|` takes modulo 2^32: the 32-bit results.
 */
function special(x: number): number {
  return ((x ^ 0x22222222) - 0x01010101) | ((x ^ 0x5c5c5c5c) - 0x01010101) | (x - 0x20202020) | x;
}

/** A byte a JSON string holds as itself (the quote is tested first). */
const printable = (c: number) => c >= 0x20 && c < 0x80 && c !== BACKSLASH;
