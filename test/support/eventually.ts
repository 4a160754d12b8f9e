/**
 * Polls an observable condition until `probe` gives something other than undefined or false,
 * which it returns; fails naming `what` after `timeoutMs`. The way tests wait on a server's
 * state instead of sleeping for a guessed time.
 */
export async function eventually<T>(
  what: string,
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
