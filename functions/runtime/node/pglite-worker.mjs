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
import { parentPort, workerData } from "node:worker_threads";
import { PGlite } from "@electric-sql/pglite";
import { PGLiteSocketServer } from "@electric-sql/pglite-socket";

/** @type {{ dir: string }} */
const { dir } = workerData;

const db = await PGlite.create(dir);
const server = new PGLiteSocketServer({ db, host: "127.0.0.1", port: 0, maxConnections: 1 });
await server.start();
parentPort?.postMessage({ ready: server.getServerConn() });

parentPort?.on("message", async (message) => {
  if (message !== "stop") return;
  await server.stop();
  await db.close();
  parentPort?.postMessage({ stopped: true });
});
