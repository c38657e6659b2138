import {
  type Deployment,
  EcldClient,
  EcldError,
  type Image,
  RESULT_KEY_TYPED_DATA,
  STEPS,
  type Step,
  generateResultIdentity,
  identityFromSignature,
  recipientOf,
} from "@ecld/sdk";
import {
  type Account,
  type Address,
  type Chain,
  type EIP1193Provider,
  type Transport,
  type WalletClient,
  createPublicClient,
  createWalletClient,
  custom,
  defineChain,
  http,
} from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { download, el, replace } from "./dom.js";

interface PageConfig { deployment: Deployment; rpc: string; store: string }

/** Account 1 of the public test mnemonic ("test test … junk"): known to everyone, devnet only. */
const BURNER_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
const DEVNET_CHAIN_ID = 31337;

const STEP_LABELS: Record<Step, string> = {
  encrypt: "Encrypt the input to the image's enclave key",
  upload: "Upload the ciphertext to the store",
  permit: "Sign the payment permit (wallet prompt 1)",
  submit: "Submit the task (wallet prompt 2)",
  wait: "Wait for a node's result on chain",
  download: "Download the result ciphertext",
  verify: "Verify the proof (signer, hashes, chain, contract)",
  decrypt: "Decrypt the result with your key",
};

declare global {
  interface Window { ethereum?: EIP1193Provider }
}

type Wallet = WalletClient<Transport, Chain, Account>;

const state: { wallet?: Wallet; identity?: string; recipient?: string; images: Image[]; output?: Uint8Array } = { images: [] };

function errorText(e: unknown): string {
  if (e instanceof EcldError) return e.message;
  if (e instanceof Error) return e.message;
  return String(e);
}

