/**
 * Runs s3rver in its own process for benchmarks (so it does not share the load generator's CPU).
 *
 * Its objects go to memory (/dev/shm) where there is one, or to BENCH_S3_DIR. s3rver writes three
 * files per object, and on an ext4 file system without a journal (this machine's) creating a
 * file first skips every inode of its group deleted in the last minute or more (fs/ext4/ialloc.c,
 * recently_deleted): after a teardown's deletes, s3rver's threads spent 8–11% of both cores in
 * that scan (docs/benchmarks.md, session 16). The object store stands in for a remote service;
 * that cost is this file system's, not S3's, and it took CPU from everything else measured.
 */
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { startS3 } from "../test/support/s3.ts";

const s3 = await startS3(process.env.BENCH_S3_DIR || (existsSync("/dev/shm") ? "/dev/shm" : tmpdir()));
process.stdout.write(JSON.stringify(s3.env) + "\n");
const stop = () => void s3.stop().finally(() => process.exit(0));
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
