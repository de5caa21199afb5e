//! The expressions of `view` (and CoreDNS's other expression users): the part of the
//! expr-lang language they are written in — literals (`'text'`, `"text"`, integers, `true`,
//! `false`, `nil`, `[lists]`), the query's functions (`name()`, `type()`, `client_ip()`, ...,
//! `incidr(ip, cidr)`, `metadata(label)`), comparison (`==`, `!=`, `<`, `<=`, `>`, `>=`),
//! `in` and `not in` over lists, `matches` (a regular expression), `contains`, `startsWith`,
//! `endsWith`, `+` (numbers, or text joined), `-`, `*`, `/`, `%`, and `!`/`not`, `&&`/`and`,
//! `||`/`or`, with expr-lang's precedence. Parsed once, when the Corefile is read; evaluated
//! per query against [`Facts`].

use std::fmt;

/// What an expression may ask of a query.
#[derive(Debug, Clone)]
pub struct Facts {
    /// Lowercase, with the final dot.
    pub name: String,
    pub qtype: String,
    pub class: String,
    pub client: std::net::SocketAddr,
    /// The server's address (the wildcard when it listens on every address) and port.
    pub server: std::net::SocketAddr,
    pub tcp: bool,
    pub id: u16,
    pub opcode: u8,
    pub dnssec_ok: bool,
    /// The EDNS buffer size, 512 without EDNS (at least 512), 65535 over TCP: CoreDNS's
    /// `bufsize()`.
    pub bufsize: u16,
    /// The query's length in bytes.
    pub size: usize,
}

/// A value an expression computes.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Nil,
    Bool(bool),
    Int(i64),
    Text(String),
    List(Vec<Value>),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // As Go's templates print them.
        match self {
            Value::Nil => f.write_str("<nil>"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Text(t) => f.write_str(t),
            Value::List(l) => {
                f.write_str("[")?;
                for (i, v) in l.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("]")
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Binary {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    NotIn,
    Contains,
    StartsWith,
    EndsWith,
    /// A regular expression; compiled at parse time when it is a literal.
    Matches,
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

/// The functions of a query expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Function {
    Name,
    Type,
    Class,
    ClientIp,
    Port,
    ServerIp,
    ServerPort,
    Proto,
    Id,
    Opcode,
    Do,
    Bufsize,
    Size,
    Incidr,
    Metadata,
    /// `template`'s `group(NAME|INDEX)`: a capture of the regex that matched.
    Group,
}

impl Function {
    fn named(name: &str) -> Option<(Self, usize)> {
        Some(match name {
            "name" => (Self::Name, 0),
            "type" => (Self::Type, 0),
            "class" => (Self::Class, 0),
            "client_ip" => (Self::ClientIp, 0),
            "port" => (Self::Port, 0),
            "server_ip" => (Self::ServerIp, 0),
            "server_port" => (Self::ServerPort, 0),
            "proto" => (Self::Proto, 0),
            "id" => (Self::Id, 0),
            "opcode" => (Self::Opcode, 0),
            "do" => (Self::Do, 0),
            "bufsize" => (Self::Bufsize, 0),
            "size" => (Self::Size, 0),
            "incidr" => (Self::Incidr, 2),
            "metadata" => (Self::Metadata, 1),
            "group" => (Self::Group, 1),
            _ => return None,
        })
    }
}

#[derive(Debug, Clone)]
enum Node {
    Literal(Value),
    List(Vec<Node>),
    Call(Function, Vec<Node>),
    /// A variable declared before (`template`'s `var`), by its place.
    Var(usize),
    Not(Box<Node>),
    Negate(Box<Node>),
    Binary(Binary, Box<Node>, Box<Node>),
    /// `matches` with its pattern compiled when the pattern is a literal.
    Matches(Box<Node>, Result<regex::Regex, Box<Node>>),
}

/// A parsed expression.
#[derive(Debug, Clone)]
pub struct Expr {
    text: String,
    root: Node,
}

impl PartialEq for Expr {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for Expr {}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Int(i64),
    Text(String),
    Ident(String),
    Op(&'static str),
    Open,
    Close,
    OpenList,
    CloseList,
    Comma,
}

fn tokens(text: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c == '\'' || c == '"' {
            let mut text = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err("a string is not closed".into()),
                    Some(&q) if q == c => break,
                    Some('\\') => {
                        i += 1;
                        match chars.get(i) {
                            Some('n') => text.push('\n'),
                            Some('t') => text.push('\t'),
                            Some(&e) => text.push(e),
                            None => return Err("a string ends in a backslash".into()),
                        }
                    }
                    Some(&other) => text.push(other),
                }
                i += 1;
            }
            i += 1;
            out.push(Token::Text(text));
            continue;
        }
        if c.is_ascii_digit() {
            let start = i;
            while chars
                .get(i)
                .is_some_and(|d| d.is_ascii_digit() || *d == '_')
            {
                i += 1;
            }
            let digits: String = chars[start..i].iter().filter(|d| **d != '_').collect();
            let n = digits
                .parse()
                .map_err(|_| format!("{digits}: not an integer"))?;
            out.push(Token::Int(n));
            continue;
        }
        if c.is_alphabetic() || c == '_' {
            let start = i;
            while chars
                .get(i)
                .is_some_and(|d| d.is_alphanumeric() || *d == '_')
            {
                i += 1;
            }
            out.push(Token::Ident(chars[start..i].iter().collect()));
            continue;
        }
        let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
        let op = ["==", "!=", "<=", ">=", "&&", "||"]
            .into_iter()
            .find(|o| *o == two);
        if let Some(op) = op {
            out.push(Token::Op(op));
            i += 2;
            continue;
        }
        out.push(match c {
            '(' => Token::Open,
            ')' => Token::Close,
            '[' => Token::OpenList,
            ']' => Token::CloseList,
            ',' => Token::Comma,
            '<' => Token::Op("<"),
            '>' => Token::Op(">"),
            '!' => Token::Op("!"),
            '+' => Token::Op("+"),
            '-' => Token::Op("-"),
            '*' => Token::Op("*"),
            '/' => Token::Op("/"),
            '%' => Token::Op("%"),
            other => return Err(format!("unexpected {other:?}")),
        });
        i += 1;
    }
    Ok(out)
}

struct Parser<'n> {
    tokens: Vec<Token>,
    at: usize,
    /// The variables it may name, and whether `group()` is known.
    vars: &'n [String],
    groups: bool,
    /// How deep the parse has gone: bounded, so no Corefile line can exhaust the stack.
    depth: usize,
}

