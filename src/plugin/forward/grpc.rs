//! The `grpc` directive: queries sent to upstreams over gRPC (CoreDNS's `DnsService/Query`,
//! one `DnsPacket { bytes msg = 1; }` each way), as CoreDNS's `grpc` plugin sends them.
//!
//! `grpc FROM TO... { except IGNORED_NAMES...; tls [CERT KEY] [CA]; tls_servername NAME;
//! policy random|round_robin|sequential; fallthrough [ZONES...] }`. It is a `forward` whose
//! upstreams are reached over HTTP/2 (cleartext with prior knowledge, or TLS when `tls` or
//! `tls_servername` is given), one pooled connection per upstream carrying every query at once:
//! the same policies, `except`, cache and dnstap as `forward`, no health checks (each upstream
//! in the policy's order is tried until one answers, within 5 s), its own metrics
//! (`coredns_grpc_*`). A gRPC NotFound status is an NXDOMAIN, as CoreDNS makes it. Under
//! `fallthrough`, an NXDOMAIN or no answer at all for a name in its zones goes on to the next
//! plugin of the chain.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use prost::Message as _;

use super::setup::{ForwardConfig, Policy, stanza};
use crate::corefile::{
    ConfigError, Directive, Fallthrough, arg_count_err, directive_err, parse_zone, resolve,
};
use crate::plugin::Plugin;
use crate::plugin::setup::{Building, Context, Setup, SetupError};
use crate::plugin::tls_client::TlsFiles;

const NAME: &str = "grpc";
/// The method every query is a call of.
pub const PATH: &str = "/coredns.dns.DnsService/Query";
/// The largest DNS message, and the largest gRPC message carrying one (tag and length).
const MAX_DNS: usize = 65535;
pub const MAX_MESSAGE: usize = MAX_DNS + 4;
/// gRPC's NotFound status: CoreDNS answers it with NXDOMAIN.
const NOT_FOUND: u32 = 5;

/// The protobuf message of both directions.
#[derive(Clone, PartialEq, prost::Message)]
struct DnsPacket {
    #[prost(bytes = "vec", tag = "1")]
    msg: Vec<u8>,
}

/// A DNS message as one length-prefixed, uncompressed gRPC message.
pub fn frame(dns: &[u8]) -> Bytes {
    let packet = DnsPacket { msg: dns.to_vec() };
    let len = packet.encoded_len();
    let mut out = BytesMut::with_capacity(5 + len);
    out.put_u8(0);
    out.put_u32(len as u32);
    // Encoding into a buffer with room for it cannot fail.
    let _ = packet.encode(&mut out);
    out.freeze()
}

/// The DNS message of a body holding one gRPC message.
pub fn unframe(mut body: Bytes) -> Result<Vec<u8>, String> {
    if body.len() < 5 {
        return Err("the gRPC message is cut short".into());
    }
    if body.get_u8() != 0 {
        return Err("a compressed gRPC message (none was offered)".into());
    }
    let len = body.get_u32() as usize;
    if len > MAX_MESSAGE {
        return Err(format!("a gRPC message of {len} bytes: too large"));
    }
    if body.len() < len {
        return Err("the gRPC message is cut short".into());
    }
    let packet = DnsPacket::decode(body.split_to(len)).map_err(|e| e.to_string())?;
    if packet.msg.len() > MAX_DNS {
        return Err("the DNS message is too large".into());
    }
    Ok(packet.msg)
}

/// `tls` and `tls_servername`, and `fallthrough`: what makes a `forward` a `grpc`.
#[derive(Debug, Clone, Default)]
pub struct GrpcTransport {
    /// TLS to the upstreams (`tls`, or `tls_servername` alone: the system's CAs).
    pub tls: Option<TlsFiles>,
    pub server_name: Option<String>,
    pub fallthrough: Fallthrough,
}

/// What went wrong in one call.
#[derive(Debug)]
pub enum CallError {
    /// The upstream's gRPC status says NotFound.
    NotFound,
    Failed(String),
}

/// The calls to every upstream of one `grpc` line: one HTTP/2 client, pooling a connection
/// per upstream.
#[derive(Debug, Clone)]
pub struct GrpcClient {
    http: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    scheme: &'static str,
}

