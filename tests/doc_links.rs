//! No dead links in the documentation: every relative link in README.md,
//! ARCHITECTURE.md, BENCHMARKS.md, CHANGELOG.md (when there is one), the
//! manual in `docs/` and the reports in `benches/results/` must name a file
//! that exists, and a `#anchor` into a Markdown file must name one of its
//! headings, by the slug GitHub gives it.
//!
//! Links are `[text](target)` (images too), reference definitions
//! `[label]: target` and `<target>` autolinks; absolute URLs (`http:`,
//! `https:`, `mailto:`, any scheme) are not followed. Whatever sits in a
//! fenced code block, an inline code span or an HTML comment is not a link.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Component, Path, PathBuf};

/// The repository root.
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Markdown files whose links are checked, relative to the root.
fn checked_files(root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for name in [
        "README.md",
        "ARCHITECTURE.md",
        "BENCHMARKS.md",
        "CHANGELOG.md",
    ] {
        if root.join(name).is_file() {
            files.push(PathBuf::from(name));
        }
    }
    markdown_under(root, Path::new("docs"), true, &mut files);
    markdown_under(root, Path::new("benches/results"), false, &mut files);
    files
}

fn markdown_under(root: &Path, dir: &Path, recurse: bool, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(root.join(dir)) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok())
        .map(|entry| dir.join(entry.file_name()))
        .collect();
    paths.sort();
    for path in paths {
        let full = root.join(&path);
        if full.is_dir() {
            if recurse {
                markdown_under(root, &path, recurse, out);
            }
        } else if path.extension().is_some_and(|ext| ext == "md") {
            out.push(path);
        }
    }
}

/// The text with everything that is not prose blanked out: fenced code
/// blocks, inline code spans and HTML comments become spaces (line feeds
/// are kept, so byte offsets and line numbers stay those of the file).
fn prose(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut fence: Option<(char, usize)> = None;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let marker = trimmed.chars().next().filter(|c| *c == '`' || *c == '~');
        let run = marker.map_or(0, |m| trimmed.chars().take_while(|c| *c == m).count());
        match fence {
            Some((m, len)) => {
                if marker == Some(m) && run >= len && trimmed[run..].trim().is_empty() {
                    fence = None;
                }
                out.push_str(&blank(line));
            }
            None if run >= 3 => {
                fence = Some((marker.unwrap_or('`'), run));
                out.push_str(&blank(line));
            }
            None => out.push_str(line),
        }
    }
    let out = blank_comments(&out);
    blank_code_spans(&out)
}

/// Spaces for every character but line feeds, byte for byte.
fn blank(text: &str) -> String {
    text.bytes()
        .map(|b| if b == b'\n' { '\n' } else { ' ' })
        .collect()
}

fn blank_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("<!--") {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find("-->")
            .map_or(rest.len(), |end| start + end + 3);
        out.push_str(&blank(&rest[start..end]));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// Blanks inline code spans: a run of N backticks up to the next run of
/// exactly N, within one paragraph (a blank line ends it). A run without
/// its closing run is literal text.
fn blank_code_spans(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut copied = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            i += 2;
            continue;
        }
        if bytes[i] != b'`' {
            i += 1;
            continue;
        }
        let run = bytes[i..].iter().take_while(|b| **b == b'`').count();
        let paragraph_end = text[i..].find("\n\n").map_or(text.len(), |end| i + end);
        let mut j = i + run;
        let mut close = None;
        while j < paragraph_end {
            if bytes[j] == b'`' {
                let other = bytes[j..].iter().take_while(|b| **b == b'`').count();
                if other == run {
                    close = Some(j + other);
                    break;
                }
                j += other;
            } else {
                j += 1;
            }
        }
        match close {
            Some(end) => {
                out.push_str(&text[copied..i]);
                out.push_str(&blank(&text[i..end]));
                copied = end;
                i = end;
            }
            None => i += run,
        }
    }
    out.push_str(&text[copied..]);
    out
}

/// One link found in a file.
#[derive(Debug, PartialEq)]
struct Link {
    line: usize,
    target: String,
}

