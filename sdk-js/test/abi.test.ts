import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, it } from "vitest";
import { repoRoot } from "./util.js";

it("src/abi.ts is generated from the committed contract artifacts (run `npm run gen-abi`)", () => {
  const out = join(mkdtempSync(join(tmpdir(), "ecld-abi-")), "abi.ts");
  execFileSync(process.execPath, [join(repoRoot, "sdk-js/scripts/gen-abi.mjs"), out]);
  expect(readFileSync(out, "utf8")).toBe(readFileSync(join(repoRoot, "sdk-js/src/abi.ts"), "utf8"));
});
