import { type Address, BaseError, ContractFunctionRevertedError } from "viem";
import { EcldError } from "./errors.js";

/**
 * A withdrawal of more than the account's deposit in the Marketplace: refused by the SDK
 * before any wallet prompt, or reverted by the Marketplace (`InsufficientDeposit`) when the
 * deposit shrank meanwhile.
 */
export class InsufficientDepositError extends EcldError {
  /** The account's deposit (token base units). */
  readonly balance: bigint;
  /** The amount asked for. */
  readonly amount: bigint;

  constructor(p: { account: Address; balance: bigint; amount: bigint; cause?: unknown }) {
    super("DepositError", `cannot withdraw ${p.amount} from the deposit of ${p.account}: it holds ${p.balance}`, {
      details: `deposit ${p.balance}, asked for ${p.amount} (token base units)`,
      hint: p.balance === 0n ? "nothing to withdraw: deposit first" : `withdraw at most ${p.balance}`,
      cause: p.cause,
    });
    this.balance = p.balance;
    this.amount = p.amount;
  }
}

/**
 * The Marketplace's `InsufficientDeposit(balance, amount)` revert inside a viem error (from
 * `writeContract`, `simulateContract` or `estimateGas`), as an {@link InsufficientDepositError};
 * undefined for any other error.
 */
export function insufficientDepositOf(e: unknown, account: Address): InsufficientDepositError | undefined {
  if (!(e instanceof BaseError)) return undefined;
  const revert = e.walk((x) => x instanceof ContractFunctionRevertedError);
  if (!(revert instanceof ContractFunctionRevertedError) || revert.data?.errorName !== "InsufficientDeposit") return undefined;
  const [balance, amount] = (revert.data.args ?? []) as readonly unknown[];
  if (typeof balance !== "bigint" || typeof amount !== "bigint") return undefined;
  return new InsufficientDepositError({ account, balance, amount, cause: e });
}

/**
 * The parts of one client's deposits promised to submissions not yet mined, per account: a
 * submission that pays from the deposit claims its escrow here first, so two concurrent
 * submissions never both count on the same tokens (the second signs a permit instead).
 */
export class DepositReservations {
  private readonly held = new Map<string, bigint>();

  /** What this client has promised from `account`'s deposit and not yet seen mined. */
  reserved(account: Address): bigint {
    return this.held.get(account.toLowerCase()) ?? 0n;
  }

  /**
   * Claims `amount` of a deposit read as `deposit` on chain; false (nothing claimed) when the
   * rest after this client's other claims does not cover it. Release the claim once the
   * submission's receipt is in (or it failed).
   */
  claim(account: Address, deposit: bigint, amount: bigint): boolean {
    const reserved = this.reserved(account);
    if (amount <= 0n || deposit - reserved < amount) return false;
    this.held.set(account.toLowerCase(), reserved + amount);
    return true;
  }

  release(account: Address, amount: bigint): void {
    const left = this.reserved(account) - amount;
    if (left > 0n) this.held.set(account.toLowerCase(), left);
    else this.held.delete(account.toLowerCase());
  }
}
