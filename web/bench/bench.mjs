#!/usr/bin/env node
// Benchmark of the dApp page in Debian's Chromium (playwright-core) against a fresh `ecld up`,
// through the page itself (its buttons, its bundled SDK, the page `ecld up` serves):
//
//  (a) encryption and upload of 10 MB and 100 MB file inputs: from the click on "Run task"
//      to the store's answer (the page reads the file, checks the price and balance, builds
//      and encrypts the payload, uploads it to /store with progress), and each step alone;
//      the wallet then rejects the permit, so no task runs. Peak memory is the peak resident
//      set (VmHWM) of the page's renderer process, a fresh browser per run so the peak is
//      this run's; the JS heap (CDP Performance.getMetrics JSHeapUsedSize, sampled every
//      50 ms) is shown beside it: encrypted bytes live in ArrayBuffers outside that heap.
//  (b) click-to-verified-result latency of a trivial task (image `stats`, a 16-byte input,
//      the dev burner wallet, a generated result key): from the click on "Run task" to the
//      decrypted output after the verified proof, timed inside the page, one task at a time.
//
// It writes the `## Web` section of docs/BENCHMARKS.md ($ECLD_BENCHMARKS_FILE overrides).
// Needs: the cargo-built ecld, scripts/build-programs, /usr/bin/chromium, `npm ci` in web/.
// Usage: nice -n 10 node bench/bench.mjs [--sizes 10,100] [--reps 3] [--runs 60] [--no-write]
//        (or `npm run bench`; `ecld bench all` runs it with ECLD_BENCHMARKS_FILE and ECLD_BIN set)
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createWriteStream, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus, release, tmpdir, totalmem } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, "../..");
const argOf = (name, dflt) => { const i = process.argv.indexOf(`--${name}`); return i > 0 ? process.argv[i + 1] : dflt; };
// ECLD_BENCH_QUICK=1 (`ecld bench all --quick`): one 10 MB run and the minimum 50 tasks.
const QUICK = process.env.ECLD_BENCH_QUICK === "1";
const SIZES_MB = argOf("sizes", QUICK ? "10" : "10,100").split(",").map(Number);
const REPS = Number(argOf("reps", QUICK ? "1" : "3"));
const RUNS = Number(argOf("runs", QUICK ? "50" : "60"));
const WARMUP = 3;
const WRITE = !process.argv.includes("--no-write");
const OUT = process.env.ECLD_BENCHMARKS_FILE || join(repo, "docs/BENCHMARKS.md");
const MB = 1_000_000;
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
  "--disable-component-update", "--disable-sync"];
const ecld = [process.env.ECLD_BIN, process.env.CARGO_TARGET_DIR && join(process.env.CARGO_TARGET_DIR, "debug/ecld"), join(repo, "target/debug/ecld"), join(process.env.HOME ?? "/", ".cache/ecld-target/debug/ecld")]
  .find((p) => p && existsSync(p));
if (ecld === undefined) { console.error("bench: build ecld first (cargo build -p ecld)"); process.exit(1); }
if (!existsSync(CHROMIUM)) { console.error(`bench: ${CHROMIUM} missing (scripts/setup installs chromium)`); process.exit(1); }
if (!(RUNS >= 50)) { console.error("bench: --runs must be at least 50 (p99 needs them)"); process.exit(2); }

const cleanup = [];
const log = (...a) => console.error("bench:", ...a);

// ---- processes and memory ---------------------------------------------------------------

/** Descendant pids of `pid` (from /proc). */
function descendants(pid) {
  const children = new Map();
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      (children.get(ppid) ?? children.set(ppid, []).get(ppid)).push(Number(d));
    } catch { /* exited */ }
  }
  const out = [];
  const todo = [pid];
  while (todo.length > 0) for (const c of children.get(todo.pop()) ?? []) { out.push(c); todo.push(c); }
  return out;
}

/** Chromium's browser process (the one without `--type=`), a child of this process. */
const browserProcess = () => descendants(process.pid).find((p) => {
  try { const cmd = readFileSync(`/proc/${p}/cmdline`, "utf8"); return /chrom/.test(cmd.split("\0")[0]) && !cmd.includes("--type="); } catch { return false; }
});

