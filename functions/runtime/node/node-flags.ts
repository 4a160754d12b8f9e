/**
 * The flags Node runs the server with: `npm start` (package.json) passes them, and so do the
 * tests and benchmarks that start the server (test/support/node-server.ts); a unit test keeps the
 * two in step.
 *
 * --max-semi-space-size=32: V8's young generation may grow to 32 MiB a half (16 by default). A
 * request's bodies, records and answers die young, but at max rate 16 MiB filled within
 * milliseconds, and each scavenge copied what was still in flight and promoted it to the old
 * generation. With 32 MiB the server spent about a quarter less CPU per message at max rate
 * (publish then consume); 64 MiB did no better there and, like 32 a little less, lengthened the
 * scavenges that a steady rate's slowest requests wait for (docs/benchmarks.md, session 24).
 */
export const SERVER_NODE_FLAGS = ["--max-semi-space-size=32"] as const;
