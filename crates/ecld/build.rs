//! Embeds the dApp page (the committed Vite build in `web/dist`) into the binary.
//!
//! Walks `web/dist` and writes `$OUT_DIR/web_assets.rs`: one `include_bytes!` per file, with
//! its URL path and content type, sorted by path. The build needs no Node.js: `web/dist` is
//! committed, and CI checks that it equals a fresh `npm run build` (scripts/test-js).

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
};

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").map_err(|e| e.to_string())?;
    let out_dir = std::env::var("OUT_DIR").map_err(|e| e.to_string())?;
    let dist = Path::new(&manifest).join("../../web/dist");
    // A directory is scanned as a whole: any file added, removed or changed reruns this.
    println!("cargo:rerun-if-changed={}", dist.display());
    let dist = dist.canonicalize().map_err(|e| {
        format!(
            "cannot read {}: {e}. web/dist is committed to the repository (the built dApp page); \
             restore it with `git checkout web/dist`, or rebuild it with `cd web && npm ci && npm run build`",
            dist.display()
        )
    })?;
    let mut files = Vec::new();
    walk(&dist, &mut files)?;
    let mut entries = Vec::new();
    for file in files {
        let rel = file.strip_prefix(&dist).map_err(|e| e.to_string())?;
        let url: Vec<&str> = rel
            .components()
            .map(|c| c.as_os_str().to_str().ok_or_else(|| format!("{}: not UTF-8", file.display())))
            .collect::<Result<_, _>>()?;
        let url = format!("/{}", url.join("/"));
        entries.push((url, content_type(&file)?, file));
    }
    entries.sort();
    if !entries.iter().any(|(url, ..)| url == "/index.html") {
        return Err(format!(
            "{} has no index.html: rebuild the page with `cd web && npm ci && npm run build`",
            dist.display()
        ));
    }
    let mut code = String::from(
        "/// Every file of `web/dist`, sorted by URL path.\npub(super) static FILES: &[Asset] = &[\n",
    );
    for (url, ctype, file) in &entries {
        let path = file.to_str().ok_or_else(|| format!("{}: not UTF-8", file.display()))?;
        writeln!(
            code,
            "    Asset {{ path: {url:?}, content_type: {ctype:?}, body: include_bytes!({path:?}) }},"
        )
        .map_err(|e| e.to_string())?;
    }
    code.push_str("];\n");
    std::fs::write(Path::new(&out_dir).join("web_assets.rs"), code)
        .map_err(|e| format!("cannot write web_assets.rs: {e}"))
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.is_dir() {
            walk(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

/// The `Content-Type` of a file Vite emits; an unknown kind fails the build rather than
/// being served with a guessed type.
fn content_type(file: &Path) -> Result<&'static str, String> {
    let ext = file.extension().and_then(|e| e.to_str()).unwrap_or_default();
    Ok(match ext {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "wasm" => "application/wasm",
        "txt" => "text/plain; charset=utf-8",
        _ => {
            return Err(format!(
                "{}: no content type known for .{ext} files; add one in crates/ecld/build.rs",
                file.display()
            ));
        }
    })
}
