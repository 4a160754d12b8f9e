/** Writes client/src/generated/openapi.ts from the server's OpenAPI document (see openapi-types.ts). */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { repoRoot } from "./repo-root.ts";
import { generatedTypes, generatedTypesPath } from "./openapi-types.ts";

writeFileSync(join(repoRoot, generatedTypesPath), await generatedTypes());
console.log(`wrote ${generatedTypesPath}`);
