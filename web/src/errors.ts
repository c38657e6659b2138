/** Turns anything thrown into what the user should read: what happened and what to do. */
import { EcldError, InsufficientDepositError } from "@ecld/sdk";
import { BaseError, HttpRequestError, UserRejectedRequestError } from "viem";

export type ErrorKind = "wrong-chain" | "balance" | "deposit" | "rejected" | "store" | "chain" | "verify" | "other";

export interface Explained {
  kind: ErrorKind;
  /** One line: what happened. */
  title: string;
  /** What the user can do about it. */
  todo: string;
  /** The underlying message, for the curious. */
  detail: string;
}

/** The page's own error for a wallet on another chain than the deployment's. */
export class WrongChainError extends Error {
  constructor(readonly walletChain: number, readonly wanted: number) {
    super(`the wallet is on chain ${walletChain}, this deployment is on chain ${wanted}`);
    this.name = "WrongChainError";
  }
}

function causes(e: unknown): unknown[] {
  const out: unknown[] = [];
  let c: unknown = e;
  for (let i = 0; i < 12 && c !== undefined && c !== null; i++) {
    out.push(c);
    c = typeof c === "object" && "cause" in c ? (c as { cause?: unknown }).cause : undefined;
  }
  return out;
}

function messageOf(e: unknown): string {
  if (e instanceof EcldError) return [e.shortMessage, ...(e.metaMessages ?? [])].join("\n");
  if (e instanceof BaseError) return e.shortMessage;
  if (e instanceof Error) return e.message;
  return String(e);
}

/** Whether an error means the store sent bytes that do not match what was asked for. */
export function isIntegrityError(e: unknown): boolean {
  return e instanceof EcldError && (e.name === "VerifyError" || (e.name === "StoreError" && /does not match|whose CID is|malformed dag-pb|damaged/.test(e.shortMessage)));
}

export function explain(e: unknown, ctx: { chainId: number; tokenText?: (amount: bigint) => string }): Explained {
  const chain = causes(e);
  const detail = messageOf(e);
  if (e instanceof WrongChainError || chain.some((c) => c instanceof BaseError && c.name === "ChainMismatchError"))
    return { kind: "wrong-chain", title: "Your wallet is on the wrong network.", todo: `Switch the wallet to chain ${ctx.chainId} with the “Switch network” button in section 1 (or in the wallet), then try again. Nothing was sent.`, detail };
  if (chain.some((c) => c instanceof UserRejectedRequestError || (typeof c === "object" && c !== null && "code" in c && (c as { code: unknown }).code === 4001)))
    return { kind: "rejected", title: "You rejected the request in your wallet.", todo: "Nothing was paid. Press the button again and approve the wallet prompts (the permit signature, then the transaction) to run the task.", detail };
  if (isIntegrityError(e))
    return { kind: "verify", title: "FAILED VERIFICATION: this task's result cannot be trusted.", todo: "The result was not decrypted and is not shown. Do not use it: report the node, and run the task again (another node or store).", detail };
  if (e instanceof EcldError && e.name === "TaskError" && /holds .* tokens/.test(e.shortMessage))
    return { kind: "balance", title: "Not enough token balance for this task.", todo: "Fund the account with the Marketplace's token (on a local devnet, use the dev burner or the demo account of `ecld up`), then run the task again.", detail };
  const shortage = chain.find((c): c is InsufficientDepositError => c instanceof InsufficientDepositError);
  if (shortage !== undefined) {
    const t = ctx.tokenText ?? String;
    return { kind: "deposit", title: `Your deposit holds ${t(shortage.balance)}, less than the ${t(shortage.amount)} asked for.`, todo: shortage.balance === 0n ? "Nothing was withdrawn. Deposit first." : `Nothing was withdrawn. Withdraw at most ${t(shortage.balance)}.`, detail };
  }
  if (e instanceof EcldError && e.name === "DepositError" && /cannot deposit/.test(e.shortMessage))
    return { kind: "balance", title: "Not enough tokens in your wallet for this deposit.", todo: "Deposit less, or fund the account with the Marketplace's token. Nothing was sent.", detail };
  if (e instanceof EcldError && e.name === "StoreError")
    return { kind: "store", title: "The store is unreachable or refused the request.", todo: "Check that the store is running (`ecld up` starts it) and that this page's /store route reaches it, then try again.", detail };
  if (chain.some((c) => c instanceof HttpRequestError || (c instanceof TypeError && /fetch/i.test(c.message))))
    return { kind: "chain", title: "The chain's RPC endpoint is unreachable.", todo: "Check that the chain is running (`ecld up` starts it) and that this page's /rpc route reaches it, then reload the page.", detail };
  if (e instanceof EcldError && e.name === "ChainError")
    return { kind: "chain", title: "A call to the chain failed.", todo: e.hint === undefined ? "Check the chain and try again." : `${e.hint[0]?.toUpperCase() ?? ""}${e.hint.slice(1)}.`, detail };
  const hint = e instanceof EcldError && e.hint !== undefined ? `${e.hint[0]?.toUpperCase() ?? ""}${e.hint.slice(1)}.` : "Reload the page and try again; if it persists, check the browser console and `ecld up`'s log.";
  return { kind: "other", title: e instanceof EcldError ? `${e.shortMessage[0]?.toUpperCase() ?? ""}${e.shortMessage.slice(1)}.` : "Something went wrong.", todo: hint, detail };
}