async function main(): Promise<void> {
  const app = document.getElementById("app")!;
  const cfg = (await (await fetch("/ecld-config.json")).json()) as PageConfig;
  const rpcUrl = new URL(cfg.rpc, location.href).toString();
  const chain = defineChain({
    id: cfg.deployment.chainId,
    name: cfg.deployment.chainId === DEVNET_CHAIN_ID ? "ecld devnet" : `chain ${cfg.deployment.chainId}`,
    nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
    rpcUrls: { default: { http: [rpcUrl] } },
  });
  const publicClient = createPublicClient({ chain, transport: http(rpcUrl), pollingInterval: 250 });
  const client = new EcldClient({ deployment: cfg.deployment, publicClient, store: new URL(cfg.store, location.href).toString() });

  // 1. Wallet
  const walletStatus = el("p", { id: "wallet-status" }, "No wallet connected.");
  const connectBtn = el("button", { id: "connect" }, "Connect wallet (EIP-1193)");
  const burnerBtn = el("button", { id: "burner" }, "Use the dev burner key (INSECURE, local devnet only)");
  connectBtn.addEventListener("click", () => void (async () => {
    try {
      const eth = window.ethereum;
      if (eth === undefined) throw new Error("No browser wallet found (window.ethereum). Install one, or use the dev burner on a local devnet.");
      const [address] = (await eth.request({ method: "eth_requestAccounts" })) as Address[];
      if (address === undefined) throw new Error("The wallet shared no account.");
      state.wallet = createWalletClient({ account: address, chain, transport: custom(eth) }) as unknown as Wallet;
      replace(walletStatus, "Connected: ", el("span", { class: "mono" }, address));
      refresh();
    } catch (e) { replace(walletStatus, el("span", { class: "err" }, errorText(e))); }
  })());
  burnerBtn.addEventListener("click", () => {
    state.wallet = createWalletClient({ account: privateKeyToAccount(BURNER_KEY), chain, transport: http(rpcUrl) });
    replace(walletStatus, el("span", { class: "warn" }, "Dev burner key (public test mnemonic account 1 — INSECURE): "), el("span", { class: "mono" }, state.wallet.account.address));
    refresh();
  });
  const walletSection = el("section", { id: "wallet" }, el("h2", {}, "1. Wallet"), connectBtn,
    cfg.deployment.chainId === DEVNET_CHAIN_ID ? burnerBtn : null, walletStatus);

  // 2. Result key
  const keyStatus = el("p", { id: "key-status" }, "No result key yet.");
  const deriveBtn = el("button", { id: "derive-key" }, "Derive from a wallet signature");
  const genBtn = el("button", { id: "generate-key" }, "Generate a new key");
  const exportBtn = el("button", { id: "export-key", disabled: "" }, "Export key file");
  const setKey = async (identity: string, how: string) => {
    state.identity = identity;
    state.recipient = await recipientOf(identity);
    replace(keyStatus, `${how}. Results are encrypted to `, el("span", { class: "mono" }, state.recipient));
    exportBtn.disabled = false;
    refresh();
  };
  deriveBtn.addEventListener("click", () => void (async () => {
    try {
      if (state.wallet === undefined) throw new Error("Connect a wallet first.");
      const sig = await state.wallet.signTypedData({ account: state.wallet.account, ...RESULT_KEY_TYPED_DATA });
      await setKey(identityFromSignature(sig), "Key derived from your wallet's signature");
    } catch (e) { replace(keyStatus, el("span", { class: "err" }, errorText(e))); }
  })());
  genBtn.addEventListener("click", () => void (async () => {
    const { identity } = await generateResultIdentity();
    await setKey(identity, "New key generated in this page (export it, or the result is lost with the tab)");
  })());
  exportBtn.addEventListener("click", () => {
    if (state.identity !== undefined) download("ecld-result-key.txt", `# ecld result key (age identity); keep it secret\n# recipient: ${state.recipient ?? ""}\n${state.identity}\n`, "text/plain");
  });
  const keySection = el("section", { id: "key" }, el("h2", {}, "2. Result key"), deriveBtn, genBtn, exportBtn, keyStatus);

  // 3. Image and input
  const imageSelect = el("select", { id: "image" });
  const imageInfo = el("p", { id: "image-info" });
  const text = el("textarea", { id: "input-text", placeholder: "Program input (text), or choose a file below" });
  const file = el("input", { id: "input-file", type: "file" });
  const codeFile = el("input", { id: "code-file", type: "file" });
  const codeRow = el("p", { id: "code-row" }, "Code, for runner images only (a WASI module for wasm, a script for python): ", codeFile);
  const showImage = () => {
    const img = state.images.find((i) => i.id === imageSelect.value);
    if (img === undefined) return replace(imageInfo, "");
    replace(imageInfo, el("span", { class: "mono" }, img.id), img.allowsSim ? el("span", { class: "warn" }, "  sim — INSECURE (the simulated platform may run it)") : "");
  };
  imageSelect.addEventListener("change", showImage);
  const taskSection = el("section", { id: "task" }, el("h2", {}, "3. Program and input"),
    el("label", {}, "Image ", imageSelect), imageInfo, text, el("p", {}, "or a file: ", file), codeRow);

  // 4. Run
  const submitBtn = el("button", { id: "submit", class: "primary", disabled: "" }, "Run task");
  const steps = el("ol", { class: "steps", id: "steps" }, ...STEPS.map((s) => el("li", { "data-step": s }, STEP_LABELS[s])));
  const runStatus = el("p", { id: "run-status" });
  const runSection = el("section", { id: "run" }, el("h2", {}, "4. Run"), submitBtn, steps, runStatus);

  // 5. Proof and result
  const proofBox = el("div", { id: "proof" }, "No proof yet.");
  const resultBox = el("div", { id: "result" });
  const outSection = el("section", { id: "outcome" }, el("h2", {}, "5. Verified proof and result"), proofBox, resultBox);

  function refresh(): void {
    submitBtn.disabled = state.wallet === undefined || state.identity === undefined || imageSelect.value === "";
  }

  const markStep = (current: Step | undefined, failed = false) => {
    let seen = false;
    for (const li of steps.children) {
      const s = li.getAttribute("data-step");
      li.className = s === current ? (failed ? "err" : "active") : seen || current === undefined ? "" : "done";
      if (s === current) seen = true;
    }
    if (current === undefined) for (const li of steps.children) li.className = "done";
  };

  submitBtn.addEventListener("click", () => void (async () => {
    const wallet = state.wallet, identity = state.identity, recipient = state.recipient;
    if (wallet === undefined || identity === undefined || recipient === undefined) return;
    submitBtn.disabled = true;
    replace(proofBox, "No proof yet.");
    replace(resultBox);
    let current: Step | undefined;
    try {
      const f = file.files?.[0];
      const input = f === undefined ? new TextEncoder().encode(text.value) : new Uint8Array(await f.arrayBuffer());
      const c = codeFile.files?.[0];
      const code = c === undefined ? undefined : new Uint8Array(await c.arrayBuffer());
      const { submitted, verified, result } = await client.runTask(wallet, { image: imageSelect.value as `0x${string}`, input, code, recipient, identity }, (s, info) => {
        current = s;
        markStep(s);
        replace(runStatus, info === undefined ? STEP_LABELS[s] : `${STEP_LABELS[s]} (${info})`);
      });
      markStep(undefined);
      replace(runStatus, el("span", { class: "ok" }, `Task ${submitted.taskId} done.`));
      const row = (k: string, v: string | Node, id?: string) => [el("dt", {}, k), el("dd", { class: "mono", ...(id === undefined ? {} : { id }) }, v)];
      replace(proofBox, el("p", { class: "ok", id: "verified" }, "Proof verified: signed by the image's registered enclave key, for this chain and contract, over the input you uploaded and the result you downloaded."),
        el("dl", { class: "proof" },
          ...row("status", `${verified.status} ${verified.statusName}`, "proof-status"),
          ...row("signer", verified.signer, "proof-signer"),
          ...row("image", `${verified.image.name} ${verified.image.version} (${verified.image.id})`),
          ...row("platform", verified.insecureSim ? el("span", { class: "warn", id: "proof-sim" }, "sim — INSECURE: the image accepts the simulated platform, whose proofs show nothing about isolation") : "hardware only"),
          ...row("input hash", verified.proof.inputHash),
          ...row("result hash", verified.proof.resultHash),
          ...row("code hash", verified.proof.codeHash),
          ...row("runtime", `${verified.proof.runtimeMs} ms`),
          ...row("chain", String(verified.chainId)),
          ...row("contract", verified.marketplace),
          ...row("result CID", verified.resultCid),
        ));
      if (result === undefined) {
        replace(resultBox, el("p", { class: "warn" }, "The enclave produced no result (the input could not be read)."));
      } else {
        state.output = result.stdout;
        const dl = el("button", { id: "download" }, "Download output");
        dl.addEventListener("click", () => { if (state.output !== undefined) download(`ecld-task-${submitted.taskId}.out`, state.output); });
        replace(resultBox, el("p", {}, `Exit code ${result.exitCode}. Output (${result.stdout.length} bytes):`),
          el("pre", { class: "output", id: "output" }, new TextDecoder().decode(result.stdout)), dl,
          result.stderr.length > 0 ? el("details", {}, el("summary", {}, "Diagnostics (stderr)"), el("pre", { class: "output" }, new TextDecoder().decode(result.stderr))) : null);
      }
    } catch (e) {
      markStep(current, true);
      replace(runStatus, el("span", { class: "err", id: "run-error" }, errorText(e)));
    } finally {
      refresh();
    }
  })());

  replace(app, walletSection, keySection, taskSection, runSection, outSection);
  try {
    await client.checkChain();
    state.images = (await client.images()).filter((i) => !i.deprecated).sort((a, b) => a.name.localeCompare(b.name));
    replace(imageSelect, ...state.images.map((i) => el("option", { value: i.id }, `${i.name} ${i.version}${i.allowsSim ? " (sim — INSECURE)" : ""}`)));
    showImage();
  } catch (e) {
    replace(imageInfo, el("span", { class: "err" }, errorText(e)));
  }
  refresh();
}

void main();
