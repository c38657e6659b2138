import {
  type Deployment,
  EcldClient,
  EcldError,
  type Image,
  type Offer,
  type Outcome,
  RESULT_KEY_TYPED_DATA,
  type TaskInfo,
  type VerifiedProof,
  codeHashOf,
  decodeResultEnvelope,
  decrypt,
  devTokenAbi,
  encodePayloadHeader,
  generateResultIdentity,
  identityFromSignature,
  proofNamesCode,
  recipientOf,
  statusName,
} from "@ecld/sdk";
import {
  type Account,
  type Address,
  type Chain,
  type EIP1193Provider,
  type Hex,
  type Transport,
  type WalletClient,
  createPublicClient,
  createWalletClient,
  custom,
  defineChain,
  http,
  numberToHex,
  zeroHash,
} from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { depositControls } from "./deposit.js";
import { download, el, replace } from "./dom.js";
import { codeEditor } from "./editor.js";
import { type Explained, WrongChainError, explain, isIntegrityError } from "./errors.js";
import { STATUS_MEANINGS, bytes, duration, platformNames, shortHex, tokens } from "./format.js";
import { workerHasher } from "./hasher.js";
import { uploadWithProgress } from "./upload.js";

interface PageConfig { deployment: Deployment; rpc: string; store: string }

/** Account 1 of the public test mnemonic ("test test … junk"): known to everyone, devnet only. */
const BURNER_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
const DEVNET_CHAIN_ID = 31337;
const MEMORY_MB = 64;
const MAX_RUNTIME_S = 10;
/** Runner images take the user's code; the image name says which kind (docs/runners.md). */
const RUNNERS: Record<string, { kind: "python" | "js" | "wasm"; what: string }> = {
  python: { kind: "python", what: "Python 3 source (RustPython); the input is sys.stdin and INPUT, print() writes the result" },
  js: { kind: "js", what: "JavaScript source (Boa); the input is INPUT, console.log() writes the result" },
  wasm: { kind: "wasm", what: "a WASI preview 1 command module (.wasm); stdin is the input, stdout the result" },
};

/** The page's steps, in order: each shows its numbers as it goes. */
/** `f`, called at most every `ms` (progress updates; a step's final state is set after them). */
function throttled<A extends unknown[]>(f: (...a: A) => void, ms = 100): (...a: A) => void {
  let last = -Infinity;
  return (...a: A) => {
    const now = performance.now();
    if (now - last < ms) return;
    last = now;
    f(...a);
  };
}

const STEPS = ["encrypt", "upload", "permit", "submit", "match", "run", "proof", "download", "verify", "decrypt"] as const;
type PageStep = (typeof STEPS)[number];
const STEP_LABELS: Record<PageStep, string> = {
  encrypt: "Encrypt the input to the image's enclave key",
  upload: "Upload the ciphertext to the store",
  permit: "Sign the payment permit (wallet prompt 1; none when your deposit pays)",
  submit: "Submit the task (wallet prompt 2)",
  match: "Matched to a node",
  run: "Running in the node's enclave",
  proof: "Proof on chain",
  download: "Download the result ciphertext",
  verify: "Verify the signature and hashes",
  decrypt: "Decrypt the result with your key",
};

declare global {
  interface Window { ethereum?: EIP1193Provider }
}

type Wallet = WalletClient<Transport, Chain, Account>;

const state: {
  wallet?: Wallet;
  /** The wallet is on the deployment's chain (always true for the dev burner). */
  chainOk: boolean;
  identity?: string;
  recipient?: string;
  images: Image[];
  /** Images their owners revoked: their held tasks can be reclaimed at once, their proofs are not trusted. */
  revoked: Set<Hex>;
  offers: Offer[];
  token: { decimals: number; symbol: string };
  busy: boolean;
  output?: Uint8Array;
  /** The task the page shows (the one running, or reattached to). */
  current?: bigint;
  pendingDecrypt?: { taskId: bigint; bytes: Uint8Array; verified: VerifiedProof };
} = { chainOk: false, images: [], revoked: new Set(), offers: [], token: { decimals: 18, symbol: "tokens" }, busy: false };

