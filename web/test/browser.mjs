#!/usr/bin/env node
// Browser end-to-end test: `ecld up`, the built page behind serve.mjs, Debian chromium driven
// by playwright-core: one task through an injected EIP-1193 wallet (counting prompts) with a
// wallet-derived result key, then one with the dev burner and a generated key.
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
import { createPublicClient, createWalletClient, http } from "viem";
import { privateKeyToAccount } from "viem/accounts";

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, "../..");
const shotArg = process.argv.indexOf("--screenshot");
const screenshot = shotArg > 0 ? process.argv[shotArg + 1] : join(tmpdir(), "ecld-web.png");
const ecld = [process.env.ECLD_BIN, process.env.CARGO_TARGET_DIR && join(process.env.CARGO_TARGET_DIR, "debug/ecld"), join(repo, "target/debug/ecld"), join(process.env.HOME ?? "/", ".cache/ecld-target/debug/ecld")]
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
  const prompts = [];
  const demoKey = readFileSync(ready.demo.key, "utf8").trim();
  const account = privateKeyToAccount(demoKey);
  const wallet = createWalletClient({ account, transport: http(ready.rpc) });
  await page.exposeFunction("__testWallet", async (method, paramsJson) => {
    const params = JSON.parse(paramsJson);
    prompts.push(method);
    if (method === "eth_signTypedData_v4") {
      const data = JSON.parse(params[1]);
      delete data.types.EIP712Domain;
      const ints = (type) => /^u?int\d*$/.test(type);
      const fix = (fields, obj) => { for (const f of fields) if (ints(f.type) && obj[f.name] !== undefined) obj[f.name] = BigInt(obj[f.name]); };
      fix([{ name: "chainId", type: "uint256" }], data.domain);
      fix(data.types[data.primaryType], data.message);
      return await account.signTypedData(data);
    }
    if (method === "eth_sendTransaction") {
      const tx = params[0];
      return await wallet.sendTransaction({ to: tx.to, data: tx.data, chain: null,
        ...(tx.value ? { value: BigInt(tx.value) } : {}), ...(tx.gas ? { gas: BigInt(tx.gas) } : {}) });
    }
    throw new Error(`unexpected wallet method ${method}`);
  });
  await page.addInitScript((address) => {
    const local = new Set(["eth_signTypedData_v4", "eth_sendTransaction"]);
    let id = 0;
    window.ethereum = {
      async request({ method, params }) {
        if (method === "eth_requestAccounts" || method === "eth_accounts") return [address];
        if (local.has(method)) return await window.__testWallet(method, JSON.stringify(params ?? []));
        const res = await fetch("/rpc", { method: "POST", headers: { "content-type": "application/json" },
          body: JSON.stringify({ jsonrpc: "2.0", id: ++id, method, params: params ?? [] }) });
        const body = await res.json();
        if (body.error) throw Object.assign(new Error(body.error.message), { code: body.error.code, data: body.error.data });
        return body.result;
      },
      on() {}, removeListener() {},
    };
  }, account.address);
  const consoleErrors = [];
  page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });
  page.on("pageerror", (e) => consoleErrors.push(String(e)));
  await page.goto(url);
  await page.waitForSelector("#image option", { state: "attached", timeout: 30_000 });
  const stats = ready.images.find((i) => i.name === "stats");
  await page.selectOption("#image", stats.id);
  assert.match(await page.textContent("#image-info"), /sim — INSECURE/);
  // The generated key can be exported.
  await page.click("#generate-key");
  await page.waitForSelector("#export-key:not([disabled])");
  // Connect through EIP-1193: an injected provider whose signatures and transactions are made
  // here with the demo key, counting each one as a wallet prompt.
  await page.click("#connect");
  await page.waitForFunction(() => document.querySelector("#wallet-status")?.textContent?.startsWith("Connected"));
  assert.equal((await page.textContent("#wallet-status")).replace("Connected: ", "").toLowerCase(), ready.demo.account.toLowerCase());
  await page.click("#derive-key");
  await page.waitForFunction(() => document.querySelector("#key-status")?.textContent?.startsWith("Key derived"));
  assert.equal(prompts.length, 1, "deriving the result key is one signature");
  await page.fill("#input-text", "3 1 4 1 5 9 2 6\n");
  prompts.length = 0;
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
  assert.deepEqual(prompts, ["eth_signTypedData_v4", "eth_sendTransaction"], "a task costs two wallet prompts: permit and transaction");
  await page.screenshot({ path: screenshot, fullPage: true });

  // The dev burner with a generated key runs a task too.
  await page.click("#burner");
  await page.click("#generate-key");
  await page.waitForFunction(() => document.querySelector("#key-status")?.textContent?.startsWith("New key"));
  await page.fill("#input-text", "10 20 30\n");
  await page.click("#submit");
  await page.waitForFunction(() => document.querySelector("#run-status")?.textContent?.startsWith("Task 2 done"), null, { timeout: 60_000 });
  assert.equal(await page.textContent("#proof-status"), "0 SUCCESS");
  assert.match(await page.textContent("#output"), /"words":3/);
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
