#!/usr/bin/env node
// The `reservoir` command. The CLI is TypeScript (client/src/cli); tsx (a dependency of this
// package and of the repository) compiles it on load, so a checkout runs it with no build step.
import { register } from "tsx/esm/api";

register();
await import("../src/cli/main.ts");
