#!/usr/bin/env node
// Browser end-to-end test: `ecld up`, the built page behind serve.mjs, Debian chromium driven
// by playwright-core; one task from the burner wallet to the decrypted result.
// Needs: `npm run build` done, the cargo-built ecld binary, /usr/bin/chromium.
// Usage: node test/browser.mjs [--screenshot FILE]
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import { createPublicClient, http } from "viem";

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, "../..");
const shotArg = process.argv.indexOf("--screenshot");
const screenshot = shotArg > 0 ? process.argv[shotArg + 1] : join(tmpdir(), "ecld-web.png");
const ecld = [process.env.ECLD_BIN, process.env.CARGO_TARGET_DIR && join(process.env.CARGO_TARGET_DIR, "debug/ecld"), join(repo, "target/debug/ecld")]
  .find((p) => p && existsSync(p));
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
if (ecld === undefined) { console.error("SKIP browser test: ecld binary not built (cargo build -p ecld)"); process.exit(0); }
if (!existsSync(CHROMIUM)) { console.error(`SKIP browser test: ${CHROMIUM} missing (scripts/setup installs chromium)`); process.exit(0); }
if (!existsSync(join(here, "../dist/index.html"))) { console.error("browser test: run `npm run build` first"); process.exit(1); }

const cleanup = [];
const firstLine = (child, what) => new Promise((res, rej) => {
  const t = setTimeout(() => rej(new Error(`${what} not ready in 120 s`)), 120_000);
  createInterface({ input: child.stdout }).once("line", (l) => { clearTimeout(t); res(JSON.parse(l)); });
  child.once("exit", (c) => { clearTimeout(t); rej(new Error(`${what} exited with ${c}`)); });
});

async function run() {
  const data = mkdtempSync(join(tmpdir(), "ecld-web-up-"));
  cleanup.push(() => rmSync(data, { recursive: true, force: true }));
  const up = spawn(ecld, ["up", "--data-dir", data, "--ephemeral-ports", "--programs", join(repo, "programs/out"), "--json", "--stop-on-stdin-eof"], { stdio: ["pipe", "pipe", "inherit"] });
  cleanup.push(() => new Promise((r) => { if (up.exitCode !== null) return r(); up.once("exit", r); up.stdin.end(); setTimeout(() => up.kill("SIGKILL"), 20_000).unref(); }));
  const ready = await firstLine(up, "ecld up");
  const serve = spawn(process.execPath, [join(here, "../serve.mjs"), "--config", ready.config, "--port", "0"], { stdio: ["ignore", "pipe", "inherit"] });
  cleanup.push(() => { serve.kill("SIGTERM"); });
  const { url } = await firstLine(serve, "serve.mjs");

  const profile = mkdtempSync(join(tmpdir(), "ecld-chromium-"));
  cleanup.push(() => rmSync(profile, { recursive: true, force: true }));
  // A fresh profile (--user-data-dir, which playwright passes for a persistent context).
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1000, height: 1500 },
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
  });
  cleanup.push(() => context.close());
  const page = await context.newPage();
  const consoleErrors = [];
  page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });
  page.on("pageerror", (e) => consoleErrors.push(String(e)));
  await page.goto(url);
  await page.waitForSelector("#image option", { state: "attached", timeout: 30_000 });
  const stats = ready.images.find((i) => i.name === "stats");
  await page.selectOption("#image", stats.id);
  assert.match(await page.textContent("#image-info"), /sim — INSECURE/);
  await page.click("#burner");
  await page.click("#generate-key");
  await page.waitForSelector("#export-key:not([disabled])");
  await page.fill("#input-text", "3 1 4 1 5 9 2 6\n");
  await page.click("#submit");
  await Promise.race([
    page.waitForSelector("#verified", { timeout: 60_000 }),
    page.waitForSelector("#run-error", { timeout: 60_000 }).then(async () => { throw new Error(`page error: ${await page.textContent("#run-error")}`); }),
  ]);
  assert.equal(await page.textContent("#proof-status"), "0 SUCCESS");
  assert.equal(await page.textContent("#proof-signer"), await registrySigner(ready, stats.id));
  assert.match(await page.textContent("#proof-sim"), /sim — INSECURE/);
  const output = await page.textContent("#output");
  assert.ok(output.length > 0, "the decrypted output is shown");
  assert.equal(await page.locator("ol.steps li.done").count(), 8);
  await page.screenshot({ path: screenshot, fullPage: true });
  assert.deepEqual(consoleErrors, []);
  console.log(`browser test passed; output ${JSON.stringify(output.slice(0, 120))}; screenshot ${screenshot}`);
}

// The signer shown must be the registry's enclave signer of the image, read here independently.
async function registrySigner(ready, id) {
  const { abi } = JSON.parse(readFileSync(join(repo, "crates/ecld-contracts/artifacts/ImageRegistry.json"), "utf8"));
  const deployment = JSON.parse(readFileSync(ready.deployment, "utf8"));
  const image = await createPublicClient({ transport: http(ready.rpc) }).readContract({ address: deployment.registry, abi, functionName: "getImage", args: [id] });
  return image.enclaveSigner;
}

let code = 0;
try { await run(); } catch (e) { console.error("browser test FAILED:", e); code = 1; }
for (const f of cleanup.reverse()) { try { await f(); } catch { /* best effort */ } }
process.exit(code);
