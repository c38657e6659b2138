/** Section 1's deposit controls: the account's deposit in the Marketplace, deposit and withdraw. */
import type { EcldClient } from "@ecld/sdk";
import { type Account, type Chain, type Transport, type WalletClient, parseUnits } from "viem";
import { el, replace } from "./dom.js";

type Wallet = WalletClient<Transport, Chain, Account>;

export interface DepositControls {
  /** The amount field and the two buttons, with their status line. */
  root: HTMLElement;
  /** Enables the buttons when a wallet on the right chain is connected and nothing else runs. */
  setEnabled(on: boolean): void;
}

/**
 * Deposit (`depositWithPermit`: the permit signature, then the transaction) and withdraw (one
 * transaction) an amount typed in token units. `done` runs after either succeeds (to show the
 * balances again); `fail` shows what went wrong.
 */
export function depositControls(p: {
  client: EcldClient;
  wallet: () => Wallet | undefined;
  decimals: () => number;
  tokenText: (amount: bigint) => string;
  ready: () => Promise<boolean>;
  done: () => Promise<void>;
  fail: (where: Element, e: unknown) => void;
}): DepositControls {
  const amount = el("input", { id: "deposit-amount", type: "text", inputmode: "decimal", size: "10", placeholder: "0.0", autocomplete: "off" });
  const depositBtn = el("button", { id: "deposit", type: "button", disabled: "" }, "Deposit");
  const withdrawBtn = el("button", { id: "withdraw", type: "button", disabled: "" }, "Withdraw");
  const status = el("div", { id: "deposit-status", role: "status", "aria-live": "polite" });
  let enabled = false, busy = false;
  const sync = () => { depositBtn.disabled = withdrawBtn.disabled = !enabled || busy; };
  const run = async (f: (w: Wallet, units: bigint) => Promise<string>) => {
    const w = p.wallet();
    if (w === undefined) return;
    busy = true;
    sync();
    replace(status);
    try {
      if (!(await p.ready())) return;
      let units: bigint;
      try {
        units = parseUnits(amount.value.trim(), p.decimals());
      } catch {
        throw new Error(`"${amount.value}" is not an amount of tokens`);
      }
      replace(status, el("span", { class: "ok", id: "deposit-done" }, await f(w, units)));
      await p.done();
    } catch (e) {
      p.fail(status, e);
    } finally {
      busy = false;
      sync();
    }
  };
  depositBtn.addEventListener("click", () => void run(async (w, units) => {
    const r = await p.client.deposit(w, units, (s) => replace(status, s === "permit" ? "Sign the deposit permit (wallet prompt 1)…" : "Send the deposit (wallet prompt 2)…"));
    return `Deposited ${p.tokenText(r.amount)}; your deposit is ${p.tokenText(r.deposit)}.`;
  }));
  withdrawBtn.addEventListener("click", () => void run(async (w, units) => {
    replace(status, "Send the withdrawal (wallet prompt)…");
    const r = await p.client.withdraw(w, units);
    return `Withdrew ${p.tokenText(r.amount)} to your wallet; your deposit is ${p.tokenText(r.deposit)}.`;
  }));
  const root = el("div", { id: "deposit-box" },
    el("p", { class: "help" }, "Tasks draw their escrow from your deposit first, without a permit signature: one wallet prompt per task."),
    el("p", {}, el("label", { for: "deposit-amount" }, "Amount"), amount, depositBtn, withdrawBtn),
    status);
  return { root, setEnabled: (on) => { enabled = on; sync(); } };
}
