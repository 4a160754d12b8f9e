/** Runs s3rver in its own process for benchmarks (so it does not share the load generator's CPU). */
import { startS3 } from "../test/support/s3.ts";

const s3 = await startS3();
process.stdout.write(JSON.stringify(s3.env) + "\n");
const stop = () => void s3.stop().finally(() => process.exit(0));
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
