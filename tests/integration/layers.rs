//! The layering check: the crate's modules form three layers whose imports only point down, as
//! README's module table says (DESIGN.md "Layers").
//!
//! The map is README's table under "## Architecture" whose header is `| module | layer | owns |`.
//! Each row names one or more source paths (a file, or a folder ending in `/`) and a layer:
//! `pure` (no actix, tokio, awc, no `std::fs`, `std::net`, `std::thread`, `std::process`,
//! `std::env`, `std::os`, and no clock: `Instant`, `SystemTime`), `shell` (actors and I/O) or `edge` (HTTP,
//! configuration, start-up, tools). The rows are listed from the bottom up, and a module may
//! name only modules of rows **above** its own (or its own row), and never one of a higher layer.
//! So there are no cycles between rows, and a pure module never reaches an actor.
//!
//! How it reads the code: comments, strings and char literals are stripped, then every `use`
//! tree is expanded and every path in the code (`crate::a::b`, `super::x`, `std::fs::read`) is
//! resolved to the file that defines the module it names, and that file to its row. A path names
//! the module that defines an item, so a `mod.rs` may re-export only what its own layer allows:
//! import from the defining module instead. Every `.rs` file under `src/` except `lib.rs` must be
//! in the table. A `use a::b as c` alias is followed (file-wide). It runs in a few milliseconds;
//! `cargo nextest run layers` shows every violation at once.
//!
//! What it does not see: paths inside string attributes (`#[serde(with = "crate::x")]`),
//! `#[macro_export]` macros, crates renamed in Cargo.toml, and console I/O (`std::io::stdout`)
//! in pure modules. Review those by hand.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Layer {
    Pure,
    Shell,
    Edge,
}

#[derive(Debug)]
struct Row {
    /// Position in the table (0 = top = lowest module).
    pos: usize,
    layer: Layer,
    paths: Vec<String>,
}

/// The module table from README.md.
fn read_table(readme: &str) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut in_table = false;
    for line in readme.lines() {
        let line = line.trim();
        if !in_table {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            if cells.len() >= 4 && cells[1] == "module" && cells[2] == "layer" {
                in_table = true;
            }
            continue;
        }
        if !line.starts_with('|') {
            break;
        }
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 4 || cells[1].starts_with("---") {
            continue;
        }
        let layer = match cells[2] {
            "pure" => Layer::Pure,
            "shell" => Layer::Shell,
            "edge" => Layer::Edge,
            other => panic!("README module table: unknown layer {other:?} in {line}"),
        };
        let paths: Vec<String> = cells[1]
            .split('`')
            .enumerate()
            .filter(|(i, _)| i % 2 == 1)
            .map(|(_, p)| p.to_owned())
            .collect();
        assert!(
            !paths.is_empty(),
            "README module table: no `path` in {line}"
        );
        rows.push(Row {
            pos: rows.len(),
            layer,
            paths,
        });
    }
    assert!(
        !rows.is_empty(),
        "README.md has no module table with the header `| module | layer | owns |`"
    );
    rows
}

/// The row a source file (path relative to the crate root, `src/...`) belongs to: the longest
/// matching path.
fn row_of<'a>(rows: &'a [Row], file: &str) -> Option<&'a Row> {
    let mut best: Option<(&Row, usize)> = None;
    for row in rows {
        for p in &row.paths {
            let hit = if p.ends_with('/') {
                file.starts_with(p.as_str())
            } else {
                file == p
            };
            if hit && best.is_none_or(|(_, len)| p.len() > len) {
                best = Some((row, p.len()));
            }
        }
    }
    best.map(|(r, _)| r)
}