/// The deepest nesting of parentheses, lists, calls and unary operators an expression may have.
const MAX_DEPTH: usize = 64;

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn word(&self, offset: usize) -> Option<&str> {
        match self.tokens.get(self.at + offset) {
            Some(Token::Ident(w)) => Some(w),
            _ => None,
        }
    }

    fn expect(&mut self, token: Token, what: &str) -> Result<(), String> {
        match self.next() {
            Some(t) if t == token => Ok(()),
            Some(t) => Err(format!("expected {what}, found {t:?}")),
            None => Err(format!("expected {what}, found the end")),
        }
    }

    /// The binary operator at the cursor, its precedence and its width in tokens.
    fn binary(&self) -> Option<(Binary, u8, usize)> {
        let op = match self.peek()? {
            Token::Op("||") => (Binary::Or, 1, 1),
            Token::Op("&&") => (Binary::And, 2, 1),
            Token::Op("==") => (Binary::Eq, 3, 1),
            Token::Op("!=") => (Binary::Ne, 3, 1),
            Token::Op("<") => (Binary::Lt, 3, 1),
            Token::Op("<=") => (Binary::Le, 3, 1),
            Token::Op(">") => (Binary::Gt, 3, 1),
            Token::Op(">=") => (Binary::Ge, 3, 1),
            Token::Op("+") => (Binary::Add, 4, 1),
            Token::Op("-") => (Binary::Sub, 4, 1),
            Token::Op("*") => (Binary::Mul, 5, 1),
            Token::Op("/") => (Binary::Div, 5, 1),
            Token::Op("%") => (Binary::Rem, 5, 1),
            Token::Ident(w) => match w.as_str() {
                "or" => (Binary::Or, 1, 1),
                "and" => (Binary::And, 2, 1),
                "in" => (Binary::In, 3, 1),
                "not" if self.word(1) == Some("in") => (Binary::NotIn, 3, 2),
                "contains" => (Binary::Contains, 3, 1),
                "startsWith" => (Binary::StartsWith, 3, 1),
                "endsWith" => (Binary::EndsWith, 3, 1),
                "matches" => (Binary::Matches, 3, 1),
                _ => return None,
            },
            _ => return None,
        };
        Some(op)
    }

    fn expression(&mut self, min: u8) -> Result<Node, String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(format!("nested more than {MAX_DEPTH} deep"));
        }
        let node = self.binaries(min);
        self.depth -= 1;
        node
    }

    fn binaries(&mut self, min: u8) -> Result<Node, String> {
        let mut left = self.unary()?;
        while let Some((op, precedence, width)) = self.binary() {
            if precedence < min {
                break;
            }
            self.at += width;
            if op == Binary::Matches {
                let right = self.expression(precedence + 1)?;
                let pattern = match right {
                    Node::Literal(Value::Text(p)) => Ok(regex::Regex::new(&p)
                        .map_err(|e| format!("matches: bad pattern {p:?}: {e}"))?),
                    other => Err(Box::new(other)),
                };
                left = Node::Matches(Box::new(left), pattern);
                continue;
            }
            let right = self.expression(precedence + 1)?;
            left = Node::Binary(op, Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Node, String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(format!("nested more than {MAX_DEPTH} deep"));
        }
        let node = self.unary_inner();
        self.depth -= 1;
        node
    }

    fn unary_inner(&mut self) -> Result<Node, String> {
        match self.peek() {
            Some(Token::Op("!")) => {
                self.at += 1;
                Ok(Node::Not(Box::new(self.unary()?)))
            }
            Some(Token::Ident(w)) if w == "not" => {
                self.at += 1;
                Ok(Node::Not(Box::new(self.unary()?)))
            }
            Some(Token::Op("-")) => {
                self.at += 1;
                Ok(Node::Negate(Box::new(self.unary()?)))
            }
            _ => self.primary(),
        }
    }

    fn primary(&mut self) -> Result<Node, String> {
        match self.next() {
            Some(Token::Int(n)) => Ok(Node::Literal(Value::Int(n))),
            Some(Token::Text(t)) => Ok(Node::Literal(Value::Text(t))),
            Some(Token::Open) => {
                let inner = self.expression(0)?;
                self.expect(Token::Close, "')'")?;
                Ok(inner)
            }
            Some(Token::OpenList) => {
                let mut items = Vec::new();
                if self.peek() == Some(&Token::CloseList) {
                    self.at += 1;
                    return Ok(Node::List(items));
                }
                loop {
                    items.push(self.expression(0)?);
                    match self.next() {
                        Some(Token::Comma) if self.peek() == Some(&Token::CloseList) => {
                            self.at += 1;
                            break;
                        }
                        Some(Token::Comma) => {}
                        Some(Token::CloseList) => break,
                        _ => return Err("a list is not closed".into()),
                    }
                }
                Ok(Node::List(items))
            }
            Some(Token::Ident(word)) => match word.as_str() {
                "true" => Ok(Node::Literal(Value::Bool(true))),
                "false" => Ok(Node::Literal(Value::Bool(false))),
                "nil" => Ok(Node::Literal(Value::Nil)),
                _ if self.peek() != Some(&Token::Open)
                    && let Some(i) = self.vars.iter().position(|v| *v == word) =>
                {
                    Ok(Node::Var(i))
                }
                _ => {
                    let Some((function, arity)) = Function::named(&word)
                        .filter(|(f, _)| *f != Function::Group || self.groups)
                    else {
                        return Err(format!("unknown name {word:?}"));
                    };
                    self.expect(Token::Open, &format!("'(' after {word}"))?;
                    let mut args = Vec::new();
                    if self.peek() == Some(&Token::Close) {
                        self.at += 1;
                    } else {
                        loop {
                            args.push(self.expression(0)?);
                            match self.next() {
                                Some(Token::Comma) => {}
                                Some(Token::Close) => break,
                                _ => return Err(format!("{word}(...) is not closed")),
                            }
                        }
                    }
                    if args.len() != arity {
                        return Err(format!(
                            "{word}() takes {arity} arguments, {} given",
                            args.len()
                        ));
                    }
                    Ok(Node::Call(function, args))
                }
            },
            Some(t) => Err(format!("unexpected {t:?}")),
            None => Err("unexpected end".into()),
        }
    }
}