const renderers = (browserPid) => descendants(browserPid).filter((p) => {
  try { return readFileSync(`/proc/${p}/cmdline`, "utf8").includes("--type=renderer"); } catch { return false; }
});

/** `VmHWM` (peak) or `VmRSS` of a process, in bytes. */
function memOf(pid, field) {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (m === null) throw new Error(`no ${field} for process ${pid}`);
  return Number(m[1]) * 1024;
}

// ---- the stack and the page -------------------------------------------------------------

async function startStack() {
  const data = mkdtempSync(join(tmpdir(), "ecld-web-bench-"));
  cleanup.push(() => rmSync(data, { recursive: true, force: true }));
  const up = spawn(ecld, ["up", "--data-dir", data, "--ephemeral-ports", "--programs", join(repo, "programs/out"), "--json", "--stop-on-stdin-eof"],
    { stdio: ["pipe", "pipe", "inherit"], env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? "error" } });
  cleanup.push(() => new Promise((r) => { if (up.exitCode !== null) return r(); up.once("exit", r); up.stdin.end(); setTimeout(() => up.kill("SIGKILL"), 20_000).unref(); }));
  return await new Promise((res, rej) => {
    const t = setTimeout(() => rej(new Error("ecld up not ready in 180 s")), 180_000);
    createInterface({ input: up.stdout }).once("line", (l) => { clearTimeout(t); res(JSON.parse(l)); });
    up.once("exit", (c) => { clearTimeout(t); rej(new Error(`ecld up exited with ${c}`)); });
  });
}

async function launch() {
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS });
  cleanup.push(() => browser.close());
  return browser;
}

/** The page, loaded, with image `stats` selected and a generated result key. */
async function openPage(browser, ready, wallet) {
  // Chromium runs as a child of this process (playwright launches it directly).
  const pid = process.pid;
  const before = new Set(renderers(pid));
  const page = await browser.newPage({ viewport: { width: 1000, height: 1400 } });
  if (wallet !== undefined) await page.addInitScript(wallet.script, wallet.arg);
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(ready.web);
  await page.waitForSelector("#image option", { state: "attached", timeout: 60_000 });
  const stats = ready.images.find((i) => i.name === "stats");
  if (stats === undefined) throw new Error("ecld up published no `stats` image: run scripts/build-programs");
  await page.selectOption("#image", stats.id);
  await page.click("#generate-key");
  await page.waitForSelector("#export-key:not([disabled])");
  // Chromium may start more than one renderer for a new tab (about:blank, the site, a spare);
  // the page's is the one whose memory grows with the input: the largest peak at the end.
  const fresh = renderers(pid).filter((p) => !before.has(p));
  if (fresh.length === 0) throw new Error("found no renderer process for the page");
  return { page, renderers: fresh, errors };
}

/**
 * An injected EIP-1193 wallet holding `address` that rejects every signature (EIP-1193 code
 * 4001, as a user pressing "Reject" would): the page stops after the upload, before a task.
 */
const rejectingWallet = (address, chainHex) => ({
  arg: { address, chainHex },
  script: ({ address, chainHex }) => {
    let id = 0;
    window.ethereum = {
      async request({ method, params }) {
        if (method === "eth_requestAccounts" || method === "eth_accounts") return [address];
        if (method === "eth_chainId") return chainHex;
        if (method.startsWith("eth_sign") || method === "personal_sign" || method === "eth_sendTransaction")
          throw Object.assign(new Error("User rejected the request."), { code: 4001 });
        const res = await fetch("/rpc", { method: "POST", headers: { "content-type": "application/json" },
          body: JSON.stringify({ jsonrpc: "2.0", id: ++id, method, params: params ?? [] }) });
        const body = await res.json();
        if (body.error) throw Object.assign(new Error(body.error.message), { code: body.error.code, data: body.error.data });
        return body.result;
      },
      on() {}, removeListener() {},
    };
  },
});

// ---- (a) encryption and upload ----------------------------------------------------------

