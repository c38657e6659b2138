//! Text statistics of stdin, as JSON on stdout.

use std::{
    collections::HashMap,
    io::{Read, Write},
};

fn main() {
    let mut input = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut input) {
        eprintln!("stats: cannot read the input: {e}");
        std::process::exit(2);
    }
    let text = String::from_utf8_lossy(&input);
    let mut counts: HashMap<String, u64> = HashMap::new();
    let mut words = 0u64;
    let mut word_chars = 0u64;
    for word in text.split(|c: char| !c.is_alphanumeric() && c != '\'').filter(|w| !w.is_empty()) {
        let word = word.trim_matches('\'').to_lowercase();
        if word.is_empty() {
            continue;
        }
        words += 1;
        word_chars += word.chars().count() as u64;
        *counts.entry(word).or_default() += 1;
    }
    let mut top: Vec<(&String, &u64)> = counts.iter().collect();
    // Most frequent first; ties alphabetically, so the output is deterministic.
    top.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
    let top: Vec<_> =
        top.into_iter().take(10).map(|(w, n)| serde_json::json!({"word": w, "count": n})).collect();
    let lines = if input.is_empty() {
        0
    } else {
        input.iter().filter(|&&b| b == b'\n').count() as u64 + u64::from(!input.ends_with(b"\n"))
    };
    let out = serde_json::json!({
        "bytes": input.len(),
        "chars": text.chars().count(),
        "lines": lines,
        "words": words,
        "unique_words": counts.len(),
        "mean_word_length": if words == 0 { 0.0 } else { word_chars as f64 / words as f64 },
        "top_words": top,
    });
    let mut stdout = std::io::stdout().lock();
    if writeln!(stdout, "{out}").and_then(|()| stdout.flush()).is_err() {
        std::process::exit(3);
    }
}
