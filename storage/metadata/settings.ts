/** Deployment-wide secrets kept in Postgres, so every instance (Node or Worker) shares them. */
import { eq } from "drizzle-orm";
import type { Database } from "./db.ts";
import { settings } from "./schema.ts";

function randomHex(bytes: number): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(bytes)), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The key that signs receipts: created by the first instance, read by all. */
export async function receiptKey(db: Database): Promise<Uint8Array> {
  await db
    .insert(settings)
    .values({ name: "receipt_key", value: randomHex(32) })
    .onConflictDoNothing();
  const [row] = await db.select({ value: settings.value }).from(settings).where(eq(settings.name, "receipt_key"));
  return Uint8Array.from(row.value.match(/../g)!, (h) => parseInt(h, 16));
}

/**
 * The deployment's API-key secret must be one secret at every instance (keys derived by one
 * are checked by another). The first instance records the secret's fingerprint (never the
 * secret); true when `fingerprint` is the recorded one, false when another secret was recorded.
 */
export async function agreesOnKeySecret(db: Database, fingerprint: string): Promise<boolean> {
  await db.insert(settings).values({ name: "key_secret_fingerprint", value: fingerprint }).onConflictDoNothing();
  const [row] = await db.select({ value: settings.value }).from(settings).where(eq(settings.name, "key_secret_fingerprint"));
  return row.value === fingerprint;
}
