import { defineConfig } from "vitest/config";

// The end-to-end tests: they start `ecld up` (needs the cargo-built ecld binary).
export default defineConfig({
  test: { include: ["test/it/**/*.test.ts"], testTimeout: 120_000, hookTimeout: 180_000 },
});
