// Configuration for `hardhat node`, the reference chain the ecld contract tests compare the
// embedded devnet against. Same chain id, accounts (test mnemonic) and rules as ecld-devnet.
/** @type import('hardhat/config').HardhatUserConfig */
module.exports = {
  networks: {
    hardhat: {
      chainId: 31337,
      hardfork: 'osaka',
      mining: { auto: true, interval: 0 },
    },
  },
};
