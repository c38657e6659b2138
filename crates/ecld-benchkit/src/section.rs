//! Sections of a Markdown file: a heading line (`## Store`) and everything up to the next
//! heading of level 1 or 2 outside a code fence.

use std::{
    io::{self, Write as _},
    path::Path,
};

/// What a new benchmarks file starts with.
const NEW_FILE: &str = "# Benchmarks\n";

/// Byte range of the section headed exactly `heading` (the heading line through the end of
/// the section's last line, the blank lines before the next heading included).
fn span(doc: &str, heading: &str) -> Option<(usize, usize)> {
    let mut start = None;
    let mut in_fence = false;
    let mut offset = 0;
    for line in doc.split_inclusive('\n') {
        let here = offset;
        offset += line.len();
        let text = line.trim_end();
        if text.starts_with("```") || text.starts_with("~~~") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            continue;
        }
        match start {
            None if text == heading => start = Some(here),
            Some(s) if text.starts_with("# ") || text.starts_with("## ") => return Some((s, here)),
            _ => {}
        }
    }
    start.map(|s| (s, doc.len()))
}

/// The section text, heading line first: `section` as given when it starts with the
/// heading line, otherwise the heading, a blank line and `section`.
fn with_heading(heading: &str, section: &str) -> String {
    let body = section.trim_end();
    if body.lines().next().map(str::trim_end) == Some(heading) {
        body.to_owned()
    } else {
        format!("{heading}\n\n{}", body.trim_start_matches('\n'))
    }
}

/// `doc` with the section headed exactly `heading` (e.g. `## Store`, up to the next heading
/// of level 1 or 2 outside a code fence) replaced by `section`, or with `section` appended
/// after a blank line when there is none. `section` may start with the heading line or not;
/// either way the result holds it once, followed by one blank line before the next heading,
/// and ends with one newline. Replacing a section with the same text changes nothing.
#[must_use]
pub fn replace_section(doc: &str, heading: &str, section: &str) -> String {
    let section = with_heading(heading, section);
    match span(doc, heading) {
        Some((start, end)) if end < doc.len() => {
            format!("{}{section}\n\n{}", &doc[..start], &doc[end..])
        }
        Some((start, _)) => format!("{}{section}\n", &doc[..start]),
        None if doc.trim().is_empty() => format!("{section}\n"),
        None => format!("{}\n\n{section}\n", doc.trim_end()),
    }
}

/// The section headed exactly `heading` in `doc`, heading line first, without the blank
/// lines that end it; `None` when `doc` has no such section.
#[must_use]
pub fn find_section<'a>(doc: &'a str, heading: &str) -> Option<&'a str> {
    span(doc, heading).map(|(start, end)| doc[start..end].trim_end())
}

/// Replaces the section headed exactly `heading` of the Markdown file at `path` with
/// `section` (see [`replace_section`]), its first paragraph the provenance line of this run
/// ([`crate::provenance::current_line`]: the run `ecld bench all` names, or this process),
/// creating the file (`# Benchmarks`) when it does not exist. The new text goes to a
/// temporary file next to it, flushed to disk and renamed over `path`, so readers and a crash
/// mid-write see the old file or the new one, never a part.
///
/// # Errors
/// When the file cannot be read (other than not existing) or the new one cannot be
/// written or renamed into place; the error names the path.
pub fn write_section(path: &Path, heading: &str, section: &str) -> io::Result<()> {
    let line = crate::provenance::current_line(path);
    write_unstamped(path, heading, &crate::provenance::stamp(heading, section, &line))
}

/// Gives the section headed exactly `heading` of the file at `path` the provenance line
/// `line` (in place of the one it had); `false`, and no change, when it has no such section.
///
/// # Errors
/// As [`write_section`].
pub fn stamp_section(path: &Path, heading: &str, line: &str) -> io::Result<bool> {
    let doc = std::fs::read_to_string(path)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot read {}: {e}", path.display())))?;
    let Some(section) = find_section(&doc, heading) else { return Ok(false) };
    let stamped = crate::provenance::stamp(heading, section, line);
    if stamped.trim_end() != section {
        write_unstamped(path, heading, &stamped)?;
    }
    Ok(true)
}

