// A client of the raw answer form (functions/raw-messages.ts), written from its description in
// the OpenAPI document: the JSON head up to the first newline, then the values' bytes in order.
// It rebuilds each message as the JSON form shows it, so that tests can compare the two.

export const RAW_MESSAGES_TYPE = "application/vnd.reservoir.messages";

export interface RawAnswer {
  status: number;
  contentType: string | null;
  /** The head, with each message's value put back (`value`, or `valueBase64` for binary ones). */
  body: Record<string, any>;
}

export async function fetchRaw(url: string, token: string, init: { method?: string; json?: unknown } = {}): Promise<RawAnswer> {
  const res = await fetch(url, {
    method: init.method ?? "GET",
    headers: {
      authorization: `Bearer ${token}`,
      accept: RAW_MESSAGES_TYPE,
      ...(init.json === undefined ? {} : { "content-type": "application/json" }),
    },
    body: init.json === undefined ? undefined : JSON.stringify(init.json),
  });
  const bytes = new Uint8Array(await res.arrayBuffer());
  if (res.status !== 200) throw new Error(`${init.method ?? "GET"} ${url} answered ${res.status}: ${new TextDecoder().decode(bytes)}`);
  const newline = bytes.indexOf(0x0a);
  if (newline < 0) throw new Error("no newline after the head");
  const body = JSON.parse(new TextDecoder().decode(bytes.subarray(0, newline)));
  let at = newline + 1;
  for (const m of body.messages) {
    const value = bytes.subarray(at, at + m.valueLength);
    if (value.length !== m.valueLength) throw new Error(`the values end early at message ${m.offset}`);
    at += m.valueLength;
    if (m.binary) m.valueBase64 = Buffer.from(value).toString("base64");
    else m.value = new TextDecoder("utf-8", { fatal: true }).decode(value);
    delete m.valueLength;
    delete m.binary;
  }
  if (at !== bytes.length) throw new Error(`${bytes.length - at} bytes after the last value`);
  return { status: res.status, contentType: res.headers.get("content-type"), body };
}