/// Every link in `text`: inline links and images, reference definitions,
/// autolinks; absolute ones included (the caller skips them).
fn links(text: &str) -> Vec<Link> {
    let prose = prose(text);
    let bytes = prose.as_bytes();
    let line_of = |offset: usize| prose[..offset].matches('\n').count() + 1;
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => {
                i += 2;
                continue;
            }
            b']' if bytes.get(i + 1) == Some(&b'(') => {
                if let Some((target, end)) = inline_target(&prose, i + 2) {
                    found.push(Link {
                        line: line_of(i),
                        target,
                    });
                    i = end;
                    continue;
                }
            }
            b']' if bytes.get(i + 1) == Some(&b':') && starts_definition(&prose, i) => {
                let rest = &prose[i + 2..];
                let line_end = rest.find('\n').unwrap_or(rest.len());
                let value = rest[..line_end].trim();
                let target = match value.strip_prefix('<') {
                    Some(inner) => inner.split('>').next().unwrap_or(""),
                    None => value.split_whitespace().next().unwrap_or(""),
                };
                if !target.is_empty() {
                    found.push(Link {
                        line: line_of(i),
                        target: target.to_string(),
                    });
                }
            }
            b'<' => {
                if let Some(end) = prose[i + 1..].find('>') {
                    let inner = &prose[i + 1..i + 1 + end];
                    if is_autolink(inner) {
                        found.push(Link {
                            line: line_of(i),
                            target: inner.to_string(),
                        });
                        i += end + 2;
                        continue;
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    found
}

/// The target of an inline link whose `(` is just before `start`, and where
/// the link ends: `<target>`, or up to whitespace (a title follows) or the
/// `)` that balances the parentheses.
fn inline_target(text: &str, start: usize) -> Option<(String, usize)> {
    let bytes = text.as_bytes();
    let mut i = start;
    while i < bytes.len() && (bytes[i] == b' ' || bytes[i] == b'\t') {
        i += 1;
    }
    if bytes.get(i) == Some(&b'<') {
        let end = text[i..].find('>')? + i;
        let target = &text[i + 1..end];
        if target.contains('\n') {
            return None;
        }
        let close = text[end..].find(')')? + end;
        return Some((target.to_string(), close + 1));
    }
    let begin = i;
    let mut depth = 0usize;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 1,
            b'(' => depth += 1,
            b')' if depth == 0 => break,
            b')' => depth -= 1,
            b' ' | b'\t' | b'\n' => break,
            _ => {}
        }
        i += 1;
    }
    let target = &text[begin..i.min(bytes.len())];
    let close = text[i.min(bytes.len())..].find(')')? + i;
    Some((target.to_string(), close + 1))
}

/// `]:` at `i` ends a `[label]` that starts its line (up to three spaces in).
fn starts_definition(text: &str, i: usize) -> bool {
    let line_start = text[..i].rfind('\n').map_or(0, |n| n + 1);
    let head = &text[line_start..i];
    let indent = head.len() - head.trim_start_matches(' ').len();
    indent <= 3 && head[indent..].starts_with('[') && !head[indent + 1..].contains(']')
}

/// `<inner>` is a link, not an HTML tag or a placeholder such as `<n>`:
/// no whitespace, and a scheme, an `@` (mail) or a path (`/`, `.`, `#`).
fn is_autolink(inner: &str) -> bool {
    if inner.is_empty() || inner.contains(char::is_whitespace) || inner.contains('<') {
        return false;
    }
    // A closing tag, a comment or declaration, or a tag such as `<br/>`.
    let name = inner.strip_suffix('/').unwrap_or(inner);
    let tag = name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if inner.starts_with(['/', '!']) || tag {
        return false;
    }
    has_scheme(inner) || inner.contains(['/', '.', '#', '@'])
}

/// `scheme:` as in a URI: `http:`, `mailto:`, `ftp:`.
fn has_scheme(target: &str) -> bool {
    let Some((scheme, _)) = target.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// Decodes `%XX` escapes (a link to `a%20b.md` names `a b.md`).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Some(byte) = text
                .get(i + 1..i + 3)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
            {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// GitHub's anchor for a heading's text (github-slugger): the text as
/// rendered (no code backticks, a link's text without its target, no
/// emphasis), lowercased, with every character that is not alphanumeric, a
/// space, a hyphen or an underscore dropped, and each space made a hyphen.
fn slug(heading: &str) -> String {
    rendered(heading)
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// A heading's text as GitHub renders it, near enough for its slug: code
/// spans keep their content, links keep their text, HTML tags and emphasis
/// markers go.
fn rendered(heading: &str) -> String {
    let mut out = String::new();
    let mut rest = heading;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('`') {
            let run = 1 + after.chars().take_while(|c| *c == '`').count();
            let fence = &rest[..run];
            if let Some(end) = rest[run..].find(fence) {
                out.push_str(rest[run..run + end].trim());
                rest = &rest[run + end + run..];
                continue;
            }
            out.push_str(fence);
            rest = &rest[run..];
            continue;
        }
        let next = rest.find('`').unwrap_or(rest.len());
        out.push_str(&render_prose(&rest[..next]));
        rest = &rest[next..];
    }
    out
}

/// Prose of a heading: `[text](target)` becomes `text`, tags and emphasis
/// markers (`*`, and `_` at a word's edge) are dropped.
fn render_prose(text: &str) -> String {
    let mut plain = String::new();
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        let Some(close) = rest[open..].find("](").map(|c| open + c) else {
            break;
        };
        let Some(end) = rest[close..].find(')').map(|e| close + e) else {
            break;
        };
        plain.push_str(&rest[..open]);
        plain.push_str(&rest[open + 1..close]);
        rest = &rest[end + 1..];
    }
    plain.push_str(rest);
    let mut untagged = String::new();
    let mut rest = plain.as_str();
    while let Some(open) = rest.find('<') {
        let tag = rest[open + 1..].starts_with(|c: char| c.is_ascii_alphabetic() || c == '/');
        match rest[open..].find('>') {
            Some(close) if tag => {
                untagged.push_str(&rest[..open]);
                rest = &rest[open + close + 1..];
            }
            _ => {
                untagged.push_str(&rest[..=open]);
                rest = &rest[open + 1..];
            }
        }
    }
    untagged.push_str(rest);
    let chars: Vec<char> = untagged.chars().collect();
    let mut out = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if c == '*' {
            continue;
        }
        if c == '_' {
            let before = i.checked_sub(1).map(|j| chars[j]);
            let after = chars.get(i + 1).copied();
            let inner = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric());
            if !(inner(before) && inner(after)) {
                continue;
            }
        }
        out.push(c);
    }
    out
}

