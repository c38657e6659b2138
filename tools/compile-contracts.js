#!/usr/bin/env node
// Compiles contracts/*.sol with the pinned solc-js and writes one artifact per contract
// ({contractName, abi, bytecode, deployedBytecode}) plus a manifest of source hashes to
// crates/ecld-contracts/artifacts/. `--check DIR` writes to DIR instead (for the staleness test).
'use strict';
const fs = require('fs');
const path = require('path');
const crypto = require('crypto');
const solc = require('solc');

const root = path.resolve(__dirname, '..');
const srcDir = path.join(root, 'contracts');
let outDir = path.join(root, 'crates', 'ecld-contracts', 'artifacts');
const i = process.argv.indexOf('--out');
if (i >= 0) outDir = path.resolve(process.argv[i + 1]);

// What the Rust crate binds: the deployable contracts.
const CONTRACTS = ['DevToken', 'ImageRegistry', 'Marketplace', 'TestBlockingToken'];
const SETTINGS = {
  optimizer: { enabled: true, runs: 10000 },
  viaIR: true,
  evmVersion: 'cancun',
  metadata: { bytecodeHash: 'none', appendCBOR: false },
  outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object', 'evm.deployedBytecode.object'] } },
};

const sources = {};
for (const f of fs.readdirSync(srcDir).filter((f) => f.endsWith('.sol')).sort()) {
  sources[f] = { content: fs.readFileSync(path.join(srcDir, f), 'utf8') };
}
const input = { language: 'Solidity', sources, settings: SETTINGS };
const out = JSON.parse(solc.compile(JSON.stringify(input)));
const errors = (out.errors || []).filter((e) => e.severity === 'error');
for (const e of out.errors || []) process.stderr.write(e.formattedMessage + '\n');
if (errors.length) {
  process.stderr.write(`compile-contracts: ${errors.length} error(s); artifacts not written\n`);
  process.exit(1);
}

fs.mkdirSync(outDir, { recursive: true });
for (const name of CONTRACTS) {
  const file = `${name}.sol`;
  const c = out.contracts[file] && out.contracts[file][name];
  if (!c) throw new Error(`contract ${name} not found in ${file}`);
  const artifact = {
    contractName: name,
    abi: c.abi,
    bytecode: '0x' + c.evm.bytecode.object,
    deployedBytecode: '0x' + c.evm.deployedBytecode.object,
  };
  fs.writeFileSync(path.join(outDir, `${name}.json`), JSON.stringify(artifact, null, 2) + '\n');
}
const manifest = {
  compiler: solc.version(),
  settings: { optimizer: SETTINGS.optimizer, viaIR: SETTINGS.viaIR, evmVersion: SETTINGS.evmVersion },
  sources: Object.fromEntries(
    Object.entries(sources).map(([f, s]) => [f, crypto.createHash('sha256').update(s.content).digest('hex')]),
  ),
};
fs.writeFileSync(path.join(outDir, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
process.stderr.write(`compile-contracts: wrote ${CONTRACTS.length} artifacts to ${outDir}\n`);
