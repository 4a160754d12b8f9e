// A module load hook (registered by postgres-write-guard.ts) that fixes the postgres.js 3.x driver
// as it is loaded. See postgres-write-guard.ts for why. Every patch names the exact text it
// replaces; a module without that text (another version) is left as it is, patch by patch.

/** The driver's modules, as the ESM build ships them. */
const CONNECTION = /\/node_modules\/postgres\/src\/connection\.js$/;
const INDEX = /\/node_modules\/postgres\/src\/index\.js$/;

/** Milliseconds a database call may go without any answer (0: no bound); set by initialize. */
let silenceMs = 0;

export function initialize(data) {
  if (data && Number.isFinite(data.silenceMs) && data.silenceMs > 0) silenceMs = Math.floor(data.silenceMs);
}

/** [text in the driver, its replacement] for src/connection.js. */
function connectionPatches() {
  return [
    // 1. A write to a closed connection is dropped: its query has already failed (closed()
    //    rejects it, below). Upstream porsager/postgres#1168, #1176.
    [
      "  function nextWrite(fn) {\n    const x = socket.write(chunk, fn)\n",
      "  function nextWrite(fn) {\n" +
        "    if (!socket) { chunk = null; nextWriteTimer = null; return false } // reservoir: closed, the query already failed\n" +
        "    const x = socket.write(chunk, fn)\n",
    ],
    // 2. A close forgets everything the closed session held, so nothing of it reaches the next
    //    session of the same Connection object: a statement registered after the socket's
    //    'error' (begin()'s ROLLBACK) stayed in `sent` for good when the close had an error,
    //    and the next session took it for its current statement, pairing every answer with
    //    the statement before (anomalies 8 and 9); a FATAL error of the old backend was
    //    reported as the answer to the next session's first statement.
    [
      "    socket.removeAllListeners()\n    socket = null\n\n    if (initial)\n      return reconnect()\n",
      "    socket.removeAllListeners()\n    socket = null\n" +
        "    reservoirForget(Errors.connection('CONNECTION_CLOSED', options)) // reservoir\n" +
        "\n    if (initial)\n      return reconnect()\n",
    ],
    // 3. The bound on a database call: armed when a statement is sent to an idle connection,
    //    restarted by every byte that arrives, disarmed when nothing is outstanding.
    [
      "      query\n        ? sent.push(q)\n        : (query = q, query.active = true)\n",
      "      query\n        ? sent.push(q)\n        : (query = q, query.active = true)\n" +
        "      reservoirBound || reservoirArm() // reservoir\n",
    ],
    ["  function data(x) {\n", "  function data(x) {\n    reservoirBound && reservoirArm() // reservoir\n"],
    [
      "    if (query)\n      return // Consider opening if able and sent.length < 50\n",
      "    query ? reservoirArm() : reservoirDisarm() // reservoir\n" +
        "    if (query)\n      return // Consider opening if able and sent.length < 50\n",
    ],
    [
      "  function connectTimedOut() {\n",
      `  // reservoir: a statement that gets no byte back for ${silenceMs} ms (0: never) fails with
  // CONNECTION_DESTROYED, as does every statement behind it, and the socket is destroyed: the
  // close puts the connection back in the pool's closed queue, to be opened afresh.
  var reservoirBound = null // var: declared below the function's return, so hoisted
  function reservoirArm() {
    if (!${silenceMs}) return
    clearTimeout(reservoirBound)
    reservoirBound = setTimeout(reservoirOverrun, ${silenceMs})
  }
  function reservoirDisarm() {
    clearTimeout(reservoirBound)
    reservoirBound = null
  }
  function reservoirOverrun() {
    reservoirBound = null
    if (!socket || (!query && !sent.length)) return
    const err = Errors.connection('CONNECTION_DESTROYED', options, socket)
    err.message = 'no answer from the database for ${silenceMs} ms (' + err.message + ')'
    reservoirForget(err)
    socket.destroy()
  }
  // reservoir: fail and forget every statement of the session and its half-read answer.
  function reservoirForget(err) {
    reservoirDisarm()
    stream && (stream.destroy(err), stream = null)
    query && queryError(query, err)
    while (sent.length)
      queryError(sent.shift(), err)
    query = results = errorResponse = final = null
    result = new Result()
    rows = 0
  }

  function connectTimedOut() {
`,
    ],
  ];
}

/** [text, replacement] for src/index.js. */
const INDEX_PATCHES = [
  // 4. A transaction's statements go to the session that ran its BEGIN, never to a later one:
  //    begin()'s body runs on after its connection closed (the caller has its rejection) and
  //    sends its ROLLBACK or next statement to the same Connection object, which the pool may
  //    have opened again for another caller. Such a statement fails with CONNECTION_CLOSED.
  [
    "    let savepoints = 0\n      , connection\n",
    "    let savepoints = 0\n      , connection\n      , opened // reservoir: the connection's closes at BEGIN\n",
  ],
  [
    "        q.catch(e => uncaughtError || (uncaughtError = e))\n        c.queue === full\n",
    "        q.catch(e => uncaughtError || (uncaughtError = e))\n" +
      "        if (c.closes !== opened) return q.reject(Errors.connection('CONNECTION_CLOSED', options)) // reservoir\n" +
      "        c.queue === full\n",
  ],
  [
    "    function onexecute(c) {\n      connection = c\n",
    "    function onexecute(c) {\n      connection = c\n      opened = c.closes // reservoir\n",
  ],
  [
    "  function onclose(c, e) {\n    move(c, closed)\n",
    "  function onclose(c, e) {\n    c.closes = (c.closes || 0) + 1 // reservoir\n    move(c, closed)\n",
  ],
];

/** The teardowns cancel a deferred write but leave its buffer and timer handle behind. */
const STALE_TEARDOWN = "\n    clearImmediate(nextWriteTimer)\n";
const CLEAN_TEARDOWN =
  "\n    clearImmediate(nextWriteTimer)\n    chunk = nextWriteTimer = null // reservoir: nothing deferred survives a close\n";

/** `source` with every patch applied, or as it is when any of them does not find its text. */
function patched(source, patches) {
  let out = source;
  for (const [from, to] of patches) {
    if (out.split(from).length !== 2) return source;
    out = out.replace(from, () => to);
  }
  return out;
}

export async function load(url, context, nextLoad) {
  const loaded = await nextLoad(url, context);
  const isConnection = CONNECTION.test(url);
  if ((!isConnection && !INDEX.test(url)) || loaded.source === undefined) return loaded;
  const source = typeof loaded.source === "string" ? loaded.source : new TextDecoder().decode(loaded.source);
  if (!isConnection) return { ...loaded, source: patched(source, INDEX_PATCHES) };
  const fixed = patched(source, connectionPatches());
  if (fixed === source) return loaded; // another version: leave it as it is
  return { ...loaded, source: fixed.replaceAll(STALE_TEARDOWN, CLEAN_TEARDOWN) };
}