impl GrpcClient {
    pub fn new(transport: &GrpcTransport) -> Result<Self, String> {
        let tls = transport.tls.is_some() || transport.server_name.is_some();
        let config = match &transport.tls {
            Some(files) => files.config()?,
            None if tls => TlsFiles::default().config()?,
            None => TlsFiles::plain()?,
        };
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(Duration::from_secs(5)));
        let builder = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config);
        let builder = if tls {
            builder.https_only()
        } else {
            builder.https_or_http()
        };
        let builder = match &transport.server_name {
            Some(name) => {
                let name = rustls_pki_types::ServerName::try_from(name.clone())
                    .map_err(|e| format!("tls_servername {name:?}: {e}"))?;
                builder.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name))
            }
            None => builder,
        };
        let connector = builder.enable_http2().wrap_connector(http);
        let http = Client::builder(TokioExecutor::new())
            .http2_only(true)
            .pool_idle_timeout(Duration::from_secs(90))
            .build(connector);
        Ok(Self {
            http,
            scheme: if tls { "https" } else { "http" },
        })
    }

    /// One query to `to`: the DNS message it answers with.
    pub async fn call(&self, to: SocketAddr, query: &[u8]) -> Result<Vec<u8>, CallError> {
        let failed = |e: &dyn std::fmt::Display| CallError::Failed(e.to_string());
        let request = hyper::Request::post(format!("{}://{to}{PATH}", self.scheme))
            .header(hyper::header::CONTENT_TYPE, "application/grpc")
            .header(hyper::header::TE, "trailers")
            .header(hyper::header::USER_AGENT, "clusterdns")
            .body(Full::new(frame(query)))
            .map_err(|e| failed(&e))?;
        let response = self
            .http
            .request(request)
            .await
            .map_err(|e| CallError::Failed(crate::plugin::tls_client::error_chain(&e)))?;
        let (parts, body) = response.into_parts();
        if parts.status != hyper::StatusCode::OK {
            return Err(CallError::Failed(format!("HTTP status {}", parts.status)));
        }
        let collected = Limited::new(body, MAX_MESSAGE + 5)
            .collect()
            .await
            .map_err(|e| failed(&e))?;
        // The status comes in the trailers, or in the headers of a response without a body.
        let trailers = collected.trailers().cloned();
        let status_of = |h: &hyper::HeaderMap| -> Option<(u32, String)> {
            let code = h.get("grpc-status")?.to_str().ok()?.parse().ok()?;
            let message = h
                .get("grpc-message")
                .and_then(|m| m.to_str().ok())
                .unwrap_or("")
                .to_string();
            Some((code, message))
        };
        let status = trailers
            .as_ref()
            .and_then(status_of)
            .or_else(|| status_of(&parts.headers));
        match status {
            Some((0, _)) => unframe(collected.to_bytes()).map_err(CallError::Failed),
            Some((NOT_FOUND, _)) => Err(CallError::NotFound),
            Some((code, message)) => {
                Err(CallError::Failed(format!("gRPC status {code}: {message}")))
            }
            None => Err(CallError::Failed("no gRPC status".into())),
        }
    }
}

/// The `grpc` line of a block.
#[derive(Debug, Clone)]
pub struct GrpcConfig {
    pub forward: ForwardConfig,
}

impl Setup for GrpcConfig {
    fn parse(d: &Directive, cx: &Context<'_>) -> Result<Self, ConfigError> {
        let [from, to @ ..] = d.args.as_slice() else {
            return Err(arg_count_err(d, NAME));
        };
        if to.is_empty() {
            return Err(arg_count_err(d, NAME));
        }
        parse_zone(from).map_err(|m| directive_err(d, NAME, m))?;
        let dir = cx.root.unwrap_or(cx.dir);
        // FROM and TO as `forward` reads them (an address, `IP:PORT`, a resolv.conf file).
        let plain = Directive {
            block: Vec::new(),
            ..d.clone()
        };
        let mut forward = stanza(&plain, NAME, cx.dir)?;
        // No health checks: every upstream stays in the list; 5 s for all of them together.
        forward.max_fails = 0;
        forward.read_timeout = super::TOTAL_TIMEOUT;
        let mut transport = GrpcTransport::default();
        for o in &d.block {
            match o.name.as_str() {
                "except" => forward.except.extend(super::setup::except(o, NAME)?),
                "tls" => {
                    let files: Vec<_> = o.args.iter().map(|a| resolve(dir, a)).collect();
                    let tls = TlsFiles::from_args(&files).ok_or_else(|| arg_count_err(o, NAME))?;
                    // Read now, so a wrong file stops the start with this line.
                    tls.config().map_err(|e| directive_err(o, NAME, e))?;
                    transport.tls = Some(tls);
                }
                "tls_servername" => {
                    let [name, ..] = o.args.as_slice() else {
                        return Err(arg_count_err(o, NAME));
                    };
                    rustls_pki_types::ServerName::try_from(name.clone())
                        .map_err(|e| directive_err(o, NAME, format!("{name:?}: {e}")))?;
                    transport.server_name = Some(name.clone());
                }
                "policy" => {
                    let [policy, ..] = o.args.as_slice() else {
                        return Err(arg_count_err(o, NAME));
                    };
                    forward.policy = match policy.as_str() {
                        "random" => Policy::Random,
                        "round_robin" => Policy::RoundRobin,
                        "sequential" => Policy::Sequential,
                        other => {
                            return Err(directive_err(
                                o,
                                NAME,
                                format!("unknown policy '{other}'"),
                            ));
                        }
                    };
                }
                "fallthrough" => transport.fallthrough = Fallthrough::parse(&o.args, o, NAME)?,
                other => {
                    return Err(directive_err(
                        o,
                        NAME,
                        format!("unknown property '{other}'"),
                    ));
                }
            }
        }
        forward.grpc = Some(transport);
        Ok(Self { forward })
    }

