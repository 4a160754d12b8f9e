/**
 * A loopback TCP proxy in front of Postgres that can drop every connection (as a failover or a
 * network cut does), refuse new ones for a while, and stall traffic (bytes are held, then
 * delivered, as a congested link or a paused primary does). Killing backends from the inside is
 * `terminateBackends` below: `pg_terminate_backend`, what an operator or an OOM killer does.
 */
import { connect, createServer, type Server, type Socket } from "node:net";
import postgres from "postgres";
import { postgresJsTypes } from "../../../storage/metadata/pg-types.ts";

export interface PgFaultProxy {
  /** DATABASE_URL for the server: the database's URL with the proxy's host and port. */
  url: string;
  /** Destroys every open connection (the server sees its sockets close mid-query). */
  dropAll(): number;
  /** Refuses (closes at once) new connections for `ms` (Infinity: until `refuse(0)`). */
  refuse(ms: number): void;

  /** Holds every byte in both directions for `ms`, then lets them through in order (0: at once). */
  stall(ms: number): void;
  /**
   * Terminates each of the next `n` new connections when its client sends its first bytes after
   * the start-up message (its first query): the proxy answers with the FATAL 57P01 error a
   * terminated backend sends, and closes it — a connection killed while it starts up.
   */
  cutNewConnectionsAtFirstQuery(n: number): void;
  /** Resolves once the stalled link holds a chunk the server sent towards Postgres. */
  whenHoldingServerBytes(): Promise<void>;
  close(): Promise<void>;
}

interface Pipe {
  client: Socket;
  upstream: Socket;
}

export async function startPgFaultProxy(databaseUrl: string): Promise<PgFaultProxy> {
  const target = new URL(databaseUrl);
  const pipes = new Set<Pipe>();
  let refuseUntil = 0;
  let stallUntil = 0;
  /**
   * Set by stall(), cleared only by its timer (or stall(0)), which then flushes what is held:
   * a timer may fire a few ms before Date.now() reaches stallUntil (it counts from the loop's
   * cached time), and a check against the clock then held the bytes of that gap with no timer
   * left to flush them, and every byte after them, for good.
   */
  let stalled = false;
  /** Chunks held while stalled, per direction, flushed in order when the stall ends. */
  const held: { to: Socket; chunk: Buffer }[] = [];
  let stallTimer: NodeJS.Timeout | undefined;
  let cutAtFirstQuery = 0;
  const upstreams = new Set<Socket>();
  const onHeldUpstream: (() => void)[] = [];

  const send = (to: Socket, chunk: Buffer) => {
    if (stalled) {
      held.push({ to, chunk });
      if (upstreams.has(to)) for (const wake of onHeldUpstream.splice(0)) wake();
    } else if (!to.destroyed) to.write(chunk);
  };
  const flushHeld = () => {
    stalled = false;
    stallUntil = 0;
    for (const { to, chunk } of held.splice(0)) if (!to.destroyed) to.write(chunk);
  };

  const server: Server = createServer((client) => {
    if (Date.now() < refuseUntil) return client.destroy();
    const upstream = connect(Number(target.port || 5432), target.hostname);
    const pipe = { client, upstream };
    upstreams.add(upstream);
    upstream.on("close", () => upstreams.delete(upstream));
    pipes.add(pipe);
    const end = () => {
      pipes.delete(pipe);
      client.destroy();
      upstream.destroy();
    };
    for (const s of [client, upstream]) {
      s.on("error", () => {});
      s.on("close", end);
    }
    /** Client chunks left until the cut (0: this connection is not cut). */
    let cutAt = 0;
    if (cutAtFirstQuery > 0) {
      cutAtFirstQuery--;
      cutAt = 2;
    }
    client.on("data", (c: Buffer) => {
      // Chunk 1 is the start-up message; chunk 2 the first query (no password under trust).
      if (cutAt > 0 && --cutAt === 0) {
        // What pg_terminate_backend makes the backend send before it closes the connection.
        client.write(adminShutdown());
        return end();
      }
      send(upstream, c);
    });
    upstream.on("data", (c: Buffer) => send(client, c));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  const url = new URL(databaseUrl);
  url.hostname = "127.0.0.1";
  url.port = String(port);
  return {
    url: url.toString(),
    dropAll() {
      const n = pipes.size;
      for (const p of [...pipes]) {
        p.client.destroy();
        p.upstream.destroy();
      }
      return n;
    },
    refuse(ms) {
      refuseUntil = Date.now() + ms;
    },

    stall(ms) {
      clearTimeout(stallTimer);
      if (ms === 0) return flushHeld();
      stallUntil = Math.max(stallUntil, Date.now() + ms);
      stalled = true;
      stallTimer = setTimeout(flushHeld, stallUntil - Date.now());
    },
    cutNewConnectionsAtFirstQuery(n) {
      cutAtFirstQuery = n;
    },
    whenHoldingServerBytes() {
      if (held.some((h) => upstreams.has(h.to))) return Promise.resolve();
      return new Promise<void>((resolve) => onHeldUpstream.push(resolve));
    },
    async close() {
      clearTimeout(stallTimer);
      for (const p of [...pipes]) {
        p.client.destroy();
        p.upstream.destroy();
      }
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** An ErrorResponse FATAL 57P01, as a terminated backend sends it. */
function adminShutdown(): Buffer {
  const fields = Buffer.from("SFATAL\0VFATAL\0C57P01\0Mterminating connection due to administrator command\0\0", "utf8");
  const head = Buffer.alloc(5);
  head.write("E", 0);
  head.writeInt32BE(4 + fields.length, 1);
  return Buffer.concat([head, fields]);
}

/**
 * Terminates every backend connected to the database of `databaseUrl` (through a direct admin
 * connection, not the proxy), except the admin's own; returns how many it killed.
 */
export async function terminateBackends(databaseUrl: string): Promise<number> {
  const name = decodeURIComponent(new URL(databaseUrl).pathname.slice(1));
  const admin = postgres(databaseUrl, { max: 1, types: postgresJsTypes, onnotice: () => {}, connect_timeout: 5, idle_timeout: 1 });
  try {
    const rows = await admin<{ ok: boolean }[]>`
      select pg_terminate_backend(pid) as ok from pg_stat_activity
      where datname = ${name} and pid <> pg_backend_pid()`;
    return rows.filter((r) => r.ok).length;
  } finally {
    await admin.end({ timeout: 2 }).catch(() => {});
  }
}