/// What an expression is evaluated in: the query, and `template`'s variables and regex
/// captures.
#[derive(Clone, Copy)]
pub struct Scope<'a> {
    pub facts: &'a Facts,
    /// The values of the variables declared before, in order.
    pub vars: &'a [Value],
    /// Captures by name and by index (`"0"`, `"1"`, ...).
    pub groups: Option<&'a std::collections::BTreeMap<String, String>>,
    /// `metadata(label)`: the value the block's plugins give the query, where its `metadata`
    /// collects them (`None`: no label has a value).
    pub meta: Option<MetaFn<'a>>,
}

/// How an expression asks for a metadata label's value.
pub type MetaFn<'a> = &'a dyn Fn(&str) -> Option<String>;

impl std::fmt::Debug for Scope<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scope")
            .field("facts", self.facts)
            .field("vars", &self.vars)
            .field("groups", &self.groups)
            .finish_non_exhaustive()
    }
}

/// Whether `name` may be a variable's: an identifier that is no function, keyword or literal.
pub fn variable_name_ok(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || c == '_')
        && Function::named(name).is_none()
        && ![
            "true",
            "false",
            "nil",
            "and",
            "or",
            "not",
            "in",
            "matches",
            "contains",
            "startsWith",
            "endsWith",
            "len",
            "let",
            "if",
            "else",
        ]
        .contains(&name)
}