/// [`write_section`] with `section` as given.
fn write_unstamped(path: &Path, heading: &str, section: &str) -> io::Result<()> {
    let named = |e: io::Error, what: &str| {
        io::Error::new(e.kind(), format!("cannot {what} {}: {e}", path.display()))
    };
    let doc = match std::fs::read_to_string(path) {
        Ok(doc) => doc,
        Err(e) if e.kind() == io::ErrorKind::NotFound => NEW_FILE.to_owned(),
        Err(e) => return Err(named(e, "read")),
    };
    let new = replace_section(&doc, heading, section);
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, format!("{} is not a file", path.display()))
    })?;
    let tmp =
        path.with_file_name(format!(".{}.{}.tmp", name.to_string_lossy(), std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(new.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(|e| named(e, "write"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "# Benchmarks\n\nIntro.\n\n## Store\n\nold store\n\n| a | b |\n\n\
                       ## Crypto\n\nfast\n\n### Detail\n\nkept with Crypto\n\n## CAS\n\nlast\n";

    #[test]
    fn replaces_only_its_own_section() {
        let out = replace_section(DOC, "## Crypto", "## Crypto\n\nfaster\n");
        assert_eq!(
            out,
            "# Benchmarks\n\nIntro.\n\n## Store\n\nold store\n\n| a | b |\n\n\
             ## Crypto\n\nfaster\n\n## CAS\n\nlast\n"
        );
    }

    #[test]
    fn replaces_the_first_and_the_last_section() {
        let out = replace_section(DOC, "## Store", "## Store\n\nnew store");
        assert!(out.starts_with("# Benchmarks\n\nIntro.\n\n## Store\n\nnew store\n\n## Crypto\n"));
        assert!(!out.contains("old store"));
        let out = replace_section(DOC, "## CAS", "## CAS\n\nnew last\n\n\n");
        assert!(out.ends_with("kept with Crypto\n\n## CAS\n\nnew last\n"), "{out}");
    }

    #[test]
    fn appends_a_missing_section_after_a_blank_line() {
        let out = replace_section(DOC, "## Web", "## Web\n\npage\n");
        assert_eq!(out, format!("{DOC}\n## Web\n\npage\n"));
        assert_eq!(replace_section("", "## Web", "x"), "## Web\n\nx\n");
        assert_eq!(replace_section("# B\n\n\n", "## Web", "x\n"), "# B\n\n## Web\n\nx\n");
    }

    #[test]
    fn adds_the_heading_when_the_text_has_none() {
        let out = replace_section(DOC, "## Crypto", "faster\n");
        assert!(out.contains("## Crypto\n\nfaster\n\n## CAS\n"), "{out}");
        assert_eq!(out.matches("## Crypto").count(), 1);
    }

    #[test]
    fn is_idempotent() {
        for heading in ["## Store", "## Crypto", "## CAS", "## New"] {
            let section = format!("{heading}\n\nfigures\n");
            let once = replace_section(DOC, heading, &section);
            assert_eq!(replace_section(&once, heading, &section), once, "{heading}");
            assert_eq!(find_section(&once, heading), Some(section.trim_end()));
        }
    }

    #[test]
    fn matches_the_whole_heading_only() {
        let doc = "# B\n\n## Store (old)\n\nx\n\n## Store\n\ny\n";
        let out = replace_section(doc, "## Store", "## Store\n\nz\n");
        assert_eq!(out, "# B\n\n## Store (old)\n\nx\n\n## Store\n\nz\n");
        assert_eq!(find_section(doc, "## Stor"), None);
    }

    #[test]
    fn headings_in_code_fences_are_text() {
        let doc =
            "# B\n\n## Runs\n\n```\n## Store\n# not a heading\n```\n\nmore\n\n## Store\n\ns\n";
        let out = replace_section(doc, "## Runs", "## Runs\n\nnew\n");
        assert_eq!(out, "# B\n\n## Runs\n\nnew\n\n## Store\n\ns\n");
        assert_eq!(find_section(doc, "## Store"), Some("## Store\n\ns"));
    }

    #[test]
    fn a_level_one_heading_ends_a_section() {
        let doc = "## A\n\na\n\n# Appendix\n\nz\n";
        assert_eq!(replace_section(doc, "## A", "## A\n\nb"), "## A\n\nb\n\n# Appendix\n\nz\n");
    }

    #[test]
    fn writes_files_creating_them_and_leaving_no_temporary() {
        let dir = std::env::temp_dir().join(format!("ecld-benchkit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("B.md");
        let _ = std::fs::remove_file(&path);
        write_unstamped(&path, "## Store", "## Store\n\n1\n").unwrap();
        write_unstamped(&path, "## Crypto", "## Crypto\n\n2\n").unwrap();
        write_unstamped(&path, "## Store", "## Store\n\n3\n").unwrap();
        write_unstamped(&path, "## Store", "## Store\n\n3\n").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "# Benchmarks\n\n## Store\n\n3\n\n## Crypto\n\n2\n");
        let names: Vec<_> =
            std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["B.md"]);
        let err = write_section(&dir.join("no/such/dir/B.md"), "## X", "x").unwrap_err();
        assert!(err.to_string().contains("no/such/dir/B.md"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn written_sections_start_with_their_run_and_keep_the_others_runs() {
        let dir = std::env::temp_dir().join(format!("ecld-benchkit-run-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("B.md");
        let older = "Run 2026-01-01T00:00:00Z: `older`; commit a; m.";
        std::fs::write(&path, format!("# B\n\n## Store\n\n{older}\n\ns\n\n## CAS\n\nc\n")).unwrap();
        write_section(&path, "## CAS", "## CAS\n\nnew c\n").unwrap();
        let doc = std::fs::read_to_string(&path).unwrap();
        let cas = find_section(&doc, "## CAS").unwrap();
        let line = crate::provenance::line_of(cas).expect(cas);
        assert!(line.starts_with("Run ") && line.contains("; commit "), "{line}");
        assert!(cas.ends_with("\n\nnew c"), "{cas}");
        assert_eq!(
            crate::provenance::line_of(find_section(&doc, "## Store").unwrap()),
            Some(older),
            "a section not written keeps the run that produced it"
        );
        // `ecld bench all` gives a section written by a bench of its own (the web page's) the
        // run's line; a missing section is left alone.
        assert!(stamp_section(&path, "## Store", "Run X: `all`; commit b; m.").unwrap());
        assert!(!stamp_section(&path, "## Web", "Run X: `all`; commit b; m.").unwrap());
        let doc = std::fs::read_to_string(&path).unwrap();
        assert!(doc.contains("## Store\n\nRun X: `all`; commit b; m.\n\ns\n\n## CAS"), "{doc}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