async function main(): Promise<void> {
  const app = document.getElementById("app")!;
  let cfg: PageConfig;
  try {
    const res = await fetch("/ecld-config.json");
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    cfg = (await res.json()) as PageConfig;
  } catch (e) {
    replace(app, el("p", { class: "err", role: "alert" }, `Cannot load the deployment (/ecld-config.json): ${String(e)}. Open the page at the web address \`ecld up\` prints, then reload.`));
    return;
  }
  const chainId = cfg.deployment.chainId;
  const rpcUrl = new URL(cfg.rpc, location.href).toString();
  const storeUrl = new URL(cfg.store, location.href).toString();
  const chain = defineChain({
    id: chainId,
    name: chainId === DEVNET_CHAIN_ID ? "ecld devnet" : `chain ${chainId}`,
    nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
    rpcUrls: { default: { http: [rpcUrl] } },
  });
  const publicClient = createPublicClient({ chain, transport: http(rpcUrl), pollingInterval: 250 });
  const client = new EcldClient({ deployment: cfg.deployment, publicClient, store: storeUrl });
  const storageKey = `ecld.activeTask.${chainId}.${cfg.deployment.marketplace.toLowerCase()}`;
  const tokenText = (amount: bigint) => tokens(amount, state.token.decimals, state.token.symbol);
  const explainE = (e: unknown): Explained => explain(e, { chainId, tokenText });
  const imageName = (id: Hex) => { const i = state.images.find((x) => x.id === id); return i === undefined ? shortHex(id) : `${i.name} ${i.version}`; };

  // 1. Wallet and network
  const walletStatus = el("p", { id: "wallet-status" }, "No wallet connected.");
  const chainStatus = el("p", { id: "chain-status", role: "status", "aria-live": "polite" });
  const switchBtn = el("button", { id: "switch-chain", type: "button", hidden: "" }, `Switch network to chain ${chainId}`);
  const balanceP = el("p", { id: "balance" });
  const connectBtn = el("button", { id: "connect", type: "button" }, "Connect browser wallet (window.ethereum)");
  const burnerBtn = el("button", { id: "burner", type: "button" }, "Use the dev burner key (INSECURE, local devnet only)");
  let eip1193: EIP1193Provider | undefined;

  const setChainOk = (ok: boolean, walletChain?: number) => {
    state.chainOk = ok;
    switchBtn.hidden = ok;
    if (ok) replace(chainStatus, el("span", { class: "ok" }, `Network: chain ${chainId}, the deployment's chain.`));
    else replace(chainStatus, el("span", { class: "err", id: "wrong-chain" },
      `Wrong network: your wallet is on chain ${walletChain ?? "?"}, this deployment is on chain ${chainId}. Switch the wallet's network (button below, or in the wallet); tasks cannot be submitted until it matches.`));
    refresh();
  };
  let walletChain = Number.NaN;
  const checkWalletChain = async (): Promise<boolean> => {
    if (eip1193 === undefined) return state.chainOk;
    const hex = (await eip1193.request({ method: "eth_chainId" })) as string;
    const id = Number.parseInt(hex, 16);
    walletChain = id;
    setChainOk(id === chainId, id);
    return id === chainId;
  };
  const showBalance = async () => {
    const w = state.wallet;
    if (w === undefined) return replace(balanceP);
    try {
      const [bal, dep] = await Promise.all([client.tokenBalance(w.account.address), client.depositBalance(w.account.address)]);
      replace(balanceP, "Token balance: ", el("span", { id: "balance-value" }, tokenText(bal)), " · deposit in the Marketplace: ", el("span", { id: "deposit-value" }, tokenText(dep)));
    } catch (e) {
      showError(balanceP, explainE(e), "balance-error");
    }
  };
  const deposits = depositControls({
    client,
    wallet: () => state.wallet,
    decimals: () => state.token.decimals,
    tokenText,
    ready: async () => {
      if (await checkWalletChain()) return true;
      throw new WrongChainError(walletChain, chainId);
    },
    done: showBalance,
    fail: (where, e) => showError(where, explainE(e), "deposit-error"),
  });
  const hooked = new WeakSet<EIP1193Provider>();
  const connectWith = async (eth: EIP1193Provider | undefined, label: string) => {
    try {
      if (eth === undefined) throw new EcldError("TaskError", "no browser wallet found (window.ethereum)", { hint: "install a wallet extension, or use the dev burner on a local devnet" });
      eip1193 = eth;
      // The chain first: nothing else happens on a wallet that is on another network.
      await checkWalletChain();
      const [address] = (await eth.request({ method: "eth_requestAccounts" })) as Address[];
      if (address === undefined) throw new EcldError("TaskError", "the wallet shared no account", { hint: "unlock the wallet and allow this page to see an account" });
      state.wallet = createWalletClient({ account: address, chain, transport: custom(eth) }) as unknown as Wallet;
      replace(walletStatus, `Connected (${label}): `, el("span", { class: "mono", id: "wallet-address" }, address));
      if (!hooked.has(eth)) {
        hooked.add(eth);
        eth.on?.("chainChanged", () => { if (eip1193 === eth) void checkWalletChain().catch(() => undefined); });
        eth.on?.("accountsChanged", () => { if (eip1193 === eth) location.reload(); });
      }
      await Promise.all([showBalance(), loadHistory()]);
    } catch (e) { showError(walletStatus, explainE(e), "wallet-error"); }
    refresh();
  };
  connectBtn.addEventListener("click", () => void connectWith(window.ethereum, "window.ethereum"));
  // EIP-6963: every wallet extension announces itself; one button each (names as text only).
  const walletButtons = el("span", { id: "wallets" });
  const announced = new Set<string>();
  window.addEventListener("eip6963:announceProvider", (ev) => {
    const d = (ev as CustomEvent<{ info?: { uuid?: unknown; name?: unknown; rdns?: unknown }; provider?: EIP1193Provider }>).detail;
    const uuid = d?.info?.uuid, name = d?.info?.name, provider = d?.provider;
    if (typeof uuid !== "string" || typeof name !== "string" || provider === undefined || announced.has(uuid)) return;
    announced.add(uuid);
    const b = el("button", { type: "button", class: "wallet-6963", "data-rdns": typeof d?.info?.rdns === "string" ? d.info.rdns : "" }, `Connect ${name}`);
    b.addEventListener("click", () => void connectWith(provider, name));
    walletButtons.append(b);
  });
  window.dispatchEvent(new Event("eip6963:requestProvider"));
  switchBtn.addEventListener("click", () => void (async () => {
    const eth = eip1193;
    if (eth === undefined) return;
    try {
      try {
        await eth.request({ method: "wallet_switchEthereumChain", params: [{ chainId: numberToHex(chainId) }] });
      } catch (e) {
        if (!(typeof e === "object" && e !== null && "code" in e && (e as { code: unknown }).code === 4902)) throw e;
        // The wallet does not know the chain: add it (wallets switch to a chain they add).
        await eth.request({ method: "wallet_addEthereumChain", params: [{ chainId: numberToHex(chainId), chainName: chain.name, rpcUrls: [rpcUrl], nativeCurrency: chain.nativeCurrency }] });
      }
      if (!(await checkWalletChain())) throw new WrongChainError(walletChain, chainId);
    } catch (e) { showError(chainStatus, explainE(e), "switch-error"); }
  })());
  burnerBtn.addEventListener("click", () => {
    eip1193 = undefined;
    state.wallet = createWalletClient({ account: privateKeyToAccount(BURNER_KEY), chain, transport: http(rpcUrl) });
    replace(walletStatus, el("span", { class: "warn" }, "Dev burner key (public test mnemonic account 1 — INSECURE): "), el("span", { class: "mono", id: "wallet-address" }, state.wallet.account.address));
    setChainOk(true);
    void showBalance();
    void loadHistory();
  });
  const walletSection = el("section", { id: "wallet", "aria-labelledby": "wallet-h" }, el("h2", { id: "wallet-h" }, "1. Wallet and network"), walletButtons, connectBtn,
    chainId === DEVNET_CHAIN_ID ? burnerBtn : null, walletStatus, chainStatus, switchBtn, balanceP, deposits.root);

  // 2. Result key
  const keyStatus = el("p", { id: "key-status" }, "No result key yet.");
  const deriveBtn = el("button", { id: "derive-key", type: "button" }, "Derive from a wallet signature");
  const genBtn = el("button", { id: "generate-key", type: "button" }, "Generate a new key");
  const exportBtn = el("button", { id: "export-key", type: "button", disabled: "" }, "Export key file");
  const setKey = async (identity: string, how: string) => {
    state.identity = identity;
    state.recipient = await recipientOf(identity);
    replace(keyStatus, `${how}. Results are encrypted to `, el("span", { class: "mono" }, state.recipient));
    exportBtn.disabled = false;
    refresh();
  };
  deriveBtn.addEventListener("click", () => void (async () => {
    try {
      if (state.wallet === undefined) throw new EcldError("TaskError", "no wallet connected", { hint: "connect a wallet first (section 1)" });
      const sig = await state.wallet.signTypedData({ account: state.wallet.account, ...RESULT_KEY_TYPED_DATA });
      await setKey(identityFromSignature(sig), "Key derived from your wallet's signature");
    } catch (e) { showError(keyStatus, explainE(e), "key-error"); }
  })());
  genBtn.addEventListener("click", () => void (async () => {
    const { identity } = await generateResultIdentity();
    await setKey(identity, "New key generated in this page (export it, or the result is lost with the tab)");
  })());
  exportBtn.addEventListener("click", () => {
    if (state.identity !== undefined) download("ecld-result-key.txt", `# ecld result key (age identity); keep it secret\n# recipient: ${state.recipient ?? ""}\n${state.identity}\n`, "text/plain");
  });
  const keySection = el("section", { id: "key", "aria-labelledby": "key-h" }, el("h2", { id: "key-h" }, "2. Result key"), deriveBtn, genBtn, exportBtn, keyStatus);

  // 3. Images
  const imagesBody = el("tbody", { id: "images-body" });
  const imagesTable = el("table", { id: "images", class: "grid" },
    el("caption", {}, "Images in the registry, with the cheapest offer that serves each"),
    el("thead", {}, el("tr", {}, ...["Image", "Kind", "Platform", "Measurement", "Price"].map((h) => el("th", { scope: "col" }, h)))), imagesBody);
  const imagesStatus = el("p", { id: "images-status", role: "status" }, "Loading images…");
  const imagesSection = el("section", { id: "images-section", "aria-labelledby": "images-h" }, el("h2", { id: "images-h" }, "3. Images"), imagesStatus, imagesTable);

  const cheapest = (img: Image): Offer | undefined =>
    state.offers
      .filter((o) => !o.withdrawn && (o.platform & img.platforms) !== 0 && (o.imageId === zeroHash || o.imageId === img.id) && o.memoryMb >= MEMORY_MB && o.maxRuntimeS >= MAX_RUNTIME_S)
      .sort((a, b) => (a.price < b.price ? -1 : a.price > b.price ? 1 : 0))[0];
  const renderImages = () => {
    replace(imagesBody, ...state.images.map((img) => {
      const offer = cheapest(img);
      const runner = RUNNERS[img.name];
      return el("tr", { "data-image": img.name },
        el("td", {}, `${img.name} ${img.version}`),
        el("td", {}, runner === undefined ? "fixed program" : `runner: ${runner.kind}`),
        el("td", { class: "platform" }, ...platformNames(img.platforms).flatMap((p, i) => [i > 0 ? ", " : "", p === "sim" ? el("span", { class: "warn" }, "sim — INSECURE") : p])),
        el("td", {}, el("code", { class: "measurement", title: img.measurement, "aria-label": `measurement ${img.measurement}` }, shortHex(img.measurement))),
        el("td", { class: "price", ...(offer === undefined ? {} : { title: `${offer.price} base units, offer ${offer.id}` }) }, offer === undefined ? "no offer" : tokenText(offer.price)));
    }));
  };

  // 4. Program and input
  const imageSelect = el("select", { id: "image" });
  const imageInfo = el("p", { id: "image-info" });
  const text = el("textarea", { id: "input-text", rows: "4", placeholder: "Program input (text), or choose a file below" });
  const file = el("input", { id: "input-file", type: "file" });
  const { root: editorRoot, textarea: editor } = codeEditor("code-editor", "Code");
  const inputNote = el("p", { id: "input-note", class: "help" });
  file.addEventListener("change", () => replace(inputNote, file.files?.[0] === undefined ? "" : `The file ${file.files[0].name} (${bytes(file.files[0].size)}) is the input; the text above is not sent.`));
  const codeFile = el("input", { id: "code-file", type: "file" });
  const codeFileRow = el("p", { id: "code-file-row" }, el("label", { for: "code-file" }, "Code file: "), codeFile);
  const runnerInfo = el("p", { id: "runner-info", class: "help" });
  const codeBox = el("div", { id: "code-box", hidden: "" }, runnerInfo, editorRoot, codeFileRow);
  const currentImage = () => state.images.find((i) => i.id === imageSelect.value);
  const showImage = () => {
    const img = currentImage();
    if (img === undefined) { replace(imageInfo); codeBox.hidden = true; return; }
    const offer = cheapest(img);
    replace(imageInfo, el("span", { class: "mono", title: `measurement ${img.measurement}` }, img.id), " · ",
      offer === undefined ? el("span", { class: "err" }, "no offer serves it now") : `price ${tokenText(offer.price)}`,
      img.allowsSim ? el("span", { class: "warn" }, "  sim — INSECURE (the simulated platform may run it)") : "");
    const runner = RUNNERS[img.name];
    codeBox.hidden = runner === undefined;
    if (runner !== undefined) {
      replace(runnerInfo, `Runner image: your code is ${runner.what}. It is encrypted with the input; the proof names its hash.`);
      editorRoot.hidden = runner.kind === "wasm";
      editor.placeholder = runner.kind === "python" ? "import json\nprint(json.dumps({'words': len(INPUT.split())}))" : "console.log(JSON.stringify({ words: INPUT.split(/\\s+/).filter(Boolean).length }));";
      replace(codeFileRow, el("label", { for: "code-file" }, runner.kind === "wasm" ? "Code (a .wasm module): " : "Or load a file into the editor: "), codeFile);
    }
    refresh();
  };
  imageSelect.addEventListener("change", showImage);
  codeFile.addEventListener("change", () => void (async () => {
    const f = codeFile.files?.[0];
    const img = currentImage();
    if (f !== undefined && img !== undefined && RUNNERS[img.name]?.kind !== "wasm") {
      editor.value = await f.text();
      editor.dispatchEvent(new Event("input"));
    }
  })());
  const taskSection = el("section", { id: "task", "aria-labelledby": "task-h" }, el("h2", { id: "task-h" }, "4. Program and input"),
    el("p", {}, el("label", { for: "image" }, "Image "), imageSelect), imageInfo, codeBox,
    el("label", { for: "input-text" }, "Input (text)"), text,
    el("p", {}, el("label", { for: "input-file" }, "or an input file: "), file), inputNote);

  // 5. Run
  const submitBtn = el("button", { id: "submit", type: "button", class: "primary", disabled: "" }, "Run task");
  const submitWhy = el("p", { id: "submit-why", class: "help" });
  const steps = el("ol", { class: "steps", id: "steps" }, ...STEPS.map((s) => el("li", { "data-step": s }, el("span", { class: "label" }, STEP_LABELS[s]), el("span", { class: "detail", id: `step-${s}` }))));
  const runStatus = el("p", { id: "run-status", role: "status", "aria-live": "polite" });
  const countdown = el("p", { id: "countdown" });
  /** Cancel (an open task) or reclaim (a held task of a revoked image) while a task is followed. */
  const taskActions = el("p", { id: "task-actions" });
  const runError = el("div", { id: "run-error-box" });
  const runSection = el("section", { id: "run", "aria-labelledby": "run-h" }, el("h2", { id: "run-h" }, "5. Run"), submitBtn, submitWhy, steps, runStatus, countdown, taskActions, runError);

  // 6. Proof and result
  const verdict = el("div", { id: "verdict" });
  const proofBox = el("div", { id: "proof" }, "No proof yet.");
  const resultBox = el("div", { id: "result" });
  const outSection = el("section", { id: "outcome", "aria-labelledby": "outcome-h" }, el("h2", { id: "outcome-h" }, "6. Verified proof and result"), verdict, proofBox, resultBox);

  // 7. History
  const historyBody = el("tbody", { id: "history-body" });
  const historyStatus = el("p", { id: "history-status", role: "status" }, "Connect a wallet to see its tasks.");
  const historyRefresh = el("button", { id: "history-refresh", type: "button" }, "Refresh");
  const historySection = el("section", { id: "history", "aria-labelledby": "history-h" }, el("h2", { id: "history-h" }, "7. Your tasks (from the chain)"), historyRefresh, historyStatus,
    el("table", { class: "grid" }, el("thead", {}, el("tr", {}, ...["Task", "Image", "State", "Deadline", ""].map((h) => el("th", { scope: "col" }, h)))), historyBody));
  historyRefresh.addEventListener("click", () => void loadHistory());

  function refresh(): void {
    const why =
      state.wallet === undefined ? "Connect a wallet (section 1)."
      : !state.chainOk ? `Switch the wallet to chain ${chainId} (section 1).`
      : state.identity === undefined ? "Choose a result key (section 2)."
      : imageSelect.value === "" ? "Pick an image (section 4)."
      : state.busy ? "A task is running."
      : "";
    submitBtn.disabled = why !== "";
    deposits.setEnabled(state.wallet !== undefined && state.chainOk && !state.busy);
    replace(submitWhy, why);
  }

  function showError(where: Element, x: Explained, id = "run-error"): void {
    replace(where, el("div", { class: `error ${x.kind === "verify" ? "fail" : ""}`, id, role: "alert", "data-kind": x.kind },
      el("strong", {}, x.title), " ", x.todo, x.detail === "" ? null : el("details", {}, el("summary", {}, "Details"), el("pre", { class: "detail-text" }, x.detail))));
  }

  const setStep = (s: PageStep, mode: "active" | "done" | "err" | "", detail?: string) => {
    const li = steps.querySelector(`li[data-step="${s}"]`);
    if (li === null) return;
    li.className = mode;
    if (detail !== undefined) replace(li.querySelector(".detail")!, ` — ${detail}`);
    if (mode === "active" || mode === "err") replace(runStatus, `${STEP_LABELS[s]}${detail === undefined ? "" : `: ${detail}`}`);
  };
  const resetSteps = () => { for (const s of STEPS) setStep(s, "", ""); replace(runStatus); replace(runError); replace(verdict); replace(proofBox, "No proof yet."); replace(resultBox); replace(countdown); replace(taskActions); };

  // Deadlines are checked against block time, which a development chain may run ahead of.
  // The next block's time is at least the latest block's plus one.
  let lastBlockTs = 0;
  const nowS = () => Math.max(lastBlockTs + 1, Date.now() / 1000);
  const syncClock = async () => { try { lastBlockTs = Number((await publicClient.getBlock({ blockTag: "latest" })).timestamp); } catch { /* keep the last */ } };
  let timer: ReturnType<typeof setInterval> | undefined;
  const startCountdown = (taskId: bigint, deadline: bigint) => {
    if (timer !== undefined) clearInterval(timer);
    let n = 0;
    const tick = () => {
      if (n++ % 2 === 1) void syncClock();
      const left = Number(deadline) + 1 - nowS();
      if (left > 0) replace(countdown, el("span", { id: "time-left" }, `Time left before task ${taskId}'s deadline: ${duration(left)}`));
      else {
        if (timer !== undefined) clearInterval(timer);
        timer = undefined;
        replace(countdown, `Task ${taskId}'s deadline has passed without a result. `, reclaimButton(taskId));
      }
    };
    tick();
    timer = setInterval(tick, 1000);
  };
  const stopCountdown = () => { if (timer !== undefined) clearInterval(timer); timer = undefined; replace(countdown); };

  /**
   * Takes a task's whole escrow back (one wallet prompt): `reclaim` for a task past its deadline
   * or of a revoked image, `cancel` for a task no node holds (at any time).
   */
  function escrowButton(taskId: bigint, how: "reclaim" | "cancel"): HTMLButtonElement {
    const b = el("button", { type: "button", class: how, id: `${how}-${taskId}` },
      how === "reclaim" ? `Reclaim the escrow of task ${taskId}` : `Cancel task ${taskId} (no node holds it; the escrow comes back)`);
    b.addEventListener("click", () => void (async () => {
      const w = state.wallet;
      try {
        if (w === undefined) throw new EcldError("TaskError", "no wallet connected", { hint: "connect the wallet that submitted the task (section 1)" });
        if (!state.chainOk) throw new WrongChainError(walletChain, chainId);
        b.disabled = true;
        const tx = how === "reclaim" ? await client.reclaim(w, taskId) : await client.cancel(w, taskId);
        replace(taskActions);
        replace(runStatus, el("span", { class: "ok", id: how === "reclaim" ? "reclaimed" : "cancelled" },
          `Task ${taskId} ${how === "reclaim" ? "reclaimed" : "cancelled"}: the whole escrow is back in your account (transaction ${tx}).`));
        await Promise.all([loadHistory(), showBalance()]);
      } catch (e) { b.disabled = false; showError(runError, explainE(e)); }
    })());
    return b;
  }
  function reclaimButton(taskId: bigint): HTMLButtonElement {
    return escrowButton(taskId, "reclaim");
  }

  const row = (k: string, v: string | Node, id?: string) => [el("dt", {}, k), el("dd", { class: "mono", ...(id === undefined ? {} : { id }) }, v)];
  const showProof = (verified: VerifiedProof, node: Address) => {
    const spec = verified.proof.spec;
    replace(proofBox, el("dl", { class: "proof" },
      ...row("status", `${verified.status} ${verified.statusName}`, "proof-status"),
      ...row("meaning", STATUS_MEANINGS[verified.status] ?? "a status this page does not know", "status-meaning"),
      ...row("signer", verified.signer, "proof-signer"),
      ...row("image", `${verified.image.name} ${verified.image.version} (${verified.image.id})`),
      ...row("measurement", verified.image.measurement),
      ...row("platform", verified.insecureSim ? el("span", { class: "warn", id: "proof-sim" }, "sim — INSECURE: the image accepts the simulated platform, whose proofs show nothing about isolation") : "hardware only"),
      ...row("node", node),
      ...row("task spec", `${spec.memoryMb} MB of memory, ${spec.maxRuntimeS} s of run time, deadline ${new Date(Number(spec.deadline) * 1000).toISOString()}`, "proof-spec"),
      ...row("input hash", spec.inputHash),
      ...row("input CID hash", spec.inputCidHash),
      ...row("result hash", verified.proof.resultHash),
      ...row("result CID hash", verified.proof.resultCidHash),
      ...row("code hash", verified.proof.codeHash === zeroHash ? "none (the image's own program)" : verified.proof.codeHash, "proof-code-hash"),
      ...row("runtime", `${verified.proof.runtimeMs} ms`),
      ...row("chain", String(verified.chainId)),
      ...row("contract", verified.marketplace),
      ...row("result CID", verified.resultCid, "proof-result-cid"),
    ));
  };

  const decryptAndShow = async (taskId: bigint, ciphertext: Uint8Array, verified: VerifiedProof) => {
    const identity = state.identity;
    if (identity === undefined) {
      state.pendingDecrypt = { taskId, bytes: ciphertext, verified };
      const b = el("button", { type: "button", id: "decrypt" }, "Decrypt with your result key");
      b.addEventListener("click", () => void (async () => {
        const p = state.pendingDecrypt;
        if (p === undefined) return;
        if (state.identity === undefined) return showError(runError, { kind: "other", title: "No result key yet.", todo: "Choose the key the task was run with in section 2 (derive it from the same wallet, or load it), then press Decrypt again.", detail: "" });
        await decryptAndShow(p.taskId, p.bytes, p.verified);
      })());
      setStep("decrypt", "active", "waiting for your result key");
      replace(resultBox, el("p", {}, "The proof is verified. Choose your result key in section 2, then: "), b);
      return;
    }
    state.pendingDecrypt = undefined;
    setStep("decrypt", "active");
    try {
      const result = ciphertext.length === 0 ? undefined : decodeResultEnvelope(await decrypt(identity, ciphertext));
      if (result !== undefined && result.status !== verified.status)
        throw new EcldError("VerifyError", `the result says status ${result.status}, the proof ${verified.status}`, { hint: "do not trust this result" });
      setStep("decrypt", "done", result === undefined ? "no result to decrypt" : `${bytes(result.stdout.length)} of output, ${bytes(result.stderr.length)} of diagnostics`);
      replace(runStatus, el("span", { class: "ok" }, `Task ${taskId} done: status ${verified.status} ${verified.statusName}.`));
      if (result === undefined) {
        replace(resultBox, el("p", { class: "warn" }, "The enclave produced no result (the status above says why)."));
      } else {
        state.output = result.stdout;
        const dl = el("button", { id: "download", type: "button" }, "Download output");
        dl.addEventListener("click", () => { if (state.output !== undefined) download(`ecld-task-${taskId}.out`, state.output); });
        replace(resultBox, el("p", {}, `Exit code ${result.exitCode}. Output (${bytes(result.stdout.length)}):`),
          el("pre", { class: "output", id: "output" }, new TextDecoder().decode(result.stdout)), dl,
          result.stderr.length > 0 ? el("details", {}, el("summary", {}, "Diagnostics (stderr)"), el("pre", { class: "output", id: "stderr" }, new TextDecoder().decode(result.stderr))) : null);
      }
    } catch (e) {
      const x = explainE(e);
      setStep("decrypt", "err", x.title);
      if (x.kind === "verify") failVerification(x);
      else showError(runError, e instanceof Error && /decryption failed|no identity matched/i.test(e.message)
        ? { kind: "other", title: "This result key does not decrypt the result.", todo: "Choose the key the task was run with (section 2), then press Decrypt again.", detail: x.detail }
        : x);
      if (x.kind !== "verify") {
        state.pendingDecrypt = { taskId, bytes: ciphertext, verified };
      }
    }
  };

  function failVerification(x: Explained): void {
    replace(resultBox);
    state.output = undefined;
    state.pendingDecrypt = undefined;
    replace(verdict, el("div", { class: "fail", id: "failed-verification", role: "alert" }, el("strong", {}, "FAILED VERIFICATION"), ` — ${x.title.replace(/^FAILED VERIFICATION: /, "")} ${x.todo}`,
      el("details", {}, el("summary", {}, "Details"), el("pre", { class: "detail-text" }, x.detail))));
    replace(runStatus, el("span", { class: "err" }, "FAILED VERIFICATION: the result is not shown."));
  }

  /** Follows a submitted task to its verified, decrypted result (also after a reload). */
  // Following another task (Show, a new run) supersedes the one followed before.
  let followGen = 0;
  class Superseded extends Error {}
  const follow = async (taskId: bigint, known?: { inputHash: Hex; inputCid: string; code: Uint8Array | undefined }) => {
    const mine = ++followGen;
    const live = <T>(v: T): T => { if (mine !== followGen) throw new Superseded(); return v; };
    state.current = taskId;
    let step: PageStep = "match";
    try {
      const info = live(await client.task(taskId));
      live(await syncClock());
      replace(runStatus, `Task ${taskId} (${imageName(info.imageId)}), submitted in block ${info.block}.`);
      if (known === undefined) {
        for (const s of ["encrypt", "upload", "permit", "submit"] as const) setStep(s, "done", s === "submit" ? `task ${taskId}, block ${info.block}` : s === "upload" ? `input ${info.inputCid}` : "earlier");
      }
      if (info.state.kind === "reclaimed") {
        setStep("match", "err", "reclaimed");
        replace(runStatus, el("span", { class: "warn" }, `Task ${taskId} was reclaimed by its requester before a result came; nothing to verify.`));
        return;
      }
      // Matched node: named in the submission, or claimed later.
      step = "match";
      let node: Address | undefined = info.state.kind === "matched" ? info.state.node : undefined;
      if (info.state.kind === "matched" && state.revoked.has(info.imageId))
        replace(taskActions, el("span", { class: "warn" }, `The image of task ${taskId} was revoked by its owner: no proof for it will be accepted. `), reclaimButton(taskId));
      if (info.state.kind === "open") {
        setStep("match", "active", "waiting for a node to claim the task");
        replace(taskActions, escrowButton(taskId, "cancel"));
        startCountdown(taskId, info.deadline);
        for (;;) {
          const st = live(await client.taskState(taskId, info.block));
          if (st.kind === "matched") { node = st.node; break; }
          if (st.kind !== "open") break;
          live(await new Promise((r) => setTimeout(r, 500)));
        }
        if (node !== undefined) replace(taskActions);
      }
      if (node !== undefined) setStep("match", "done", `node ${node}`);
      step = "run";
      let outcome: Outcome;
      if (info.state.kind !== "done") {
        setStep("run", "active", node === undefined ? "" : `on node ${shortHex(node)}`);
        startCountdown(taskId, info.deadline);
        const waitMs = Math.max(5_000, (Number(info.deadline) + 30 - nowS()) * 1000);
        outcome = live(await client.waitForOutcome(taskId, info.block, { timeoutMs: waitMs, pollMs: 250 }));
      } else {
        outcome = live(await client.waitForOutcome(taskId, info.block, { timeoutMs: 5_000 }));
      }
      stopCountdown();
      if (outcome.kind === "reclaimed") {
        setStep("run", "err", "reclaimed");
        replace(runStatus, el("span", { class: "warn" }, `Task ${taskId} was reclaimed before a result came (${tokenText(outcome.amount)} back to the requester).`));
        return;
      }
      if (node === undefined) setStep("match", "done", `node ${outcome.node}`);
      setStep("run", "done", `${outcome.proof.runtimeMs} ms in the enclave`);
      step = "proof";
      setStep("proof", "done", `block ${outcome.block}: status ${outcome.proof.status} ${statusName(outcome.proof.status)}, ${tokenText(outcome.paid)} to the node, ${tokenText(outcome.refunded)} back to the requester`);
      step = "download";
      setStep("download", "active", `result ${outcome.resultCid || "(none)"}`);
      const ciphertext = live(await client.download(outcome));
      setStep("download", "done", `${bytes(ciphertext.length)}, every block checked against its CID`);
      step = "verify";
      setStep("verify", "active");
      // After a reload the uploaded bytes are gone; the proof's input hash is then the one your
      // own transaction put on chain (TaskSubmitted), which is what the proof is read against.
      const verified = live(await client.verify(outcome, known === undefined ? undefined : { inputHash: known.inputHash, inputCid: known.inputCid }, ciphertext));
      if (known !== undefined && !proofNamesCode(known.code, verified.proof))
        throw new EcldError("VerifyError", `the proof of task ${taskId} names code ${verified.proof.codeHash}, not the code sent`, { details: `sent ${codeHashOf(known.code)}`, hint: "do not trust this result: the node ran other code than yours" });
      setStep("verify", "done", `signature by the image's enclave signer ${shortHex(verified.signer)} over the task's spec as submitted; input hash ${shortHex(verified.proof.spec.inputHash)} and result hash ${shortHex(verified.proof.resultHash)} ${known === undefined ? " match your submission on chain and the stored result" : " match the bytes you uploaded and the stored result"}; result CID ${verified.resultCid || "(none)"} is the one signed${known?.code === undefined ? "" : "; code hash matches your code"}`);
      replace(verdict, el("p", { class: "ok", id: "verified" }, "Proof verified: signed by the image's registered enclave key, for this chain and contract, over your task's spec (input, memory, run time, deadline), the input uploaded and the result downloaded from the CID it names."));
      showProof(verified, outcome.node);
      step = "decrypt";
      await decryptAndShow(taskId, ciphertext, verified);
      localStorage.removeItem(storageKey);
    } catch (e) {
      if (e instanceof Superseded) return;
      stopCountdown();
      const x = explainE(e);
      setStep(step, "err", x.title);
      if (x.kind === "verify" || (isIntegrityError(e) && (step === "download" || step === "verify"))) failVerification(x);
      else {
        showError(runError, x);
        if (e instanceof EcldError && /has no result yet/.test(e.shortMessage)) replace(countdown, `Task ${taskId}'s deadline has passed without a result. `, reclaimButton(taskId));
      }
    } finally {
      void loadHistory();
    }
  };

  submitBtn.addEventListener("click", () => void (async () => {
    const wallet = state.wallet, identity = state.identity, recipient = state.recipient, image = currentImage();
    if (wallet === undefined || identity === undefined || recipient === undefined || image === undefined) return;
    state.busy = true;
    refresh();
    resetSteps();
    let step: PageStep = "encrypt";
    try {
      // The wallet's chain before anything else.
      if (!(await checkWalletChain())) throw new WrongChainError(walletChain, chainId);
      const runner = RUNNERS[image.name];
      // A file is read as a stream (never whole in memory); text is small.
      const f = file.files?.[0];
      const input: Blob = f ?? new Blob([new TextEncoder().encode(text.value)]);
      let code: Uint8Array | undefined;
      if (runner !== undefined) {
        const c = codeFile.files?.[0];
        if (runner.kind === "wasm") code = c === undefined ? undefined : new Uint8Array(await c.arrayBuffer());
        else code = new TextEncoder().encode(editor.value);
        if (code === undefined || code.length === 0)
          throw new EcldError("TaskError", `the ${image.name} runner image needs your code`, { hint: runner.kind === "wasm" ? "choose a .wasm module as the code file" : "type your program into the code editor" });
      }
      // The price and the balance (the wallet's and the deposit's), before any work or prompt.
      const offer = await client.cheapestOffer(image, MEMORY_MB, MAX_RUNTIME_S);
      const [balance, deposit] = await Promise.all([client.tokenBalance(wallet.account.address), client.depositBalance(wallet.account.address)]);
      if (balance + deposit < offer.price)
        throw new EcldError("TaskError", `account ${wallet.account.address} holds ${balance} tokens and a deposit of ${deposit}, the task costs ${offer.price}`, {
          details: `balance ${tokenText(balance)}, deposit ${tokenText(deposit)}, price ${tokenText(offer.price)}`,
        });
      const req = { memoryMb: MEMORY_MB, maxRuntimeS: MAX_RUNTIME_S };
      // File → payload framing → age STREAM encryption → keccak256 and a Blob of ciphertext,
      // chunk by chunk; the Blob lives in the browser's blob store, not the page's heap.
      const plainLen = encodePayloadHeader({ requester: wallet.account.address, recipient, code, inputLength: input.size }).length + input.size;
      setStep("encrypt", "active", `${bytes(plainLen)} of payload`);
      const showEncrypt = throttled((done: number, total: number) => setStep("encrypt", "active", `${bytes(plainLen)} of payload: ${bytes(done)} / ${bytes(total)} of ciphertext`));
      // The input hash (keccak256 of the ciphertext) is computed by a worker beside the encryption.
      const hasher = workerHasher();
      const enc = await client.encryptInputStream(image, wallet.account.address, { recipient, code, input: input.stream(), inputLength: input.size }, showEncrypt, hasher)
        .finally(() => hasher.close());
      setStep("encrypt", "done", `${bytes(enc.payloadLength)} of payload → ${bytes(enc.length)} of ciphertext, keccak256 ${shortHex(enc.inputHash)}`);
      step = "upload";
      setStep("upload", "active", `0 / ${bytes(enc.length)} of ciphertext sent`);
      const cid = await uploadWithProgress(storeUrl, enc.ciphertext, throttled((sent, total) => setStep("upload", "active", `${sent.toLocaleString("en-US")} / ${bytes(total)} of ciphertext sent`)));
      setStep("upload", "done", `${bytes(enc.length)} stored as ${cid}`);
      step = "permit";
      // With a deposit that covers the escrow there is no permit: the submit step comes first
      // (a permit may still follow if the deposit was spent meanwhile).
      let permitted = false;
      const escrowed = `${tokenText(offer.price)} escrowed by the Marketplace until the task ends`;
      const submitted = await client.submitUploaded(wallet, image, req, { cid, inputHash: enc.inputHash }, (s) => {
        if (s === "permit") { step = "permit"; permitted = true; setStep("permit", "active", escrowed); }
        if (s === "submit") {
          step = "submit";
          setStep("permit", "done", permitted ? escrowed : `not needed: ${escrowed}, drawn from your deposit`);
          setStep("submit", "active", "waiting for the wallet and the block");
        }
      });
      const paidBy = submitted.fromDeposit === submitted.maxPrice ? "from your deposit" : submitted.fromDeposit === 0n ? "from your wallet" : `${tokenText(submitted.fromDeposit)} of it from your deposit`;
      setStep("submit", "done", `transaction ${submitted.tx}, block ${submitted.block}, task ${submitted.taskId}, escrow ${tokenText(submitted.maxPrice)} ${paidBy}, node's price ${tokenText(submitted.price)}`);
      history.replaceState(null, "", `#task=${submitted.taskId}`);
      localStorage.setItem(storageKey, String(submitted.taskId));
      await follow(submitted.taskId, { inputHash: enc.inputHash, inputCid: cid, code });
    } catch (e) {
      const x = explainE(e);
      setStep(step, "err", x.title);
      if (x.kind === "wrong-chain") await checkWalletChain().catch(() => undefined);
      showError(runError, x);
    } finally {
      state.busy = false;
      refresh();
      void showBalance();
    }
  })());

  async function loadHistory(): Promise<void> {
    const w = state.wallet;
    if (w === undefined) return;
    try {
      const tasks = await client.tasksOf(w.account.address);
      await syncClock();
      const now = nowS();
      replace(historyStatus, tasks.length === 0 ? "No tasks from this account yet." : `${tasks.length} task(s) from ${w.account.address}.`);
      replace(historyBody, ...tasks.map((t: TaskInfo) => {
        const final = t.state.kind === "done" || t.state.kind === "reclaimed";
        const left = Number(t.deadline) + 1 - now;
        const stateText = t.state.kind === "done" ? `done: ${t.state.status} ${t.state.statusName}` : t.state.kind === "matched" ? `running on ${shortHex(t.state.node)}` : t.state.kind === "open" ? "open (waiting for a node)" : "reclaimed";
        const settled = t.state.kind === "done" ? { title: `${tokenText(t.state.paid)} to the node, ${tokenText(t.state.refunded)} back to you (escrow ${tokenText(t.maxPrice)})` } : {};
        const action = t.state.kind === "open" ? escrowButton(t.taskId, "cancel")
          : t.state.kind === "matched" && (left <= 0 || state.revoked.has(t.imageId)) ? reclaimButton(t.taskId) : null;
        const show = el("button", { type: "button", class: "show" }, `Show task ${t.taskId}`);
        show.addEventListener("click", () => { history.replaceState(null, "", `#task=${t.taskId}`); resetSteps(); void follow(t.taskId); });
        return el("tr", { id: `history-${t.taskId}` },
          el("td", {}, String(t.taskId)), el("td", {}, imageName(t.imageId)), el("td", { class: "state", ...settled }, stateText),
          el("td", {}, final ? "–" : left > 0 ? `in ${duration(left)}` : "passed"),
          el("td", {}, show, action));
      }));
    } catch (e) { showError(historyStatus, explainE(e), "history-error"); }
  }

  replace(app, walletSection, keySection, imagesSection, taskSection, runSection, outSection, historySection);
  refresh();
  try {
    await client.checkChain();
    const [images, offers, decimals, symbol] = await Promise.all([
      client.images(),
      client.offers(),
      publicClient.readContract({ address: cfg.deployment.token, abi: devTokenAbi, functionName: "decimals" }),
      publicClient.readContract({ address: cfg.deployment.token, abi: devTokenAbi, functionName: "symbol" }),
    ]);
    state.images = images.filter((i) => !i.deprecated).sort((a, b) => a.name.localeCompare(b.name));
    state.revoked = new Set(images.filter((i) => i.revoked).map((i) => i.id));
    state.offers = offers;
    state.token = { decimals, symbol };
    renderImages();
    replace(imagesStatus, `${state.images.length} images.`);
    replace(imageSelect, ...state.images.map((i) => el("option", { value: i.id }, `${i.name} ${i.version}${RUNNERS[i.name] === undefined ? "" : ` (runner: ${RUNNERS[i.name]?.kind})`}${i.allowsSim ? " (sim — INSECURE)" : ""}`)));
    showImage();
  } catch (e) {
    showError(imagesStatus, explainE(e), "load-error");
  }
  refresh();
  // Reattach to a task after a reload: its id in the URL hash, or the last one started here.
  const fromHash = /^#task=(\d+)$/.exec(location.hash)?.[1];
  const reattach = fromHash ?? localStorage.getItem(storageKey) ?? undefined;
  if (reattach !== undefined && /^\d+$/.test(reattach)) {
    history.replaceState(null, "", `#task=${reattach}`);
    await follow(BigInt(reattach));
  }
}

void main();
