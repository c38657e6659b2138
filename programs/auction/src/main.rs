//! A sealed-bid second-price (Vickrey) auction.
//!
//! Input (stdin, JSON):
//! `{"item": "lot 7", "reserve": "100", "bids": [{"bidder": "alice", "amount": "250"}, …]}`
//! Amounts are non-negative integers (JSON numbers or decimal strings, up to 2^128 − 1).
//!
//! Output (stdout, JSON): the winner pays the second-highest valid bid, or the reserve when
//! there is only one. Losing bids are never revealed — that is why the auction runs in an
//! enclave. Ties go to the bid listed first. Bids below the reserve are not valid.
//! `{"item": "lot 7", "winner": "alice", "price": "180", "bids": 3, "valid_bids": 2}`;
//! `winner` and `price` are `null` when no bid reaches the reserve.
//!
//! Invalid input: a message on stderr and exit code 2.

use std::io::Read;

use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Auction {
    #[serde(default)]
    item: String,
    #[serde(default)]
    reserve: Amount,
    bids: Vec<Bid>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Bid {
    bidder: String,
    amount: Amount,
}

#[derive(Default, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Amount(u128);

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(n) => Ok(Self(u128::from(n))),
            Raw::Text(s) => s.trim().parse().map(Self).map_err(|_| {
                serde::de::Error::custom(format!("amount {s:?} is not a non-negative integer"))
            }),
        }
    }
}

struct Outcome<'a> {
    winner: Option<&'a str>,
    price: Option<u128>,
    valid: usize,
}

fn settle(auction: &Auction) -> Outcome<'_> {
    let mut best: Option<&Bid> = None;
    let mut second: Option<Amount> = None;
    let mut valid = 0;
    for bid in auction.bids.iter().filter(|b| b.amount >= auction.reserve) {
        valid += 1;
        match best {
            Some(b) if bid.amount <= b.amount => {
                if second.is_none_or(|s| bid.amount > s) {
                    second = Some(bid.amount);
                }
            }
            _ => {
                second = best.map(|b| b.amount);
                best = Some(bid);
            }
        }
    }
    Outcome {
        winner: best.map(|b| b.bidder.as_str()),
        price: best.map(|_| second.unwrap_or(auction.reserve).0),
        valid,
    }
}

fn main() {
    let mut input = String::new();
    if std::io::stdin().read_to_string(&mut input).is_err() {
        eprintln!("auction: the input is not UTF-8 text");
        std::process::exit(2);
    }
    let auction: Auction = match serde_json::from_str(&input) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("auction: invalid bids: {e}");
            std::process::exit(2);
        }
    };
    let outcome = settle(&auction);
    let out = serde_json::json!({
        "item": auction.item,
        "winner": outcome.winner,
        "price": outcome.price.map(|p| p.to_string()),
        "bids": auction.bids.len(),
        "valid_bids": outcome.valid,
    });
    println!("{out}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(json: &str) -> (Option<String>, Option<u128>, usize) {
        let a: Auction = serde_json::from_str(json).unwrap();
        let o = settle(&a);
        (o.winner.map(str::to_owned), o.price, o.valid)
    }

    #[test]
    fn winner_pays_second_price() {
        let r = run(r#"{"reserve": 100, "bids": [
            {"bidder": "a", "amount": 150}, {"bidder": "b", "amount": "300"}, {"bidder": "c", "amount": 200}]}"#);
        assert_eq!(r, (Some("b".into()), Some(200), 3));
    }

    #[test]
    fn single_bid_pays_reserve_and_low_bids_do_not_count() {
        let r = run(r#"{"reserve": 100, "bids": [{"bidder": "a", "amount": 99}, {"bidder": "b", "amount": 120}]}"#);
        assert_eq!(r, (Some("b".into()), Some(100), 1));
        assert_eq!(run(r#"{"reserve": 100, "bids": [{"bidder": "a", "amount": 1}]}"#), (None, None, 0));
    }

    #[test]
    fn tie_goes_to_first_bid_at_full_price() {
        let r = run(r#"{"bids": [{"bidder": "a", "amount": 5}, {"bidder": "b", "amount": 5}]}"#);
        assert_eq!(r, (Some("a".into()), Some(5), 2));
    }
}