async function writeInput(dir, sizeMb) {
  const file = join(dir, `input-${sizeMb}MB.bin`);
  const out = createWriteStream(file);
  for (let left = sizeMb * MB; left > 0; left -= 1 << 20) {
    if (!out.write(randomBytes(Math.min(left, 1 << 20)))) await new Promise((r) => out.once("drain", r));
  }
  await new Promise((r, j) => out.end((e) => (e ? j(e) : r())));
  return file;
}

async function uploadOnce(ready, file, sizeMb) {
  const browser = await launch();
  try {
    const chainHex = `0x${ready.chain_id.toString(16)}`;
    const { page, renderers: procs, errors } = await openPage(browser, ready, rejectingWallet(ready.demo.account, chainHex));
    await page.click("#connect");
    await page.waitForSelector("#wallet-address");
    await page.waitForSelector("#submit:not([disabled])");
    await page.setInputFiles("#input-file", file);
    const cdp = await page.context().newCDPSession(page);
    await cdp.send("Performance.enable");
    const heap = async () => (await cdp.send("Performance.getMetrics")).metrics.find((m) => m.name === "JSHeapUsedSize")?.value ?? 0;
    let heapPeak = await heap();
    const before = new Map(procs.map((p) => [p, memOf(p, "VmRSS")]));
    let sampling = true;
    const sampler = (async () => { while (sampling) { heapPeak = Math.max(heapPeak, await heap()); await new Promise((r) => setTimeout(r, 50)); } })();
    // Times are taken in the page: the click, and each change of a step's state (read by a
    // MutationObserver, so at the first pause of the page's script after the change).
    const marks = await page.evaluate(() => new Promise((resolveRun, rejectRun) => {
      const marks = {};
      const stepOf = (s) => document.querySelector(`li[data-step="${s}"]`);
      const obs = new MutationObserver(() => {
        const now = performance.now();
        for (const s of ["encrypt", "upload"]) {
          const cls = stepOf(s)?.className ?? "";
          if (cls !== "" && marks[`${s}-${cls}`] === undefined) marks[`${s}-${cls}`] = now;
        }
        const err = document.querySelector("#run-error");
        if (err !== null) {
          obs.disconnect();
          if (marks["upload-done"] === undefined) rejectRun(new Error(`the page failed before the upload finished: ${err.textContent}`));
          else resolveRun(marks);
        }
      });
      obs.observe(document.body, { subtree: true, childList: true, attributes: true, characterData: true });
      marks.click = performance.now();
      document.querySelector("#submit").click();
    }));
    sampling = false;
    await sampler;
    const kind = await page.getAttribute("#run-error", "data-kind");
    if (kind !== "rejected") throw new Error(`expected the wallet's rejection after the upload, the page shows ${kind}: ${await page.textContent("#run-error")}`);
    const uploaded = await page.textContent("#step-upload");
    if (!/stored as b[a-z2-7]+/.test(uploaded ?? "")) throw new Error(`the upload step shows no CID: ${uploaded}`);
    if (errors.length > 0) throw new Error(`page errors: ${errors.join("; ")}`);
    const [renderer, peak] = procs.map((p) => [p, memOf(p, "VmHWM")]).reduce((a, b) => (b[1] > a[1] ? b : a));
    const baseline = before.get(renderer) ?? 0;
    const main = browserProcess();
    const browserPeak = main === undefined ? NaN : memOf(main, "VmHWM");
    const total = (marks["upload-done"] - marks.click) / 1000;
    const encrypt = (marks["upload-active"] - marks["encrypt-active"]) / 1000;
    const upload = (marks["upload-done"] - marks["upload-active"]) / 1000;
    const r = { sizeMb, total, encrypt, upload, mbps: sizeMb / total, peak, baseline, heapPeak, browserPeak };
    log(`${sizeMb} MB: click→uploaded ${total.toFixed(2)} s (${r.mbps.toFixed(1)} MB/s; encrypt ${encrypt.toFixed(2)} s, upload ${upload.toFixed(2)} s); renderer peak RSS ${mib(peak)} MiB (baseline ${mib(baseline)}), browser process peak RSS ${mib(browserPeak)} MiB, JS heap peak ${mib(heapPeak)} MiB`);
    return r;
  } finally {
    await browser.close();
  }
}

// ---- (b) click to verified result -------------------------------------------------------

