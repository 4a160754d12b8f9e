/**
 * Node's native CRC32C (@node-rs/crc32: prebuilt binaries, no install script), checked against
 * the standard check value before it is trusted. Without a binary for the platform, the
 * JavaScript implementation stays in use.
 */
import type { Crc32c } from "../../../storage/segment/crc32c.ts";

export async function nativeCrc32c(): Promise<Crc32c | undefined> {
  try {
    const { crc32c } = await import("@node-rs/crc32");
    if (crc32c(new TextEncoder().encode("123456789")) !== 0xe3069283) return undefined;
    return (bytes, initial = 0) => crc32c(bytes, initial);
  } catch {
    return undefined;
  }
}
