import { defineConfig } from "drizzle-kit";

export default defineConfig({
  dialect: "postgresql",
  schema: "./storage/metadata/schema.ts",
  out: "./infra/migrations",
});
