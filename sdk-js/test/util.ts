import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

export function readVectors<T>(topic: string): T {
  return JSON.parse(readFileSync(join(repoRoot, "testdata", topic, "vectors.json"), "utf8")) as T;
}

/** The Rust CLI built by cargo, or undefined (callers skip loudly). */
export function ecldBin(): string | undefined {
  const candidates = [
    process.env.ECLD_BIN,
    process.env.CARGO_TARGET_DIR === undefined ? undefined : join(process.env.CARGO_TARGET_DIR, "debug/ecld"),
    join(repoRoot, "target/debug/ecld"),
    join(process.env.HOME ?? "/", ".cache/ecld-target/debug/ecld"),
  ];
  return candidates.find((c): c is string => c !== undefined && existsSync(c));
}