/// Removes comments, string and char literals (keeps line structure).
fn strip(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(' ');
        } else if c == b'r'
            && (b.get(i + 1) == Some(&b'"') || b.get(i + 1) == Some(&b'#'))
            && (i == 0
                || !is_ident(b[i - 1])
                || (matches!(b[i - 1], b'b' | b'c') && (i < 2 || !is_ident(b[i - 2]))))
        {
            // Raw string r"..." or r#"..."# (also a raw byte or C string, br"..", cr"..").
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&b'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&b'"') {
                out.push('r');
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= b.len() {
                    break;
                }
                if b[j] == b'"' && (0..hashes).all(|k| b.get(j + 1 + k) == Some(&b'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            out.push_str("\"\"");
            i = j;
        } else if c == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == b'\'' {
            // A char literal ('x', '\n', '\u{..}') or a lifetime ('a).
            if b.get(i + 1) == Some(&b'\\') {
                let mut j = i + 2;
                while j < b.len() && b[j] != b'\'' {
                    j += 1;
                }
                i = j + 1;
                out.push_str("' '");
            } else if b.get(i + 2) == Some(&b'\'') {
                i += 3;
                out.push_str("' '");
            } else if let Some(len) = std::str::from_utf8(&b[i + 1..])
                .ok()
                .and_then(|s| s.chars().next())
                .map(char::len_utf8)
                .filter(|l| *l > 1 && b.get(i + 1 + l) == Some(&b'\''))
            {
                i += 2 + len;
                out.push_str("' '");
            } else {
                out.push('\'');
                i += 1;
            }
        } else {
            let ch = src[i..].chars().next().unwrap_or(' ');
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    PathSep,
    Open,
    Close,
    Semi,
    Comma,
    Star,
    Other(char),
}

fn tokens(code: &str) -> Vec<Tok> {
    let b = code.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if is_ident(c) {
            let start = i;
            while i < b.len() && is_ident(b[i]) {
                i += 1;
            }
            out.push(Tok::Ident(code[start..i].to_owned()));
            continue;
        }
        match c {
            b':' if b.get(i + 1) == Some(&b':') => {
                out.push(Tok::PathSep);
                i += 2;
                continue;
            }
            b'{' => out.push(Tok::Open),
            b'}' => out.push(Tok::Close),
            b';' => out.push(Tok::Semi),
            b',' => out.push(Tok::Comma),
            b'*' => out.push(Tok::Star),
            c if c.is_ascii_whitespace() => {}
            c => out.push(Tok::Other(c as char)),
        }
        i += 1;
    }
    out
}

/// The first segment of a marker path that records a `use … as alias`.
const ALIAS: &str = "<alias>";

/// Expands a `use` tree starting at `toks[*i]` (after `use`), with `prefix` before it.
fn use_tree(toks: &[Tok], i: &mut usize, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    let mut path = prefix;
    loop {
        match toks.get(*i) {
            Some(Tok::Ident(name)) => {
                path.push(name.clone());
                *i += 1;
                if let Some(Tok::Ident(kw)) = toks.get(*i) {
                    if kw == "as" {
                        // `use a::b as c;`: remember that `c` stands for `a::b` (a marker path
                        // that `paths_in` turns into an alias).
                        if let Some(Tok::Ident(alias)) = toks.get(*i + 1) {
                            if alias != "_" {
                                let mut marker = vec![ALIAS.to_owned(), alias.clone()];
                                marker.extend(path.iter().cloned());
                                out.push(marker);
                            }
                        }
                        *i += 2;
                    }
                }
                if toks.get(*i) == Some(&Tok::PathSep) {
                    *i += 1;
                    continue;
                }
                out.push(path);
                return;
            }
            Some(Tok::Star) => {
                *i += 1;
                out.push(path);
                return;
            }
            Some(Tok::Open) => {
                *i += 1;
                loop {
                    match toks.get(*i) {
                        Some(Tok::Close) => {
                            *i += 1;
                            return;
                        }
                        Some(Tok::Comma) => *i += 1,
                        None => return,
                        _ => use_tree(toks, i, path.clone(), out),
                    }
                }
            }
            Some(Tok::PathSep) => *i += 1, // a leading `::`
            _ => {
                if !path.is_empty() {
                    out.push(path);
                }
                return;
            }
        }
    }
}

/// Every path the code names: `use` trees expanded, and `a::b::c` paths in the code. Each comes
/// with the inline modules (`mod tests { .. }`) it sits in.
fn paths_in(code: &str) -> Vec<(Vec<String>, Vec<String>)> {
    let raw = raw_paths_in(code);
    // `use a::b as c;` makes `c::d` mean `a::b::d` (file-wide: close enough for a check).
    let aliases: Vec<(String, Vec<String>)> = raw
        .iter()
        .filter(|(p, _)| p.first().is_some_and(|f| f == ALIAS) && p.len() > 2)
        .map(|(p, _)| (p[1].clone(), p[2..].to_vec()))
        .collect();
    raw.into_iter()
        .filter(|(p, _)| p.first().is_none_or(|f| f != ALIAS))
        .map(|(p, inline)| {
            match aliases
                .iter()
                .find(|(a, _)| p.len() > 1 && p.first() == Some(a))
            {
                Some((_, full)) => (full.iter().chain(p[1..].iter()).cloned().collect(), inline),
                None => (p, inline),
            }
        })
        .collect()
}

fn raw_paths_in(code: &str) -> Vec<(Vec<String>, Vec<String>)> {
    let toks = tokens(code);
    let mut out = Vec::new();
    let mut depth = 0usize;
    // (name, depth of the brace that opened it)
    let mut mods: Vec<(String, usize)> = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let inline: Vec<String> = mods.iter().map(|(n, _)| n.clone()).collect();
        match &toks[i] {
            Tok::Open => {
                depth += 1;
                i += 1;
            }
            Tok::Close => {
                depth = depth.saturating_sub(1);
                while mods.last().is_some_and(|(_, d)| *d > depth) {
                    mods.pop();
                }
                i += 1;
            }
            Tok::Ident(kw) if kw == "mod" => {
                if let (Some(Tok::Ident(name)), Some(Tok::Open)) =
                    (toks.get(i + 1), toks.get(i + 2))
                {
                    depth += 1;
                    mods.push((name.clone(), depth));
                    i += 3;
                } else if let Some(Tok::Ident(_)) = toks.get(i + 1) {
                    // `mod name;` declares a module: it names nothing.
                    i += 2;
                } else {
                    i += 1;
                }
            }
            Tok::Ident(kw) if kw == "use" => {
                i += 1;
                let mut trees = Vec::new();
                use_tree(&toks, &mut i, Vec::new(), &mut trees);
                for t in trees {
                    out.push((t, inline.clone()));
                }
            }
            Tok::Ident(first) => {
                // `a::b` continues a path; `<T>::b` and `Vec::<u8>::new` continue a type's;
                // a `::` after anything else starts an absolute path (`::tokio::spawn`).
                let after_sep = i > 0
                    && toks[i - 1] == Tok::PathSep
                    && i >= 2
                    && matches!(toks[i - 2], Tok::Ident(_) | Tok::Other('>'));
                let mut path = vec![first.clone()];
                let mut j = i + 1;
                while toks.get(j) == Some(&Tok::PathSep) {
                    match toks.get(j + 1) {
                        Some(Tok::Ident(seg)) => {
                            path.push(seg.clone());
                            j += 2;
                        }
                        _ => break,
                    }
                }
                if !after_sep {
                    out.push((path, inline));
                }
                i = j.max(i + 1);
            }
            _ => i += 1,
        }
    }
    out
}