impl Expr {
    /// A `view` expression: the query's functions only.
    pub fn parse(text: &str) -> Result<Self, String> {
        Self::parse_in(text, &[], false)
    }

    /// An expression that may name `vars` and, with `groups`, call `group()` (`template`).
    pub fn parse_in(text: &str, vars: &[String], groups: bool) -> Result<Self, String> {
        let mut parser = Parser {
            tokens: tokens(text)?,
            at: 0,
            vars,
            groups,
            depth: 0,
        };
        let root = parser.expression(0)?;
        if let Some(t) = parser.peek() {
            return Err(format!("unexpected {t:?}"));
        }
        Ok(Self {
            text: text.to_string(),
            root,
        })
    }

    /// Whether the expression holds for the query; one that does not evaluate to a boolean,
    /// or fails (a type mismatch, `incidr` of a non-address), is false, as CoreDNS takes it.
    pub fn holds(&self, facts: &Facts) -> Result<bool, String> {
        self.holds_in(&Scope {
            facts,
            vars: &[],
            groups: None,
            meta: None,
        })
    }

    /// [`Self::holds`] with variables and captures.
    pub fn holds_in(&self, scope: &Scope<'_>) -> Result<bool, String> {
        match eval(&self.root, scope)? {
            Value::Bool(b) => Ok(b),
            other => Err(format!("{:?} is {other}, not a boolean", self.text)),
        }
    }

    /// What the expression computes (`template`'s `var`).
    pub fn value(&self, scope: &Scope<'_>) -> Result<Value, String> {
        eval(&self.root, scope)
    }

    pub fn text(&self) -> &str {
        &self.text
    }
}

fn text(v: Value) -> Result<String, String> {
    match v {
        Value::Text(t) => Ok(t),
        other => Err(format!("{other} is not text")),
    }
}

fn call(function: Function, args: &[Node], scope: &Scope<'_>) -> Result<Value, String> {
    let f = scope.facts;
    let ip = |a: std::net::SocketAddr| a.ip().to_canonical().to_string();
    Ok(match function {
        Function::Name => Value::Text(f.name.clone()),
        Function::Type => Value::Text(f.qtype.clone()),
        Function::Class => Value::Text(f.class.clone()),
        Function::ClientIp => Value::Text(ip(f.client)),
        Function::Port => Value::Text(f.client.port().to_string()),
        Function::ServerIp => Value::Text(ip(f.server)),
        Function::ServerPort => Value::Text(f.server.port().to_string()),
        Function::Proto => Value::Text(if f.tcp { "tcp" } else { "udp" }.into()),
        Function::Id => Value::Int(i64::from(f.id)),
        Function::Opcode => Value::Int(i64::from(f.opcode)),
        Function::Do => Value::Bool(f.dnssec_ok),
        Function::Bufsize => Value::Int(i64::from(f.bufsize)),
        Function::Size => Value::Int(f.size as i64),
        Function::Incidr => {
            let address = text(eval(&args[0], scope)?)?;
            let cidr = text(eval(&args[1], scope)?)?;
            let address: std::net::IpAddr = address
                .parse()
                .map_err(|_| "first argument is not an IP address".to_string())?;
            if !cidr.contains('/') {
                return Err(format!("invalid CIDR address: {cidr}"));
            }
            let net = crate::plugin::acl::Net::parse(&cidr)
                .ok_or_else(|| format!("invalid CIDR address: {cidr}"))?;
            Value::Bool(net.contains(address))
        }
        // A label nothing sets is empty, as CoreDNS gives it.
        Function::Metadata => {
            let label = text(eval(&args[0], scope)?)?;
            Value::Text(scope.meta.and_then(|m| m(&label)).unwrap_or_default())
        }
        Function::Group => {
            let key = match eval(&args[0], scope)? {
                Value::Text(t) => t,
                Value::Int(i) => i.to_string(),
                other => return Err(format!("group({other})")),
            };
            Value::Text(
                scope
                    .groups
                    .and_then(|g| g.get(&key).cloned())
                    .unwrap_or_default(),
            )
        }
    })
}

