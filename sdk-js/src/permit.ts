import { type Account, type Address, type Chain, type Hex, type PublicClient, type Transport, type WalletClient, hexToSignature } from "viem";
import { devTokenAbi } from "./abi.js";
import { EcldError, describe } from "./errors.js";

/** An EIP-2612 permit signed for the Marketplace, split as `…WithPermit` calls take it. */
export interface SignedPermit {
  /** The permit's deadline (unix seconds). */
  deadline: bigint;
  v: number;
  r: Hex;
  s: Hex;
}

/** What an EIP-2612 permit signs: `owner` lets `spender` move `value` tokens until `deadline`. */
export interface PermitMessage {
  owner: Address;
  spender: Address;
  value: bigint;
  nonce: bigint;
  deadline: bigint;
}

/** The EIP-712 typed data of an EIP-2612 permit of the token `token` (named `tokenName`, version "1"). */
export function permitTypedData(token: { name: string; chainId: number; address: Address }, message: PermitMessage) {
  return {
    domain: { name: token.name, version: "1", chainId: token.chainId, verifyingContract: token.address },
    types: {
      Permit: [
        { name: "owner", type: "address" },
        { name: "spender", type: "address" },
        { name: "value", type: "uint256" },
        { name: "nonce", type: "uint256" },
        { name: "deadline", type: "uint256" },
      ],
    },
    primaryType: "Permit",
    message,
  } as const;
}

/** `v`, `r` and `s` of a 65-byte signature (`v` is 27 or 28, as `permit` takes it). */
export function splitSignature(sig: Hex): { v: number; r: Hex; s: Hex } {
  const { r, s, v, yParity } = hexToSignature(sig);
  return { v: Number(v ?? BigInt(yParity + 27)), r, s };
}

/**
 * Signs (one wallet prompt) a permit for the Marketplace `spender` to move `value` of the
 * wallet's tokens within the hour, with the token's current nonce for the account. Two permits
 * signed before either is used carry the same nonce and only one can be used; callers
 * serialise them ({@link PermitQueue}).
 */
export async function signPermit<A extends Account>(
  wallet: WalletClient<Transport, Chain | undefined, A>,
  publicClient: PublicClient,
  p: { chainId: number; token: Address; spender: Address; value: bigint; what: string },
): Promise<SignedPermit> {
  const owner = wallet.account.address;
  const token = { address: p.token, abi: devTokenAbi } as const;
  const [nonce, name] = await Promise.all([
    publicClient.readContract({ ...token, functionName: "nonces", args: [owner] }),
    publicClient.readContract({ ...token, functionName: "name" }),
  ]).catch((e: unknown) => {
    throw new EcldError("ChainError", "reading the token's permit nonce failed", { cause: e, details: describe(e), hint: "check the RPC endpoint and the deployment addresses" });
  });
  const deadline = BigInt(Math.floor(Date.now() / 1000)) + 3600n;
  const sig = await wallet
    .signTypedData({ account: wallet.account, ...permitTypedData({ name, chainId: p.chainId, address: p.token }, { owner, spender: p.spender, value: p.value, nonce, deadline }) })
    .catch((e: unknown) => {
      throw new EcldError("TaskError", `the wallet did not sign the ${p.what} permit`, { cause: e, details: describe(e), hint: "approve the signature request in your wallet" });
    });
  return { deadline, ...splitSignature(sig) };
}

/**
 * Runs one account's permit flows (read the nonce, sign, send, wait for the receipt) one at a
 * time, so that concurrent calls from one client never sign two permits with one nonce.
 */
export class PermitQueue {
  private readonly tails = new Map<string, Promise<unknown>>();

  async run<T>(owner: Address, f: () => Promise<T>): Promise<T> {
    const key = owner.toLowerCase();
    const before = this.tails.get(key) ?? Promise.resolve();
    const mine = before.catch(() => undefined).then(f);
    const tail = mine.catch(() => undefined);
    this.tails.set(key, tail);
    try {
      return await mine;
    } finally {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }
}
