// A module load hook (registered by postgres-write-guard.ts) that fixes one function of the
// postgres.js 3.x driver as it is loaded. See postgres-write-guard.ts for why.

/** The driver's connection module, as the ESM build ships it. */
const CONNECTION = /\/node_modules\/postgres\/src\/connection\.js$/;
const UNGUARDED = "  function nextWrite(fn) {\n    const x = socket.write(chunk, fn)\n";
const GUARDED =
  "  function nextWrite(fn) {\n" +
  "    if (!socket) { chunk = null; nextWriteTimer = null; return false } // reservoir: closed, the query already failed\n" +
  "    const x = socket.write(chunk, fn)\n";
/** The teardowns cancel a deferred write but leave its buffer and timer handle behind. */
const STALE_TEARDOWN = "\n    clearImmediate(nextWriteTimer)\n";
const CLEAN_TEARDOWN =
  "\n    clearImmediate(nextWriteTimer)\n    chunk = nextWriteTimer = null // reservoir: nothing deferred survives a close\n";

export async function load(url, context, nextLoad) {
  const loaded = await nextLoad(url, context);
  if (!CONNECTION.test(url) || loaded.source === undefined) return loaded;
  const source = typeof loaded.source === "string" ? loaded.source : new TextDecoder().decode(loaded.source);
  if (!source.includes(UNGUARDED)) return loaded; // another version: leave it as it is
  return { ...loaded, source: source.replace(UNGUARDED, GUARDED).replaceAll(STALE_TEARDOWN, CLEAN_TEARDOWN) };
}