fn eval(node: &Node, f: &Scope<'_>) -> Result<Value, String> {
    Ok(match node {
        Node::Literal(v) => v.clone(),
        Node::List(items) => {
            Value::List(items.iter().map(|i| eval(i, f)).collect::<Result<_, _>>()?)
        }
        Node::Call(function, args) => call(*function, args, f)?,
        Node::Var(i) => f
            .vars
            .get(*i)
            .cloned()
            .ok_or("a variable without a value")?,
        Node::Not(inner) => match eval(inner, f)? {
            Value::Bool(b) => Value::Bool(!b),
            other => return Err(format!("! of {other}")),
        },
        Node::Negate(inner) => match eval(inner, f)? {
            Value::Int(i) => Value::Int(i.checked_neg().ok_or("overflow")?),
            other => return Err(format!("- of {other}")),
        },
        Node::Matches(left, pattern) => {
            let subject = text(eval(left, f)?)?;
            match pattern {
                Ok(re) => Value::Bool(re.is_match(&subject)),
                Err(node) => {
                    let p = text(eval(node, f)?)?;
                    let re = regex::Regex::new(&p).map_err(|e| e.to_string())?;
                    Value::Bool(re.is_match(&subject))
                }
            }
        }
        Node::Binary(Binary::Or, l, r) => match eval(l, f)? {
            Value::Bool(true) => Value::Bool(true),
            Value::Bool(false) => boolean(eval(r, f)?)?,
            other => return Err(format!("{other} || ...")),
        },
        Node::Binary(Binary::And, l, r) => match eval(l, f)? {
            Value::Bool(false) => Value::Bool(false),
            Value::Bool(true) => boolean(eval(r, f)?)?,
            other => return Err(format!("{other} && ...")),
        },
        Node::Binary(op, l, r) => binary(*op, eval(l, f)?, eval(r, f)?)?,
    })
}

fn boolean(v: Value) -> Result<Value, String> {
    match v {
        Value::Bool(_) => Ok(v),
        other => Err(format!("{other} is not a boolean")),
    }
}

