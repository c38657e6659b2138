import { appendFileSync, existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { TestContext } from "vitest";

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

export function readVectors<T>(topic: string): T {
  return JSON.parse(readFileSync(join(repoRoot, "testdata", topic, "vectors.json"), "utf8")) as T;
}

const cargoTargetDir = process.env.CARGO_TARGET_DIR ?? join(process.env.HOME ?? "/", ".cache/ecld-target");

/** The Rust CLI built by cargo, or undefined (tests take it through `requireEcld`). */
export function ecldBin(): string | undefined {
  const candidates = [
    process.env.ECLD_BIN,
    process.env.CARGO_TARGET_DIR === undefined ? undefined : join(process.env.CARGO_TARGET_DIR, "debug/ecld"),
    join(repoRoot, "target/debug/ecld"),
    join(process.env.HOME ?? "/", ".cache/ecld-target/debug/ecld"),
  ];
  return candidates.find((c): c is string => c !== undefined && existsSync(c));
}

/** What a test that drives the Rust CLI says when it is not built. */
export const ECLD_MISSING = "the ecld binary (cargo's debug/ecld) is missing; run cargo build -p ecld (scripts/test-js builds it)";

/** Whether this is a CI run (`CI` set to anything but empty, "0" or "false"): a missing peer fails there. */
export function inCi(env: Record<string, string | undefined> = process.env): boolean {
  const ci = (env.CI ?? "").toLowerCase();
  return ci !== "" && ci !== "0" && ci !== "false";
}

/** The skip log that scripts/test lists at its end: $ECLD_SKIP_LOG, else ecld-skipped.txt in the cargo target directory. */
export function skipLog(): string {
  const named = process.env.ECLD_SKIP_LOG;
  return named !== undefined && named !== "" ? named : join(cargoTargetDir, "ecld-skipped.txt");
}

/**
 * The running test cannot run: `missing` ("X is missing; what installs it") is not here. Under
 * CI that is a failure (this throws, naming it); elsewhere the test is skipped, which Vitest's
 * summary shows, and the skip is recorded in the skip log for scripts/test's summary.
 */
export function missingPeer(ctx: TestContext, missing: string): never {
  const test = `sdk-js ${ctx.task.file.name} > ${ctx.task.name}`;
  if (inCi()) throw new Error(`${test}: ${missing} (under CI a missing peer is a failure, not a skip)`);
  console.error(`SKIPPED ${test}: ${missing}`);
  appendFileSync(skipLog(), `${test}: ${missing}\n`);
  return ctx.skip(missing);
}

/** The cargo-built ecld CLI for the running test; without it, `missingPeer`. */
export function requireEcld(ctx: TestContext): string {
  return ecldBin() ?? missingPeer(ctx, ECLD_MISSING);
}
