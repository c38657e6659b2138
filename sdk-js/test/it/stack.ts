import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import type { Address, Hex } from "viem";
import { ecldBin, repoRoot } from "../util.js";

/** The ready line of `ecld up --json`. */
export interface Stack {
  rpc: string;
  store: string;
  chainId: number;
  deployment: { chainId: number; token: Address; registry: Address; marketplace: Address; deployBlock: number };
  demoKey: Hex;
  images: { name: string; id: Hex; allows_sim: boolean }[];
  stop(): Promise<void>;
}

/** Starts `ecld up` on ephemeral ports in a fresh data directory; `stop()` ends it. */
export async function startStack(): Promise<Stack | undefined> {
  const bin = ecldBin();
  if (bin === undefined) return undefined;
  const dataDir = mkdtempSync(join(tmpdir(), "ecld-js-up-"));
  const child: ChildProcess = spawn(
    bin,
    ["up", "--data-dir", dataDir, "--ephemeral-ports", "--programs", join(repoRoot, "programs/out"), "--json", "--stop-on-stdin-eof"],
    { stdio: ["pipe", "pipe", "inherit"] },
  );
  const line = await new Promise<string>((resolve, reject) => {
    const rl = createInterface({ input: child.stdout! });
    const timer = setTimeout(() => reject(new Error("ecld up did not become ready in 120 s")), 120_000);
    rl.once("line", (l) => { clearTimeout(timer); resolve(l); });
    child.once("exit", (code) => { clearTimeout(timer); reject(new Error(`ecld up exited with ${code} before it was ready`)); });
  });
  const ready = JSON.parse(line) as { rpc: string; store: string; chain_id: number; deployment: string; demo: { key: string }; images: Stack["images"] };
  const stop = async () => {
    if (child.exitCode === null) {
      const exited = new Promise<void>((r) => child.once("exit", () => r()));
      child.stdin?.end();
      const t = setTimeout(() => child.kill("SIGKILL"), 20_000);
      await exited;
      clearTimeout(t);
    }
    rmSync(dataDir, { recursive: true, force: true });
  };
  return {
    rpc: ready.rpc,
    store: ready.store,
    chainId: ready.chain_id,
    deployment: JSON.parse(readFileSync(ready.deployment, "utf8")) as Stack["deployment"],
    demoKey: readFileSync(ready.demo.key, "utf8").trim() as Hex,
    images: ready.images,
    stop,
  };
}
