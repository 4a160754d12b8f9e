/**
 * A server preload for reading V8's collector traces beside a benchmark's phases: V8 prints
 * --trace-gc, --trace-gc-nvp and --trace-incremental-marking to file descriptor 1, which the
 * harness reads for the server's "listening" line. This sends descriptor 1 to
 * /tmp/reservoir-gc-<pid>.log instead (closing it makes the next open take its number), and
 * first writes the process's time origin in monotonic microseconds, so that V8's "N ms" stamps
 * can be placed among the `publishWindowUs` that `bench/drain-variants.ts --publish` prints
 * (docs/benchmarks.md, "Session 17"; "Reproduce"). Only in the main thread: tsx's loader
 * thread loads it too.
 *
 *   --variant 'a={"nodeArgs":["--trace-gc","--trace-incremental-marking","--require","<repo>/bench/lib/gc-trace.cjs"]}'
 */
const { closeSync, openSync, writeSync } = require("node:fs");
const { isMainThread } = require("node:worker_threads");

if (isMainThread) {
  closeSync(1);
  openSync(`/tmp/reservoir-gc-${process.pid}.log`, "a");
  const originUs = process.hrtime.bigint() / 1000n - BigInt(Math.round(performance.now() * 1000));
  writeSync(1, `origin ${originUs}\n`);
}
