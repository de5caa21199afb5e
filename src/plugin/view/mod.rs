//! The `view` directive: a server block takes only the queries its expressions hold for, so
//! blocks of the same zone and port split the queries between them (split DNS by client
//! network, query type, name...), as CoreDNS's `view` plugin routes them.
//!
//! Routing is the handler's ([`crate::answer::Handler`]): for a query's zone it tries the
//! blocks of that zone in the order the Corefile gives them, then those of enclosing zones,
//! and takes the first without a view or whose view holds.

pub mod expr;

use crate::corefile::{ConfigError, Directive, directive_err};
use crate::plugin::setup::{Building, Context, Setup, SetupError};

pub use expr::{Expr, Facts};

const NAME: &str = "view";

/// `view NAME { expr EXPRESSION... }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    pub name: String,
    /// Every one must hold.
    pub exprs: Vec<Expr>,
}

impl View {
    /// Whether the block takes the query: every expression holds (one that fails to evaluate
    /// does not).
    /// Whether every expression holds for `facts`, with `meta` giving `metadata(label)`.
    pub fn admits(&self, facts: &Facts, meta: Option<expr::MetaFn<'_>>) -> bool {
        let scope = expr::Scope {
            facts,
            vars: &[],
            groups: None,
            meta,
        };
        self.exprs.iter().all(|e| match e.holds_in(&scope) {
            Ok(holds) => holds,
            Err(error) => {
                tracing::debug!(view = %self.name, expr = e.text(), %error, "view: expression failed");
                false
            }
        })
    }
}

impl Setup for View {
    fn parse(d: &Directive, _cx: &Context<'_>) -> Result<Self, ConfigError> {
        let [name] = d.args.as_slice() else {
            return Err(directive_err(
                d,
                NAME,
                "Wrong argument count or unexpected line ending after 'view'",
            ));
        };
        let mut view = Self {
            name: name.clone(),
            exprs: Vec::new(),
        };
        for o in &d.block {
            match o.name.as_str() {
                "expr" => {
                    let text = o.args.join(" ");
                    let expr = Expr::parse(&text)
                        .map_err(|e| directive_err(o, NAME, format!("expr {text}: {e}")))?;
                    view.exprs.push(expr);
                }
                other => {
                    return Err(directive_err(
                        o,
                        NAME,
                        format!("unknown property '{other}'"),
                    ));
                }
            }
        }
        Ok(view)
    }

    fn build(&self, b: &mut Building<'_>) -> Result<(), SetupError> {
        b.chain
            .push(super::Plugin::View(std::sync::Arc::new(self.clone())));
        Ok(())
    }
}

/// In the chain, it only passes queries on (the handler reads it to route) and gives its
/// name as `view/name`.
impl super::Phases for View {
    fn metadata(
        &self,
        label: &str,
        _name: &hickory_proto::rr::LowerName,
        _src: std::net::SocketAddr,
        _query: &[u8],
    ) -> Option<String> {
        (label == "view/name").then(|| self.name.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_view_reads_as_coredns_reads_it() {
        let load =
            |text: &str| crate::config::Config::from_text(text, 0, std::path::Path::new("."));
        let c = load(
            ". {\n view split {\n  expr incidr(client_ip(), '10.0.0.0/8')\n  expr type() in ['A', 'AAAA']\n }\n whoami\n}\n. {\n whoami\n}\n",
        )
        .unwrap();
        let v = c.servers[0].get::<View>().unwrap();
        assert_eq!(v.name, "split");
        assert_eq!(v.exprs.len(), 2);
        assert!(c.servers[1].get::<View>().is_none());
        for (text, error) in [
            (". {\n view\n}\n", "Wrong argument count"),
            (". {\n view a b\n}\n", "Wrong argument count"),
            (
                ". {\n view a {\n  match x\n }\n}\n",
                "unknown property 'match'",
            ),
            (". {\n view a {\n  expr name(\n }\n}\n", "expr name(:"),
            (". {\n view a\n view b\n}\n", "once"),
            // Without a view, a zone on a port is still defined once.
            (". {\n whoami\n}\n. {\n whoami\n}\n", "defined twice"),
        ] {
            let e = load(text).unwrap_err().to_string();
            assert!(e.contains(error), "{text:?}: {e}");
        }
    }
}

#[cfg(test)]
mod metadata_tests {
    use crate::plugin::testing::Served;

    /// `metadata(label)` in a view's expression sees what the block's plugins give the query
    /// when the block collects metadata (CoreDNS collects it before asking the view), and
    /// nothing without `metadata`.
    #[test]
    fn a_view_reads_the_blocks_metadata() {
        let corefile = |collect: &str| {
            format!(
                "example.org:0 {{\n {collect}\n view named {{\n  expr metadata('view/name') == 'named'\n }}\n template IN A {{\n  answer \"{{{{ .Name }}}} 60 IN A 10.0.0.1\"\n }}\n}}\n\
                 example.org:0 {{\n template IN A {{\n  answer \"{{{{ .Name }}}} 60 IN A 10.0.0.2\"\n }}\n}}\n"
            )
        };
        let with = Served::new(&corefile("metadata"));
        assert!(with.ask("www.example.org. A").contains("10.0.0.1"));
        let without = Served::new(&corefile(""));
        assert!(without.ask("www.example.org. A").contains("10.0.0.2"));
    }
}
