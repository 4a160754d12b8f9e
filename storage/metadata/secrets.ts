/** Hashing and comparison of secrets with Web Crypto (both runtimes). */
const encoder = new TextEncoder();

export async function sha256(text: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(text)));
}

export async function sha256Hex(text: string): Promise<string> {
  let hex = "";
  for (const b of await sha256(text)) hex += b.toString(16).padStart(2, "0");
  return hex;
}

/** Compares two secrets in time independent of where they differ (digests have equal length). */
export async function secretsEqual(a: string, b: string): Promise<boolean> {
  const [x, y] = await Promise.all([sha256(a), sha256(b)]);
  let diff = 0;
  for (let i = 0; i < x.length; i++) diff |= x[i] ^ y[i];
  return diff === 0;
}
