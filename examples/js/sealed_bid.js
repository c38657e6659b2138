// A sealed-bid (Vickrey) auction over private bids: the winner pays the second-highest
// price, and no losing bid is ever revealed. Input: JSON (see bids.json).
//   ecld task run js --code examples/js/sealed_bid.js --input examples/js/bids.json
const { item, reserve, bids } = JSON.parse(INPUT);
const valid = bids.filter((b) => Number.isFinite(b.amount) && b.amount >= reserve);
valid.sort((a, b) => b.amount - a.amount || a.bidder.localeCompare(b.bidder));
if (valid.length === 0) {
  console.log(JSON.stringify({ item, sold: false }));
} else {
  const price = valid.length > 1 ? valid[1].amount : reserve;
  console.log(JSON.stringify({ item, sold: true, winner: valid[0].bidder, price, bidders: bids.length }));
}