/// Constructs that bring in code from a file the check cannot see from here: `#[path = ..]`
/// on a module and `include!(..)`.
fn hidden_code(code: &str) -> Vec<&'static str> {
    let toks = tokens(code);
    let mut out = Vec::new();
    for (i, t) in toks.iter().enumerate() {
        let Tok::Ident(name) = t else { continue };
        let before = |k: usize| i.checked_sub(k).and_then(|j| toks.get(j));
        let attr = before(1) == Some(&Tok::Other('['))
            && (before(2) == Some(&Tok::Other('#'))
                || (before(2) == Some(&Tok::Other('!')) && before(3) == Some(&Tok::Other('#'))));
        if name == "path" && attr {
            out.push("#[path = ..] (the module's file is elsewhere)");
        }
        if name == "include" && toks.get(i + 1) == Some(&Tok::Other('!')) {
            out.push("include!(..) (code from another file)");
        }
    }
    out
}

/// Whether `module` (absolute, without `crate`) has a file of its own.
fn is_module_file(root: &Path, module: &[String]) -> bool {
    let m = module.join("/");
    root.join(format!("src/{m}.rs")).is_file() || root.join(format!("src/{m}/mod.rs")).is_file()
}

/// The module path of a source file: `src/raft/core/mod.rs` → `[raft, core]`.
fn module_of(file: &str) -> Vec<String> {
    let rel = file.trim_start_matches("src/").trim_end_matches(".rs");
    let mut parts: Vec<String> = rel.split('/').map(str::to_owned).collect();
    if parts
        .last()
        .is_some_and(|p| p == "mod" || p == "lib" || p == "main")
    {
        parts.pop();
    }
    parts
}

