/**
 * A server's address that stays bound for a whole campaign: a TCP forwarder to the server's
 * port. A server killed with `kill -9` is restarted on the same port, and until it listens
 * again that port is free: another test's server taking it meanwhile would answer the
 * campaign's clients (a 401 for a key it does not know). Through this address they meet a
 * refused connection instead, as clients of a down server should.
 */
import { createConnection, createServer, type Socket } from "node:net";

export interface FixedAddress {
  url: string;
  close(): Promise<void>;
}

export async function fixedAddress(targetPort: number): Promise<FixedAddress> {
  const open = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = createConnection({ host: "127.0.0.1", port: targetPort });
    open.add(client).add(upstream);
    const end = () => {
      client.destroy();
      upstream.destroy();
      open.delete(client);
      open.delete(upstream);
    };
    client.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of open) s.destroy();
        server.close(() => resolve());
      }),
  };
}