async function latency(ready) {
  const browser = await launch();
  const { page, errors } = await openPage(browser, ready);
  await page.click("#burner");
  await page.waitForSelector("#wallet-address");
  await page.fill("#input-text", "3 1 4 1 5 9 2 6\n");
  const times = [];
  for (let i = 0; i < WARMUP + RUNS; i++) {
    await page.waitForSelector("#submit:not([disabled])", { timeout: 60_000 });
    const ms = await page.evaluate(() => new Promise((resolveRun, rejectRun) => {
      const obs = new MutationObserver(() => {
        const failed = document.querySelector("#run-error, #failed-verification");
        if (failed !== null) { obs.disconnect(); rejectRun(new Error(`the page failed: ${failed.textContent}`)); return; }
        if (document.querySelector("#verified") !== null && document.querySelector('li[data-step="decrypt"]')?.className === "done") {
          obs.disconnect();
          resolveRun(performance.now() - t0);
        }
      });
      obs.observe(document.body, { subtree: true, childList: true, attributes: true, characterData: true });
      const t0 = performance.now();
      document.querySelector("#submit").click();
    }));
    const status = await page.textContent("#proof-status");
    if (!/^0 SUCCESS/.test(status ?? "")) throw new Error(`run ${i}: proof status ${status}`);
    if (i >= WARMUP) times.push(ms);
    if ((i + 1) % 10 === 0) log(`latency: ${i + 1} / ${WARMUP + RUNS} runs`);
  }
  if (errors.length > 0) throw new Error(`page errors: ${errors.join("; ")}`);
  await browser.close();
  return times;
}

// ---- figures and the section ------------------------------------------------------------

const mib = (b) => (b / (1 << 20)).toFixed(0);
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const n = s.length; return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2; };
/** Nearest-rank percentile. */
const pct = (xs, q) => { const s = [...xs].sort((a, b) => a - b); return s[Math.max(0, Math.ceil(q * s.length) - 1)]; };

const loadAverage = () => { try { return readFileSync("/proc/loadavg", "utf8").split(" ")[0]; } catch { return "?"; } };

function machine(browserVersion, load) {
  const os = (() => { try { return /^PRETTY_NAME="?([^"\n]*)/m.exec(readFileSync("/etc/os-release", "utf8"))?.[1] ?? "Linux"; } catch { return "Linux"; } })();
  const cpu = cpus()[0]?.model.trim() ?? "unknown CPU";
  return `${availableParallelism()} cores, ${cpu}; ${Math.round(totalmem() / (1 << 30))} GiB; ${os} (Linux ${release()}); Chromium ${browserVersion} headless; Node ${process.version}; ${new Date().toISOString().slice(0, 10)}; load average at the start ${load}`;
}