/// The file that defines the longest module prefix of `path` (absolute, without `crate`).
fn defining_file(root: &Path, path: &[String]) -> Option<String> {
    for len in (1..=path.len()).rev() {
        let m = path[..len].join("/");
        for candidate in [format!("src/{m}.rs"), format!("src/{m}/mod.rs")] {
            if root.join(&candidate).is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

/// Pairs of modules that must not know each other even where the table's order would allow it:
/// (files under, must not name files under, why).
const NEVER: &[(&str, &str, &str)] = &[
    (
        "src/store/",
        "src/raft/",
        "the store never knows Raft (it applies the `Committed` values it owns)",
    ),
    (
        "src/transport/",
        "src/raft/actor",
        "the transport delivers a message type it defines, to a recipient it is given",
    ),
    (
        "src/storage/",
        "src/raft/actor",
        "storage writes what it is handed and never calls back into the actor",
    ),
];

const PURE_FORBIDDEN_CRATES: &[&str] = &[
    "actix",
    "actix_web",
    "actix_rt",
    "actix_http",
    "awc",
    "tokio",
    "tracing_actix_web",
    "libc",
];
const PURE_FORBIDDEN_STD: &[&str] = &["fs", "net", "thread", "process", "env", "os"];
const CLOCKS: &[&str] = &["Instant", "SystemTime", "UNIX_EPOCH"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The violations in the crate at `root`, one line each.
fn violations(root: &Path) -> Vec<String> {
    let readme = fs::read_to_string(root.join("README.md")).expect("README.md");
    let rows = read_table(&readme);
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    let mut bad = BTreeSet::new();
    for row in &rows {
        for p in &row.paths {
            if !root.join(p).exists() {
                bad.insert(format!(
                    "README module table names {p}, which does not exist"
                ));
            }
        }
    }
    for path in files {
        let file = path
            .strip_prefix(root)
            .expect("under root")
            .to_string_lossy()
            .replace('\\', "/");
        if file == "src/lib.rs" {
            // Skipped below as a target: a `use` here would hide the defining module.
            let code = strip(&fs::read_to_string(&path).expect("read source"));
            if tokens(&code).contains(&Tok::Ident("use".into())) {
                bad.insert(
                    "src/lib.rs: re-exports at the crate root hide the defining module from the check; \
                     import from the defining module"
                        .into(),
                );
            }
            continue;
        }
        let Some(row) = row_of(&rows, &file) else {
            bad.insert(format!(
                "{file}: not in README's module table (add it, with its layer)"
            ));
            continue;
        };
        let code = strip(&fs::read_to_string(&path).expect("read source"));
        let me = module_of(&file);
        for what in hidden_code(&code) {
            bad.insert(format!("{file}: {what} hides code from the layering check"));
        }
        for (p, inline) in paths_in(&code) {
            let Some(first) = p.first() else { continue };
            if row.layer == Layer::Pure {
                if PURE_FORBIDDEN_CRATES.contains(&first.as_str()) {
                    bad.insert(format!("{file}: pure module uses `{}`", p.join("::")));
                }
                if (first == "std" || first == "core")
                    && p.get(1)
                        .is_some_and(|s| PURE_FORBIDDEN_STD.contains(&s.as_str()))
                {
                    bad.insert(format!("{file}: pure module uses `{}`", p.join("::")));
                }
                if p.iter().any(|s| CLOCKS.contains(&s.as_str())) {
                    bad.insert(format!(
                        "{file}: pure module reads a clock (`{}`)",
                        p.join("::")
                    ));
                }
            }
            // Resolve crate-internal paths to absolute module paths.
            let mut here: Vec<String> = me.iter().chain(inline.iter()).cloned().collect();
            let abs: Vec<String> = match first.as_str() {
                "crate" => p[1..].to_vec(),
                "super" => {
                    let mut rest = &p[..];
                    while rest.first().is_some_and(|s| s == "super") {
                        here.pop();
                        rest = &rest[1..];
                    }
                    here.into_iter().chain(rest.iter().cloned()).collect()
                }
                "self" => here.into_iter().chain(p[1..].iter().cloned()).collect(),
                "kvstore" if file == "src/main.rs" => p[1..].to_vec(),
                // A child module named without `self::` (`use actor::X;` in a `mod.rs`).
                _ if is_module_file(root, &[here.clone(), vec![first.clone()]].concat()) => {
                    here.into_iter().chain(p.iter().cloned()).collect()
                }
                _ => continue,
            };
            let Some(target) = defining_file(root, &abs) else {
                continue;
            };
            if target == file || target == "src/lib.rs" {
                continue;
            }
            for (from, to, why) in NEVER {
                if file.starts_with(from) && target.starts_with(to) {
                    bad.insert(format!(
                        "{file} names `{}` in {target}: {why}",
                        p.join("::")
                    ));
                }
            }
            let Some(to) = row_of(&rows, &target) else {
                continue; // reported as a file missing from the table
            };
            if to.pos == row.pos {
                continue;
            }
            if to.layer > row.layer {
                bad.insert(format!(
                    "{file} ({:?}) names `{}` in {target} ({:?}): a lower layer never names a higher one",
                    row.layer,
                    p.join("::"),
                    to.layer
                ));
            } else if to.pos > row.pos {
                bad.insert(format!(
                    "{file} names `{}` in {target}, listed below it in README's module table: \
                     modules name only rows above them (move the item down, or reorder the table if the \
                     dependency is meant)",
                    p.join("::")
                ));
            }
        }
    }
    bad.into_iter().collect()
}

#[test]
fn modules_import_only_their_own_layer_or_lower_and_rows_above_them() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bad = violations(root);
    assert!(
        bad.is_empty(),
        "{} layering violation(s) (README's module table is the map; see tests/integration/layers.rs):\n{}",
        bad.len(),
        bad.join("\n")
    );
}

/// The checker itself catches what it must: a pure module that uses actix, reads a clock or
/// names a shell module, and a row that names one listed below it.
#[test]
fn the_layering_check_catches_forbidden_imports() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    for d in ["src/a", "src/raft", "src/store"] {
        fs::create_dir_all(root.join(d)).expect("mkdir");
    }
    fs::write(
        root.join("README.md"),
        "## Architecture\n\n| module | layer | owns |\n| --- | --- | --- |\n\
         | `src/raft/` | pure | x |\n| `src/store/` | pure | x |\n\
         | `src/a/pure.rs` | pure | x |\n| `src/a/low.rs` | shell | x |\n\
         | `src/a/high.rs` | shell | x |\n| `src/a/mod.rs`, `src/main.rs` | edge | x |\n\nafter\n",
    )
    .expect("write readme");
    let write = |name: &str, body: &str| fs::write(root.join(name), body).expect("write");
    write("src/lib.rs", "pub mod a;\npub mod raft;\npub mod store;\n");
    write("src/raft/mod.rs", "pub type Term = u64;\n");
    write("src/store/mod.rs", "use crate::raft::Term;\n");
    write("src/main.rs", "use kvstore::a::high::X;\nfn main() {}\n");
    write(
        "src/a/mod.rs",
        "pub mod high;\npub mod low;\npub mod pure;\n",
    );
    write(
        "src/a/pure.rs",
        "//! use actix::Actor; (a comment: ignored)\n\
         use std::{collections::HashMap, time::{Duration, Instant}};\n\
         use super::low::Thing;\n\
         const S: &str = \"tokio::spawn\";\n\
         fn f() { let _ = std::fs::read(\"x\"); actix::spawn(async {}); }\n",
    );
    write(
        "src/a/low.rs",
        "pub struct Thing;\nfn g() -> crate::a::high::X { todo!() }\n",
    );
    write(
        "src/a/high.rs",
        "use crate::a::low::Thing;\nuse super::pure::*;\npub struct X;\n\
         mod tests { use super::*; }\n",
    );
    let bad = violations(root);
    let has = |needle: &str| bad.iter().any(|l| l.contains(needle));
    assert!(
        has("src/a/pure.rs: pure module reads a clock (`std::time::Instant`)"),
        "{bad:#?}"
    );
    assert!(
        has("src/a/pure.rs: pure module uses `std::fs::read`"),
        "{bad:#?}"
    );
    assert!(
        has("src/a/pure.rs: pure module uses `actix::spawn`"),
        "{bad:#?}"
    );
    assert!(
        has("src/a/pure.rs (Pure) names `super::low::Thing`"),
        "{bad:#?}"
    );
    assert!(has("src/a/low.rs names `crate::a::high::X`"), "{bad:#?}");
    assert!(!has("tokio"), "strings are not code: {bad:#?}");
    assert!(!has("actix::Actor"), "comments are not code: {bad:#?}");
    let from = |file: &str| bad.iter().any(|l| l.starts_with(file));
    assert!(
        !from("src/a/high.rs"),
        "high may name low and pure: {bad:#?}"
    );
    assert!(!from("src/main.rs"), "main may name anything: {bad:#?}");
    assert!(has("src/store/mod.rs names `crate::raft::Term` in src/raft/mod.rs: the store never knows Raft"), "{bad:#?}");
    assert_eq!(bad.len(), 6, "{bad:#?}");
}

/// What the first version of the check missed: an absolute `::crate` path in code, a child
/// module named without `self::` (a pure `mod.rs` re-exporting a shell child), a raw byte string
/// ending in a backslash (which hid the code after it), `std::os`, `#[path]`, `include!` and a
/// re-export at the crate root.
#[test]
fn the_layering_check_sees_past_the_syntax_that_hid_imports() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    fs::create_dir_all(root.join("src/p")).expect("mkdir");
    fs::write(
        root.join("README.md"),
        "## Architecture\n\n| module | layer | owns |\n| --- | --- | --- |\n\
         | `src/p/mod.rs`, `src/p/abs.rs`, `src/p/raw.rs`, `src/p/os.rs`, `src/p/ok.rs`, `src/p/alias.rs` | pure | x |\n\
         | `src/p/sh.rs`, `src/p/hide.rs` | shell | x |\n\nafter\n",
    )
    .expect("write readme");
    let write = |name: &str, body: &str| fs::write(root.join(name), body).expect("write");
    write(
        "src/lib.rs",
        "pub mod p;\npub use crate::p::sh::Actorish;\n",
    );
    write(
        "src/p/mod.rs",
        "pub mod abs;\npub mod alias;\npub mod hide;\npub mod ok;\npub mod os;\npub mod raw;\npub mod sh;\n\
         pub use sh::Actorish;\n",
    );
    write("src/p/sh.rs", "pub struct Actorish;\n");
    write(
        "src/p/alias.rs",
        "use crate::p as q;\nuse std::collections::HashMap as _;\nfn f() -> q::sh::Actorish { todo!() }\n",
    );
    write("src/p/abs.rs", "fn f() { ::tokio::spawn(async {}); }\n");
    write(
        "src/p/raw.rs",
        "const B: &[u8] = br\"\\\";\nuse std::net::TcpStream;\nconst Q: &str = \"x\";\n",
    );
    write("src/p/os.rs", "use std::os::unix::fs::FileExt;\n");
    write(
        "src/p/hide.rs",
        "#[path = \"../elsewhere.rs\"]\nmod elsewhere;\ninclude!(\"more.rs\");\n",
    );
    write(
        "src/p/ok.rs",
        "fn g<T: Default>() -> T { let _ = Vec::<u8>::new(); <T as Default>::default() }\n",
    );
    let bad = violations(root);
    let has = |needle: &str| bad.iter().any(|l| l.contains(needle));
    assert!(
        has("src/p/abs.rs: pure module uses `tokio::spawn`"),
        "{bad:#?}"
    );
    assert!(has("src/p/mod.rs (Pure) names `sh::Actorish`"), "{bad:#?}");
    assert!(
        has("src/p/raw.rs: pure module uses `std::net::TcpStream`"),
        "{bad:#?}"
    );
    assert!(
        has("src/p/os.rs: pure module uses `std::os::unix::fs::FileExt`"),
        "{bad:#?}"
    );
    assert!(has("src/p/hide.rs: #[path = ..]"), "{bad:#?}");
    assert!(has("src/p/hide.rs: include!(..)"), "{bad:#?}");
    assert!(has("src/lib.rs: re-exports at the crate root"), "{bad:#?}");
    assert!(
        has("src/p/alias.rs (Pure) names `crate::p::sh::Actorish`"),
        "a path through a `use … as` alias: {bad:#?}"
    );
    assert!(
        !has("src/p/ok.rs"),
        "type paths are not absolute paths: {bad:#?}"
    );
    assert_eq!(bad.len(), 8, "{bad:#?}");
}