/// The anchors of a Markdown file: the slug of every heading (ATX `#` and
/// setext), repeated ones with `-1`, `-2`… as GitHub numbers them, and
/// explicit `id="…"`/`name="…"` anchors in HTML.
fn anchors(text: &str) -> Vec<String> {
    let prose = prose(text);
    let lines: Vec<&str> = prose.lines().collect();
    let mut headings = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start_matches(' ');
        let indent = line.len() - trimmed.len();
        if indent > 3 {
            continue;
        }
        let hashes = trimmed.chars().take_while(|c| *c == '#').count();
        if (1..=6).contains(&hashes) {
            if trimmed[hashes..].is_empty() || trimmed[hashes..].starts_with([' ', '\t']) {
                headings.push((n, hashes));
            }
            continue;
        }
        let underline = trimmed.trim_end();
        let setext = !underline.is_empty()
            && (underline.chars().all(|c| c == '=') || underline.chars().all(|c| c == '-'));
        if setext && n > 0 {
            let above = lines[n - 1].trim();
            let above_is_paragraph = !above.is_empty()
                && !above.starts_with(['#', '|', '>', '-', '*', '+'])
                && !above.chars().next().is_some_and(|c| c.is_ascii_digit())
                && (n < 2 || lines[n - 2].trim().is_empty());
            if above_is_paragraph {
                headings.push((n - 1, 0));
            }
        }
    }
    let source: Vec<&str> = text.lines().collect();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::new();
    for (n, hashes) in headings {
        let line = source[n].trim();
        let heading = if hashes == 0 {
            line.to_string()
        } else {
            let rest = line[hashes..].trim();
            strip_closing_hashes(rest).to_string()
        };
        out.push(unique(&mut seen, slug(&heading)));
    }
    for attribute in ["id=\"", "name=\""] {
        for (at, _) in prose.match_indices(attribute) {
            let value = &prose[at + attribute.len()..];
            if let Some(end) = value.find('"') {
                out.push(value[..end].to_string());
            }
        }
    }
    out
}

/// An ATX heading's text without its optional closing run of `#`.
fn strip_closing_hashes(text: &str) -> &str {
    let without = text.trim_end_matches('#');
    if without.len() == text.len() {
        text
    } else if without.is_empty() {
        ""
    } else if without.ends_with([' ', '\t']) {
        without.trim_end()
    } else {
        text
    }
}

/// github-slugger's numbering: the first `x` is `x`, the next `x-1`, and a
/// numbered slug never takes one that a heading already has.
fn unique(seen: &mut HashMap<String, usize>, base: String) -> String {
    let mut result = base.clone();
    while seen.contains_key(&result) {
        let count = seen.entry(base.clone()).or_insert(0);
        *count += 1;
        result = format!("{base}-{count}");
    }
    seen.insert(result.clone(), 0);
    result
}