function section(mach, uploads, times) {
  const rows = SIZES_MB.map((size) => {
    const rs = uploads.filter((r) => r.sizeMb === size);
    const m = (k) => median(rs.map((r) => r[k]));
    return `| ${size} MB | **${m("mbps").toFixed(1)}** | ${m("total").toFixed(2)} | ${m("encrypt").toFixed(2)} | ${m("upload").toFixed(2)} | **${mib(m("peak"))}** | ${mib(m("baseline"))} | ${mib(m("browserPeak"))} | ${mib(m("heapPeak"))} |`;
  });
  const mean = times.reduce((a, b) => a + b, 0) / times.length;
  const largest = Math.max(...SIZES_MB);
  const big = uploads.filter((r) => r.sizeMb === largest);
  const growth = median(big.map((r) => r.peak - r.baseline));
  return `## Web

Machine: ${mach}.

The page is the committed \`web/dist\` served by \`ecld up\` (debug build of ecld, dependencies at
opt-level 2) on a fresh stack (devnet, store, CAS, one node, sim TEE); the benchmark runs under
\`nice -n 10\` on a machine shared with other work, so absolute times are noisy. Reproduce:
\`cargo build -p ecld && scripts/build-programs && cd web && npm ci && nice -n 10 node bench/bench.mjs\`.

**Encryption and upload in the browser** (median of ${REPS} runs per size, each in a fresh
browser; a file of random bytes chosen in the page's file input; MB = 10^6 bytes). Time from the
click on *Run task* to the store's answer: the page reads the file, checks the price and the
balance, builds and encrypts the payload to the image's enclave key (\`age-encryption\`), and
uploads the ciphertext to \`/store\` with progress; the wallet then rejects the permit, so no task
runs. *encrypt* and *upload* are the page's two steps alone (their start and end read by a
MutationObserver); each column is its own median. Peak memory is the peak resident set (VmHWM)
of the page's renderer process (the page, its workers, its ArrayBuffers); *before* is its
resident set just before the click. Chromium keeps the contents of Blobs in its browser process
(on disk past a limit), so that process's peak is shown too. The JS heap (CDP
\`JSHeapUsedSize\`, sampled every 50 ms) does not hold the bytes, which live in ArrayBuffers and
Blobs outside it.

| input | MB/s | click → uploaded s | encrypt s | upload s | renderer peak RSS MiB | renderer RSS before MiB | browser process peak RSS MiB | JS heap peak MiB |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
${rows.join("\n")}

For the ${largest} MB input the renderer's resident set grows by ${mib(growth)} MiB during the run, ${(growth / (largest * MB)).toFixed(1)}× the input.

**Click to verified result** of a trivial task (image \`stats\`, a 16-byte input, the dev burner
wallet, a result key generated in the page), one task at a time, ${times.length} runs after ${WARMUP} warm-up
runs: from the click on *Run task* to the decrypted output shown after the verified proof,
timed inside the page. The page polls the chain every 250 ms for the result. p99 is the
nearest-rank percentile: the ${Math.ceil(0.99 * times.length)}th fastest of the ${times.length} runs.

| runs | p50 ms | p99 ms | mean ms | min ms | max ms |
| ---: | ---: | ---: | ---: | ---: | ---: |
| ${times.length} | **${pct(times, 0.5).toFixed(0)}** | **${pct(times, 0.99).toFixed(0)}** | ${mean.toFixed(0)} | ${Math.min(...times).toFixed(0)} | ${Math.max(...times).toFixed(0)} |
`;
}

/** `doc` with the `## Web` section (up to the next `#`/`##` heading outside a code fence) replaced or appended. */
function replaceSection(doc, text) {
  const lines = doc.split("\n");
  let start = -1, end = lines.length, fence = false;
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i].trimEnd();
    if (l.startsWith("```") || l.startsWith("~~~")) { fence = !fence; continue; }
    if (fence) continue;
    if (start < 0 && l === "## Web") start = i;
    else if (start >= 0 && (l.startsWith("# ") || l.startsWith("## "))) { end = i; break; }
  }
  const body = text.trimEnd();
  if (start < 0) return `${doc.trimEnd()}\n\n${body}\n`;
  const after = lines.slice(end).join("\n");
  return `${lines.slice(0, start).join("\n")}${start > 0 ? "\n" : ""}${body}\n${after === "" ? "" : `\n${after}`}`.replace(/\n*$/, "\n");
}

async function main() {
  const load = loadAverage();
  const ready = await startStack();
  log(`ecld up ready; page at ${ready.web}`);
  const dir = mkdtempSync(join(tmpdir(), "ecld-web-bench-in-"));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  const uploads = [];
  let version = "";
  for (const size of SIZES_MB) {
    const file = await writeInput(dir, size);
    for (let i = 0; i < REPS; i++) uploads.push(await uploadOnce(ready, file, size));
    rmSync(file);
  }
  {
    const b = await launch();
    version = b.version();
    await b.close();
  }
  const times = await latency(ready);
  log(`latency over ${times.length} runs: p50 ${pct(times, 0.5).toFixed(0)} ms, p99 ${pct(times, 0.99).toFixed(0)} ms`);
  const text = section(machine(version, load), uploads, times);
  console.log(text);
  if (WRITE) {
    const doc = existsSync(OUT) ? readFileSync(OUT, "utf8") : "# Benchmarks\n";
    writeFileSync(OUT, replaceSection(doc, text));
    log(`wrote the ## Web section of ${OUT}`);
  }
}

let code = 0;
try { await main(); } catch (e) { console.error("bench FAILED:", e); code = 1; }
for (const f of cleanup.reverse()) { try { await f(); } catch { /* best effort */ } }
process.exit(code);