fn binary(op: Binary, l: Value, r: Value) -> Result<Value, String> {
    use std::cmp::Ordering;
    let order = |l: &Value, r: &Value| -> Result<Ordering, String> {
        match (l, r) {
            (Value::Int(a), Value::Int(b)) => Ok(a.cmp(b)),
            (Value::Text(a), Value::Text(b)) => Ok(a.cmp(b)),
            _ => Err(format!("cannot compare {l} and {r}")),
        }
    };
    let ints = |l: &Value, r: &Value| match (l, r) {
        (Value::Int(a), Value::Int(b)) => Ok((*a, *b)),
        _ => Err(format!("{l} and {r} are not both numbers")),
    };
    Ok(match op {
        Binary::Eq => Value::Bool(l == r),
        Binary::Ne => Value::Bool(l != r),
        Binary::Lt => Value::Bool(order(&l, &r)? == Ordering::Less),
        Binary::Le => Value::Bool(order(&l, &r)? != Ordering::Greater),
        Binary::Gt => Value::Bool(order(&l, &r)? == Ordering::Greater),
        Binary::Ge => Value::Bool(order(&l, &r)? != Ordering::Less),
        Binary::In | Binary::NotIn => {
            let Value::List(items) = r else {
                return Err(format!("in needs a list, not {r}"));
            };
            Value::Bool(items.contains(&l) == (op == Binary::In))
        }
        Binary::Contains => Value::Bool(text(l)?.contains(&text(r)?)),
        Binary::StartsWith => Value::Bool(text(l)?.starts_with(&text(r)?)),
        Binary::EndsWith => Value::Bool(text(l)?.ends_with(&text(r)?)),
        Binary::Add => match (l, r) {
            (Value::Text(a), Value::Text(b)) => Value::Text(a + &b),
            (l, r) => {
                let (a, b) = ints(&l, &r)?;
                Value::Int(a.checked_add(b).ok_or("overflow")?)
            }
        },
        Binary::Sub | Binary::Mul | Binary::Div | Binary::Rem => {
            let (a, b) = ints(&l, &r)?;
            Value::Int(
                match op {
                    Binary::Sub => a.checked_sub(b),
                    Binary::Mul => a.checked_mul(b),
                    Binary::Div => a.checked_div(b),
                    _ => a.checked_rem(b),
                }
                .ok_or("overflow or division by zero")?,
            )
        }
        Binary::Or | Binary::And | Binary::Matches => {
            unreachable!("evaluated apart in eval")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts {
        Facts {
            name: "abc.x.example.com.".into(),
            qtype: "AAAA".into(),
            class: "IN".into(),
            client: "192.168.10.7:40000".parse().unwrap(),
            server: "10.96.0.10:53".parse().unwrap(),
            tcp: false,
            id: 4242,
            opcode: 0,
            dnssec_ok: true,
            bufsize: 1232,
            size: 40,
        }
    }

    #[test]
    fn coredns_documented_expressions_and_expr_lang_precedence() {
        let f = facts();
        for (text, want) in [
            ("incidr(client_ip(), '192.168.0.0/16')", true),
            ("incidr(client_ip(), '127.0.0.0/24')", false),
            ("type() in ['A', 'AAAA']", true),
            ("type() not in ['A', 'AAAA']", false),
            (r"name() matches '^abc\\..*\\.example\\.com\\.$'", true),
            (r#"name() matches "^xyz""#, false),
            (
                "(type() == 'A' && name() == 'example.com.') || client_ip() == '192.168.10.7'",
                true,
            ),
            ("type() == 'A' && name() == 'x' || true", true),
            ("true || false && false", true),
            ("!(proto() == 'tcp') and do()", true),
            ("not do()", false),
            (
                "bufsize() >= 1232 && size() < 512 && id() == 4242 && opcode() == 0",
                true,
            ),
            (
                "port() == '40000' && server_port() == '53' && server_ip() == '10.96.0.10'",
                true,
            ),
            ("class() == 'IN' && metadata('view/name') == ''", true),
            (
                "name() endsWith 'example.com.' && name() startsWith 'abc' && name() contains '.x.'",
                true,
            ),
            (
                "1 + 2 * 3 == 7 && (1 + 2) * 3 == 9 && 7 % 4 == 3 && -1 < 0",
                true,
            ),
            ("'a' + 'b' == 'ab'", true),
            ("[] == []", true),
        ] {
            let e = Expr::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(e.holds(&f), Ok(want), "{text}");
        }
    }

    #[test]
    fn bad_expressions_are_refused_when_read_and_bad_values_are_errors_when_asked() {
        for (text, error) in [
            ("name(", "unexpected end"),
            ("nosuch()", "unknown name \"nosuch\""),
            ("incidr(client_ip())", "takes 2 arguments"),
            ("name() matches '('", "bad pattern"),
            ("'open", "not closed"),
            ("type() == 'A' )", "unexpected Close"),
            ("type() # 1", "unexpected '#'"),
        ] {
            let e = Expr::parse(text).unwrap_err();
            assert!(e.contains(error), "{text}: {e}");
        }
        let deep = [
            "!".repeat(10_000) + "true",
            format!("{}1{}", "(".repeat(10_000), ")".repeat(10_000)),
            format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000)),
        ];
        for text in &deep {
            let e = Expr::parse(text).unwrap_err();
            assert!(e.contains("nested more than 64 deep"), "{e}");
        }
        let f = facts();
        for text in [
            "name()",
            "incidr('x', '10.0.0.0/8')",
            "incidr(client_ip(), '10.0.0.1')",
            "1 < 'a'",
            "1 / 0 == 1",
            "-(-9223372036854775807 - 1) == 1",
        ] {
            assert!(Expr::parse(text).unwrap().holds(&f).is_err(), "{text}");
        }
    }
}
