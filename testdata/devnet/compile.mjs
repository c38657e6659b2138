// Compiles Devnet.sol with the pinned solc-js into Counter.json and Token.json ({abi, bytecode}).
// Run from the repository root: node testdata/devnet/compile.mjs
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, "../../tools/package.json"));
const solc = require("solc");
const input = {
  language: "Solidity",
  sources: { "Devnet.sol": { content: readFileSync(join(here, "Devnet.sol"), "utf8") } },
  settings: {
    optimizer: { enabled: true, runs: 200 },
    evmVersion: "cancun",
    outputSelection: { "*": { "*": ["abi", "evm.bytecode.object"] } },
  },
};
const out = JSON.parse(solc.compile(JSON.stringify(input)));
for (const e of out.errors ?? []) {
  if (e.severity === "error") throw new Error(e.formattedMessage);
}
for (const [name, c] of Object.entries(out.contracts["Devnet.sol"])) {
  const artifact = { abi: c.abi, bytecode: "0x" + c.evm.bytecode.object, compiler: solc.version() };
  writeFileSync(join(here, `${name}.json`), JSON.stringify(artifact, null, 2) + "\n");
}
