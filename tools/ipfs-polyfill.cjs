// js-ipfs 0.66 calls Promise.withResolvers (Node >= 22); Node 20 lacks it.
// Loaded with NODE_OPTIONS=--require <this file> by the tests that run `jsipfs daemon`.
if (typeof Promise.withResolvers !== 'function') {
  Promise.withResolvers = function withResolvers () {
    let resolve, reject
    const promise = new this((res, rej) => { resolve = res; reject = rej })
    return { promise, resolve, reject }
  }
}