/// `path` made plain: `.` dropped, `..` taken back (never above `root`).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Every broken link of the checked files, as `file:line: target (reason)`.
fn broken_links(root: &Path, files: &[PathBuf]) -> Vec<String> {
    let mut anchor_cache: BTreeMap<PathBuf, Vec<String>> = BTreeMap::new();
    let mut broken = Vec::new();
    for file in files {
        let text = fs::read_to_string(root.join(file))
            .unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
        let dir = file.parent().unwrap_or(Path::new(""));
        for link in links(&text) {
            let target = link.target.trim();
            if target.is_empty() || has_scheme(target) || target.starts_with("//") {
                continue;
            }
            let (path_part, anchor) = match target.split_once('#') {
                Some((path, anchor)) => (path, Some(anchor)),
                None => (target, None),
            };
            let path_part = path_part.split('?').next().unwrap_or("");
            let path_part = percent_decode(path_part);
            let resolved = if path_part.is_empty() {
                file.clone()
            } else if let Some(from_root) = path_part.strip_prefix('/') {
                normalize(Path::new(from_root))
            } else {
                normalize(&dir.join(&path_part))
            };
            let mut report = |reason: String| {
                broken.push(format!(
                    "{}:{}: {} ({reason})",
                    file.display(),
                    link.line,
                    link.target
                ));
            };
            let full = root.join(&resolved);
            if !full.exists() {
                report(format!("no such file: {}", resolved.display()));
                continue;
            }
            let Some(anchor) = anchor else { continue };
            if full.is_dir() || full.extension().is_none_or(|ext| ext != "md") {
                // Line anchors into source files are GitHub's, not headings.
                continue;
            }
            let anchor = percent_decode(anchor);
            let known = anchor_cache
                .entry(resolved.clone())
                .or_insert_with(|| anchors(&fs::read_to_string(&full).unwrap_or_default()));
            if !known.contains(&anchor) {
                report(format!("no heading #{anchor} in {}", resolved.display()));
            }
        }
    }
    broken
}

#[test]
fn every_relative_link_and_anchor_resolves() {
    let root = root();
    let files = checked_files(&root);
    for required in ["README.md", "ARCHITECTURE.md", "docs/README.md"] {
        assert!(
            files.iter().any(|f| f == Path::new(required)),
            "{required} is not among the checked files: {files:?}"
        );
    }
    let broken = broken_links(&root, &files);
    assert!(
        broken.is_empty(),
        "{} broken link(s):\n{}",
        broken.len(),
        broken.join("\n")
    );
}

#[test]
fn slugs_of_real_headings() {
    for (heading, expected) in [
        (
            "Use with OctoPrint / Mainsail / Fluidd / Home Assistant / go2rtc / Frigate",
            "use-with-octoprint--mainsail--fluidd--home-assistant--go2rtc--frigate",
        ),
        ("`camloop serve` flags", "camloop-serve-flags"),
        (
            "`camloop ctl` and `camloop load`",
            "camloop-ctl-and-camloop-load",
        ),
        (
            "Control protocol (TCP, default 127.0.0.1:8233)",
            "control-protocol-tcp-default-1270018233",
        ),
        ("More viewers, recording", "more-viewers-recording"),
        (
            "The read budget and fairness",
            "the-read-budget-and-fairness",
        ),
        (
            "Running on a Raspberry Pi / small board",
            "running-on-a-raspberry-pi--small-board",
        ),
        ("`stats` keys", "stats-keys"),
        (
            "**Bold** and _emphasis_ and snake_case",
            "bold-and-emphasis-and-snake_case",
        ),
        ("A [link](other.md#x) in a heading", "a-link-in-a-heading"),
        ("`max_line_bytes` is kept", "max_line_bytes-is-kept"),
    ] {
        assert_eq!(slug(heading), expected, "slug of {heading:?}");
    }
}

#[test]
fn repeated_headings_are_numbered() {
    let text = "# Notes\n\n## Notes\n\n## Notes\n\n## Notes-1 ##\n\nSetext\n------\n";
    assert_eq!(
        anchors(text),
        ["notes", "notes-1", "notes-2", "notes-1-1", "setext"]
    );
}

#[test]
fn links_in_code_are_not_links() {
    let text = "\
See [a](a.md) and `[b](b.md)` and ``x `[c](c.md)` y``.
```text
[d](d.md)
```
~~~
<e/f.md>
~~~
<!-- [g](g.md) -->
[h
text](h.md#top \"title\") <i/j.md> <br> <n> <https://example.com/x>

[k]: k.md
";
    let found: Vec<(usize, String)> = links(text)
        .into_iter()
        .map(|l| (l.line, l.target))
        .collect();
    assert_eq!(
        found,
        [
            (1, "a.md".to_string()),
            (10, "h.md#top".to_string()),
            (10, "i/j.md".to_string()),
            (10, "https://example.com/x".to_string()),
            (12, "k.md".to_string()),
        ]
    );
}
