//! The Corefile language: tokens, server blocks, directives.
//!
//! This is CoreDNS's (Caddy's) syntax: server blocks `KEY [KEY...] { ... }`, directives one per
//! line with arguments and an optional `{ ... }` block, `#` comments, quoted strings,
//! `{$ENV}` substitution, snippets `(name) { ... }` with `import name`, and `import FILE`.
//! The parser only builds the tree; what each directive means is decided by its plugin's
//! setup (`plugin::NAME::setup`), from the helpers in [`args`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub mod args;

pub use args::{
    Fallthrough, arg_count_err, directive_err, host_name, http_addr, number, one_arg,
    parse_duration, parse_zone, parse_zones, plugin_zones, resolve, zone_list,
};

/// Everything that can be wrong with a configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{pos}: {message}")]
    Syntax { pos: String, message: String },
    #[error("{pos}: {directive}: {message}")]
    Directive {
        pos: String,
        directive: String,
        message: String,
    },
}

/// One address a server block listens on: an IP (`bind`) or every address, and a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Listen {
    /// `None`: the wildcard address.
    pub ip: Option<IpAddr>,
    pub port: u16,
}

impl std::fmt::Display for Listen {
    /// CoreDNS's server address, as in its logs and the `server` label of its metrics:
    /// `dns://:53`, `dns://169.254.20.10:53`, `dns://[::1]:53`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.ip {
            None => write!(f, "dns://:{}", self.port),
            Some(IpAddr::V4(ip)) => write!(f, "dns://{ip}:{}", self.port),
            Some(IpAddr::V6(ip)) => write!(f, "dns://[{ip}]:{}", self.port),
        }
    }
}

/// Where a token came from, for error messages: `Corefile:12`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pos {
    pub file: Arc<str>,
    pub line: usize,
}

impl std::fmt::Display for Pos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Token {
    text: String,
    pos: Pos,
    /// Quoted tokens are never structure (`"{"` is an argument, not a block).
    quoted: bool,
}

impl Token {
    fn is(&self, s: &str) -> bool {
        !self.quoted && self.text == s
    }
}

/// One directive: `name arg... { block }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    pub name: String,
    pub args: Vec<String>,
    pub block: Vec<Directive>,
    pub pos: Pos,
}

/// One server block: its keys (`.:53`, `cluster.local`) and its directives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerBlock {
    pub keys: Vec<String>,
    pub directives: Vec<Directive>,
    pub pos: Pos,
}

/// Imports deeper than this are taken for a cycle.
const MAX_IMPORT_DEPTH: usize = 10;

/// Parses the Corefile at `path`, following imports relative to its directory.
pub fn parse_file(path: &Path) -> Result<Vec<ServerBlock>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_str(&text, &path.display().to_string(), path.parent())
}

/// Parses Corefile text. `name` labels positions; `dir` is where relative imports are read.
pub fn parse_str(
    text: &str,
    name: &str,
    dir: Option<&Path>,
) -> Result<Vec<ServerBlock>, ConfigError> {
    let tokens = lex(text, name.into())?;
    let mut parser = Parser {
        snippets: HashMap::new(),
        dir: dir.map(Path::to_path_buf).unwrap_or_default(),
    };
    let tokens = parser.expand_top(tokens, 0)?;
    parser.blocks(tokens)
}

fn err(pos: &Pos, message: impl Into<String>) -> ConfigError {
    ConfigError::Syntax {
        pos: pos.to_string(),
        message: message.into(),
    }
}

