/**
 * The embedded database's thread: PGlite (Postgres compiled to WebAssembly) on the data dir,
 * served over the Postgres wire protocol on a loopback port for the server's main thread.
 *
 * Why a thread of its own: PGlite runs every statement, and writes its files, synchronously on
 * the thread that calls it. On the main thread each statement stalled the HTTP server and every
 * PUT's completion behind it (the folder store's PUT p99 was hundreds of milliseconds at 5,000
 * msgs/s although a PUT alone takes a few). Here it runs on the machine's other core, and the
 * main thread talks to it with postgres.js, the driver it uses for a Postgres server.
 *
 * PGlite is one single-user backend: the socket server takes one connection (the main thread's
 * pool has one), so transactions run one at a time, as they did in-process.
 *
 * Plain JavaScript: a worker thread does not inherit the TypeScript loader the server runs under.
 */
import { Server } from "node:net";
import { parentPort, workerData } from "node:worker_threads";
import { PGlite } from "@electric-sql/pglite";
import { PGLiteSocketServer } from "@electric-sql/pglite-socket";

/** @type {{ dir: string }} */
const { dir } = workerData;

const db = await PGlite.create(dir);
const server = new PGLiteSocketServer({ db, host: "127.0.0.1", port: 0, maxConnections: 1 });
await server.start();
coalesceWrites(server);
parentPort?.postMessage({ ready: server.getServerConn() });

parentPort?.on("message", async (message) => {
  if (message !== "stop") return;
  await server.stop();
  await db.close();
  parentPort?.postMessage({ stopped: true });
});

/**
 * The socket server writes each piece of output PGlite hands it (up to a flush of the backend's
 * buffer: a few per statement) as a write of its own, a system call each. Corked for the rest of
 * the event loop's turn, the pieces written while the statements of one turn run leave in one
 * write. Nothing is held past the turn: the uncork comes in the same turn's check phase. The
 * drain's CPU per message fell 10–20% (docs/benchmarks.md, "Embedded: the regression after
 * session 6"). The listening socket is pglite-socket's own (0.2.17: `server`, not in its types):
 * an upgrade that moves it fails here, at start, not silently.
 *
 * @param {PGLiteSocketServer} socketServer
 */
function coalesceWrites(socketServer) {
  /** @type {import("node:net").Server} */
  const listening = /** @type {any} */ (socketServer).server;
  if (!(listening instanceof Server)) throw new Error("pglite-socket: no listening socket to coalesce the writes of");
  listening.on("connection", (socket) => {
    const write = socket.write;
    let corked = false;
    socket.write = function (...args) {
      if (!corked) {
        corked = true;
        socket.cork();
        setImmediate(() => {
          corked = false;
          socket.uncork();
        });
      }
      return write.apply(this, args);
    };
  });
}
