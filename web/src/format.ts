/** Small text formatters for the page (all output is plain text). */
import { formatUnits } from "viem";

/** `0x1234…abcd` for a long hex string. */
export function shortHex(h: string, keep = 6): string {
  return h.length <= 2 + 2 * keep ? h : `${h.slice(0, 2 + keep)}…${h.slice(-keep)}`;
}

/** `1 234 567 bytes`. */
export function bytes(n: number): string {
  return `${n.toLocaleString("en-US")} bytes`;
}

/** A token amount in token units: `1.5 EDT` (the raw amount is in the title where shown). */
export function tokens(amount: bigint, decimals: number, symbol: string): string {
  return `${formatUnits(amount, decimals)} ${symbol}`;
}

/** `4:05` or `1:02:03` for a number of seconds. */
export function duration(s: number): string {
  const t = Math.max(0, Math.floor(s));
  const h = Math.floor(t / 3600), m = Math.floor((t % 3600) / 60), sec = t % 60;
  const mm = h > 0 ? String(m).padStart(2, "0") : String(m);
  return `${h > 0 ? `${h}:` : ""}${mm}:${String(sec).padStart(2, "0")}`;
}

/**
 * What each status code means, who was at fault and who was paid (docs/protocol.md, "Status
 * codes of execution"): codes below 16 pay the node its price and return the rest of the
 * escrow, 16 and up return all of it.
 */
export const STATUS_MEANINGS: Readonly<Record<number, string>> = {
  0: "the program ran and exited 0; the node was paid",
  1: "the program failed (non-zero exit or trap); the node was paid",
  2: "the program used up the fuel of the task's run time (counted in instructions, the same on every node); the node was paid",
  3: "the program exceeded the task's memory limit or the output limit; the node was paid",
  4: "the enclave could not decrypt or parse the input payload (the requester's fault); the node was paid",
  5: "the supplied code is missing or does not compile or parse (the requester's fault); the node was paid",
  6: "the input is what the requester's CID names, but not the input hash the requester committed (the requester's fault); the node was paid",
  16: "the input could not be fetched, or was not what its CID names (a system fault); the requester was refunded",
  17: "the image was unavailable or did not match its measurement (a system fault); the requester was refunded",
  18: "the enclave failed (a system fault); the requester was refunded",
  19: "the enclave ran out of wall-clock time with fuel left: its host paused or starved it (a system fault); the requester was refunded",
};

/** Names of the ImageRegistry platform bits. */
export function platformNames(bits: number): string[] {
  const out: string[] = [];
  if (bits & 1) out.push("sim");
  if (bits & 2) out.push("sgx");
  if (bits & 4) out.push("tdx");
  return out;
}