/// Splits text into tokens. Newlines separate directives, so each token keeps its line.
fn lex(text: &str, file: Arc<str>) -> Result<Vec<Vec<Token>>, ConfigError> {
    // Lines of tokens; a quoted string may span lines and belongs to the line it starts on.
    let mut lines: Vec<Vec<Token>> = Vec::new();
    let mut current: Vec<Token> = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1;
    let mut word = String::new();
    let mut word_line = line;
    let flush = |word: &mut String, current: &mut Vec<Token>, word_line: usize| {
        if !word.is_empty() {
            current.push(Token {
                text: std::mem::take(word),
                pos: Pos {
                    file: file.clone(),
                    line: word_line,
                },
                quoted: false,
            });
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '\n' => {
                flush(&mut word, &mut current, word_line);
                if !current.is_empty() {
                    lines.push(std::mem::take(&mut current));
                }
                line += 1;
            }
            '#' if word.is_empty() => {
                while chars.peek().is_some_and(|&c| c != '\n') {
                    chars.next();
                }
            }
            '"' if word.is_empty() => {
                let start = line;
                let mut s = String::new();
                let mut closed = false;
                while let Some(c) = chars.next() {
                    match c {
                        '\\' if chars.peek() == Some(&'"') => {
                            chars.next();
                            s.push('"');
                        }
                        '"' => {
                            closed = true;
                            break;
                        }
                        '\n' => {
                            line += 1;
                            s.push('\n');
                        }
                        c => s.push(c),
                    }
                }
                if !closed {
                    return Err(err(
                        &Pos {
                            file: file.clone(),
                            line: start,
                        },
                        "unterminated quoted string",
                    ));
                }
                current.push(Token {
                    text: substitute_env(&s),
                    pos: Pos {
                        file: file.clone(),
                        line: start,
                    },
                    quoted: true,
                });
            }
            c if c.is_whitespace() => flush(&mut word, &mut current, word_line),
            c => {
                if word.is_empty() {
                    word_line = line;
                }
                word.push(c);
            }
        }
    }
    flush(&mut word, &mut current, word_line);
    if !current.is_empty() {
        lines.push(current);
    }
    // Environment substitution on unquoted words; a word that becomes empty disappears.
    for l in &mut lines {
        for t in l.iter_mut().filter(|t| !t.quoted) {
            t.text = substitute_env(&t.text);
        }
        l.retain(|t| t.quoted || !t.text.is_empty());
    }
    lines.retain(|l| !l.is_empty());
    Ok(lines)
}