    fn build(&self, b: &mut Building<'_>) -> Result<(), SetupError> {
        let transport = self.forward.grpc.as_ref().expect("set when read");
        let client = GrpcClient::new(transport).map_err(SetupError::File)?;
        let forward = super::setup::built(b, &self.forward, None, Some(client))?;
        b.chain.push(Plugin::Grpc(forward));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::testing::settings;

    fn read(lines: &str) -> Result<GrpcConfig, String> {
        settings::<GrpcConfig>(lines)
    }

    #[test]
    fn lines_read_as_coredns_reads_them() {
        let c = read("grpc example.org 10.0.0.1 10.0.0.2:9005 [::1]:53").unwrap();
        let f = &c.forward;
        assert_eq!(f.from.to_string(), "example.org.");
        let to: Vec<String> = super::super::setup::resolved(f)
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(to, ["10.0.0.1:53", "10.0.0.2:9005", "[::1]:53"]);
        assert_eq!(f.policy, Policy::Random);
        assert_eq!(f.max_fails, 0, "no health checks");
        let g = f.grpc.as_ref().unwrap();
        assert!(g.tls.is_none() && g.server_name.is_none() && !g.fallthrough.is_set());

        let c = read(
            "grpc . 10.0.0.1 {\n except a.example b.example\n tls\n tls_servername dns.quad9.net\n \
             policy round_robin\n fallthrough example.org\n}",
        )
        .unwrap();
        let f = &c.forward;
        let except: Vec<String> = f.except.iter().map(ToString::to_string).collect();
        assert_eq!(except, ["a.example.", "b.example."]);
        assert_eq!(f.policy, Policy::RoundRobin);
        let g = f.grpc.as_ref().unwrap();
        assert!(g.tls.is_some());
        assert_eq!(g.server_name.as_deref(), Some("dns.quad9.net"));
        let name = |n: &str| {
            hickory_proto::rr::LowerName::from(hickory_proto::rr::Name::from_ascii(n).unwrap())
        };
        assert!(g.fallthrough.through(&name("x.example.org.")));
        assert!(!g.fallthrough.through(&name("x.example.net.")));
    }

    #[test]
    fn bad_lines_are_refused_with_coredns_reasons() {
        for (lines, want) in [
            ("grpc", "Wrong argument count"),
            ("grpc .", "Wrong argument count"),
            (
                "grpc . 10.0.0.1 {\n policy fastest\n}",
                "unknown policy 'fastest'",
            ),
            ("grpc . 10.0.0.1 {\n policy\n}", "Wrong argument count"),
            (
                "grpc . 10.0.0.1 {\n except\n}",
                "except needs at least one zone",
            ),
            ("grpc . 10.0.0.1 {\n tls a b c d\n}", "Wrong argument count"),
            (
                "grpc . 10.0.0.1 {\n tls /nonexistent/ca.pem\n}",
                "/nonexistent/ca.pem",
            ),
            (
                "grpc . 10.0.0.1 {\n tls_servername\n}",
                "Wrong argument count",
            ),
            (
                "grpc . 10.0.0.1 {\n max_fails 3\n}",
                "unknown property 'max_fails'",
            ),
            (
                "grpc . 10.0.0.1\ngrpc . 10.0.0.2",
                "can only be used once per server block",
            ),
        ] {
            let err = read(lines).expect_err(lines);
            assert!(err.contains(want), "{lines}: {err}");
        }
    }

    #[test]
    fn messages_are_framed_as_grpc_and_protobuf_carry_them() {
        let dns = [0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1];
        let framed = frame(&dns);
        // Uncompressed, a length, then field 1 (bytes) holding the message.
        assert_eq!(&framed[..7], &[0, 0, 0, 0, 19, 0x0a, 17]);
        assert_eq!(unframe(framed).unwrap(), dns);
        // A message over 127 bytes takes a two-byte length.
        let long = vec![7u8; 300];
        let framed = frame(&long);
        assert_eq!(&framed[5..8], &[0x0a, 0xac, 0x02]);
        assert_eq!(unframe(framed).unwrap(), long);
        for (bad, why) in [
            (&[0u8, 0, 0][..], "cut short"),
            (&[1, 0, 0, 0, 0][..], "compressed"),
            (&[0, 0, 0, 0, 5, 0x0a][..], "cut short"),
            (&[0, 0xff, 0xff, 0xff, 0xff][..], "too large"),
        ] {
            let err = unframe(Bytes::copy_from_slice(bad)).expect_err(why);
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }
}