/// Replaces `{$NAME}` (and Caddy's `{%NAME%}`) with the environment variable, or nothing.
fn substitute_env(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        let (open, close) = if after.starts_with('$') {
            ("$", "}")
        } else if after.starts_with('%') {
            ("%", "%}")
        } else {
            out.push_str(&rest[..=start]);
            rest = after;
            continue;
        };
        match after[open.len()..].find(close) {
            Some(end) => {
                let name = &after[open.len()..open.len() + end];
                out.push_str(&rest[..start]);
                out.push_str(&std::env::var(name).unwrap_or_default());
                rest = &after[open.len() + end + close.len()..];
            }
            None => {
                out.push_str(&rest[..=start]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

struct Parser {
    snippets: HashMap<String, Vec<Vec<Token>>>,
    dir: PathBuf,
}

impl Parser {
    /// Takes snippet definitions out of the top level and expands imports everywhere.
    fn expand_top(
        &mut self,
        lines: Vec<Vec<Token>>,
        depth: usize,
    ) -> Result<Vec<Vec<Token>>, ConfigError> {
        let mut out = Vec::new();
        let mut it = lines.into_iter().peekable();
        while let Some(line) = it.next() {
            let first = &line[0];
            if !first.quoted
                && first.text.starts_with('(')
                && first.text.ends_with(')')
                && first.text.len() > 2
            {
                let name = first.text[1..first.text.len() - 1].to_string();
                if line.len() != 2 || !line[1].is("{") {
                    return Err(err(&first.pos, "a snippet is `(name) {` on one line"));
                }
                let body = take_block(&mut it, &first.pos)?;
                self.snippets.insert(name, body);
                continue;
            }
            out.push(line);
        }
        self.expand_imports(out, depth)
    }

    fn expand_imports(
        &mut self,
        lines: Vec<Vec<Token>>,
        depth: usize,
    ) -> Result<Vec<Vec<Token>>, ConfigError> {
        let mut out = Vec::new();
        for line in lines {
            if !line[0].is("import") {
                out.push(line);
                continue;
            }
            let pos = &line[0].pos;
            if depth >= MAX_IMPORT_DEPTH {
                return Err(err(pos, "imports nest too deeply (a cycle?)"));
            }
            if line.len() < 2 {
                return Err(err(pos, "import needs a snippet name or a file"));
            }
            let target = &line[1].text;
            if let Some(body) = self.snippets.get(target).cloned() {
                out.extend(self.expand_imports(body, depth + 1)?);
                continue;
            }
            let path = self.dir.join(target);
            let files = expand_glob(&path);
            if files.is_empty() && !target.contains('*') {
                return Err(err(
                    pos,
                    format!("import {target}: no such snippet or file"),
                ));
            }
            for file in files {
                let text = std::fs::read_to_string(&file)
                    .map_err(|e| err(pos, format!("import {}: {e}", file.display())))?;
                let lines = lex(&text, file.display().to_string().into())?;
                out.extend(self.expand_top(lines, depth + 1)?);
            }
        }
        Ok(out)
    }

    fn blocks(&self, lines: Vec<Vec<Token>>) -> Result<Vec<ServerBlock>, ConfigError> {
        let mut blocks = Vec::new();
        let mut it = lines.into_iter().peekable();
        while let Some(mut line) = it.next() {
            let pos = line[0].pos.clone();
            // Keys may continue over lines ending in a comma; `{` ends them.
            let mut keys: Vec<Token> = Vec::new();
            loop {
                let opens = line.last().is_some_and(|t| t.is("{"));
                if opens {
                    line.pop();
                }
                for t in line {
                    for k in t.text.split(',').filter(|k| !k.is_empty()) {
                        keys.push(Token {
                            text: k.to_string(),
                            pos: t.pos.clone(),
                            quoted: t.quoted,
                        });
                    }
                }
                if opens {
                    break;
                }
                match it.next() {
                    Some(next) if next.len() == 1 && next[0].is("{") => break,
                    Some(next) => line = next,
                    None => {
                        // A server block with no body is allowed (`.:53` alone).
                        break;
                    }
                }
            }
            if keys.is_empty() {
                return Err(err(&pos, "a server block needs at least one zone"));
            }
            if let Some(t) = keys.iter().find(|t| t.is("}") || t.is("{")) {
                return Err(err(&t.pos, format!("unexpected '{}'", t.text)));
            }
            let body = take_block(&mut it, &pos)?;
            let directives = directives(body)?;
            blocks.push(ServerBlock {
                keys: keys.into_iter().map(|t| t.text).collect(),
                directives,
                pos,
            });
        }
        Ok(blocks)
    }
}

/// Reads lines up to the `}` that closes a block opened on the previous line.
fn take_block(
    it: &mut std::iter::Peekable<std::vec::IntoIter<Vec<Token>>>,
    open: &Pos,
) -> Result<Vec<Vec<Token>>, ConfigError> {
    let mut depth = 1usize;
    let mut body = Vec::new();
    for mut line in it.by_ref() {
        // A closing brace may share a line with other tokens: `}` alone, or `foo }`.
        let mut rest: Vec<Token> = Vec::new();
        let mut closed_here = false;
        for t in line.drain(..) {
            if closed_here {
                return Err(err(&t.pos, format!("unexpected '{}' after '}}'", t.text)));
            }
            if t.is("{") {
                depth += 1;
            }
            if t.is("}") {
                depth -= 1;
                if depth == 0 {
                    closed_here = true;
                    continue;
                }
            }
            rest.push(t);
        }
        if !rest.is_empty() {
            body.push(rest);
        }
        if closed_here {
            return Ok(body);
        }
    }
    Err(err(open, "this '{' is never closed"))
}

fn directives(lines: Vec<Vec<Token>>) -> Result<Vec<Directive>, ConfigError> {
    let mut out = Vec::new();
    let mut it = lines.into_iter().peekable();
    while let Some(mut line) = it.next() {
        let head = line.remove(0);
        if head.is("{") || head.is("}") {
            return Err(err(&head.pos, format!("unexpected '{}'", head.text)));
        }
        let opens = line.last().is_some_and(|t| t.is("{"));
        if opens {
            line.pop();
        }
        if let Some(t) = line.iter().find(|t| t.is("{") || t.is("}")) {
            return Err(err(&t.pos, format!("unexpected '{}'", t.text)));
        }
        let block = if opens {
            directives(take_block(&mut it, &head.pos)?)?
        } else {
            Vec::new()
        };
        out.push(Directive {
            name: head.text,
            args: line.into_iter().map(|t| t.text).collect(),
            block,
            pos: head.pos,
        });
    }
    Ok(out)
}

/// Expands a `*` in the last path component (`import conf.d/*.conf`), sorted.
fn expand_glob(path: &Path) -> Vec<PathBuf> {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return vec![path.to_path_buf()];
    };
    if !name.contains('*') {
        return if path.exists() {
            vec![path.to_path_buf()]
        } else {
            vec![]
        };
    }
    let (prefix, suffix) = name.split_once('*').unwrap_or((name, ""));
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.starts_with(prefix)
                    && n.ends_with(suffix)
                    && n.len() >= prefix.len() + suffix.len()
            })
        })
        .collect();
    files.sort();
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<ServerBlock>, ConfigError> {
        parse_str(text, "Corefile", None)
    }

    #[test]
    fn parses_server_blocks_directives_and_nested_blocks() {
        let blocks = parse(
            ".:1053 {\n  errors\n  kubernetes cluster.local in-addr.arpa {\n    pods insecure\n    ttl 30\n  }\n}\n\
             example.org:53 {\n  hosts {\n    10.0.0.5 a.example.org\n  }\n}\n",
        )
        .unwrap();
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0].keys, vec![".:1053"]);
        let k = &blocks[0].directives[1];
        assert_eq!(k.name, "kubernetes");
        assert_eq!(k.args, vec!["cluster.local", "in-addr.arpa"]);
        assert_eq!(k.block.len(), 2);
        assert_eq!(k.block[1].args, vec!["30"]);
        assert_eq!(k.block[1].pos.line, 5);
        assert_eq!(blocks[1].directives[0].block[0].name, "10.0.0.5");
    }

    #[test]
    fn comments_quotes_and_several_keys() {
        let blocks =
            parse("# top\ncluster.local:53 example.org { # trailing\n  log \"a b\" c#d\n}\n")
                .unwrap();
        assert_eq!(blocks[0].keys, vec!["cluster.local:53", "example.org"]);
        assert_eq!(blocks[0].directives[0].args, vec!["a b", "c#d"]);
    }

    #[test]
    fn environment_substitution() {
        let var = "CLUSTERDNS_TEST_CORE_PORT";
        let blocks = parse(&format!(".:{{${var}}} {{\n  log\n}}\n")).unwrap();
        let expected = std::env::var(var).unwrap_or_default();
        assert_eq!(blocks[0].keys, vec![format!(".:{expected}")]);
        assert_eq!(substitute_env("a{$CLUSTERDNS_UNSET_VAR_X}b"), "ab");
        assert_eq!(substitute_env("{$PATH"), "{$PATH");
    }

    #[test]
    fn snippets_are_imported() {
        let blocks =
            parse("(common) {\n  errors\n  log\n}\n.:53 {\n  import common\n  hosts\n}\n").unwrap();
        let names: Vec<_> = blocks[0]
            .directives
            .iter()
            .map(|d| d.name.as_str())
            .collect();
        assert_eq!(names, vec!["errors", "log", "hosts"]);
    }

    #[test]
    fn files_are_imported_relative_to_the_corefile() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("extra.conf"), "log\n").unwrap();
        std::fs::write(
            dir.path().join("Corefile"),
            ".:53 {\n  import extra.conf\n}\n",
        )
        .unwrap();
        let blocks = parse_file(&dir.path().join("Corefile")).unwrap();
        assert_eq!(blocks[0].directives[0].name, "log");
    }

    #[test]
    fn errors_name_file_and_line() {
        for (text, line) in [
            (".:53 {\n  log\n", 1),
            (".:53 {\n  log\n}\n}\n", 4),
            (".:53 {\n  log \"open\n}\n", 2),
            (".:53 {\n  import nothere\n}\n", 2),
            ("(loop) {\n  import loop\n}\n.:53 {\n import loop\n}\n", 2),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(&format!("Corefile:{line}")), "{text:?} gave {e}");
        }
    }
}
