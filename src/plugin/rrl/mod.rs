//! `rrl`: response rate limiting over UDP, as CoreDNS's external `rrl` plugin and BIND 9 do it.
//!
//! A UDP source address can be forged, so a server can be made to send its answers to a
//! victim. Each response is accounted to the client's address prefix and its kind (an answer
//! for a name and type, NODATA for a name, NXDOMAIN or a referral for a zone, any error); each
//! account earns its kind's allowance per second and pays one response's worth for each
//! response. An account in debt has its responses dropped, except every `slip-ratio`th, which
//! goes out empty with TC set so a real client asks again over TCP (which proves its address,
//! and is never limited). Credit is capped at one second's allowance (the burst a quiet
//! client gets), debt at `window` seconds' (the longest a client stays limited once it stops).
//!
//! Accounts live in a table of fixed size allocated at start: buckets of [`WAYS`] accounts,
//! each bucket behind its own lock, an account found by a keyed hash of its key. When a bucket
//! is full, the account with the most credit (the least recently in debt) makes room: so
//! memory never grows, and forged sources can push out only accounts that hold nothing a fresh
//! one would not. Per query: a clock read, one hash, one bucket lock; no allocation.

pub mod setup;

pub use setup::RrlConfig;

use crate::wire::Transport;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use tracing::debug;

use crate::wire::{self, HEADER_LEN, Header, HeaderMut, MAX_NAME, Pointers};

/// Accounts per bucket: a new account replaces the one with the most credit among these.
pub const WAYS: usize = 8;
const SECOND: i64 = 1_000_000_000;
const OPT: u16 = 41;
const NS: u16 = 2;

/// What a response (or a query) is accounted as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    /// Answer records: per name and type.
    Response = 0,
    /// NOERROR without answers: per name, whatever the type.
    Nodata = 1,
    /// Per the zone that said so (its SOA's owner).
    Nxdomain = 2,
    /// Per delegated zone and type.
    Referral = 3,
    /// Any other rcode: one account per client.
    Error = 4,
    /// `requests-per-second`: one account per client.
    Request = 5,
}

/// What happens to one response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Answer,
    Drop,
    /// Sent with TC and nothing but its question (and OPT).
    Slip,
}

/// One server block's `rrl`.
#[derive(Debug)]
pub struct Rrl {
    /// The zones it limits.
    zones: wire::Zones,
    /// Nanoseconds per response, by [`Category`]; 0: not limited.
    intervals: [i64; 6],
    /// The most debt an account holds, in nanoseconds.
    window: i64,
    ipv4_mask: u32,
    ipv6_mask: u128,
    slip_ratio: u32,
    report_only: bool,
    table: Table,
    /// Keys the account hashes, so nobody outside can aim at one bucket.
    hasher: RandomState,
    epoch: Instant,
}

/// Over UDP only: a TCP client has proven its address.
impl super::Phases for Rrl {
    fn admit(&self, query: &[u8], src: std::net::SocketAddr, transport: Transport) -> bool {
        transport == Transport::Tcp || self.request(query, src.ip())
    }

    fn respond(
        &self,
        response: &mut Vec<u8>,
        _query: &[u8],
        src: std::net::SocketAddr,
        transport: Transport,
        _limit: usize,
    ) -> bool {
        transport == Transport::Tcp || self.response(response, src.ip())
    }
}

impl Rrl {
    pub fn new(c: &RrlConfig) -> Self {
        let interval = |per_second: f64| {
            if per_second > 0.0 {
                // At least 1 ns; a tiny rate saturates to "one in 292 years".
                ((SECOND as f64 / per_second) as i64).max(1)
            } else {
                0
            }
        };
        Self {
            zones: wire::Zones::new(&c.zones),
            intervals: [
                interval(c.responses),
                interval(c.nodata),
                interval(c.nxdomains),
                interval(c.referrals),
                interval(c.errors),
                interval(c.requests),
            ],
            window: i64::try_from(c.window.as_nanos()).unwrap_or(i64::MAX),
            ipv4_mask: super::acl::v4_mask(c.ipv4_prefix),
            ipv6_mask: super::acl::v6_mask(c.ipv6_prefix),
            slip_ratio: c.slip_ratio,
            report_only: c.report_only,
            table: Table::new(c.max_table_size),
            hasher: RandomState::new(),
            epoch: Instant::now(),
        }
    }

    /// `requests-per-second`: whether the UDP query `query` from `client` is answered at all.
    /// Over the allowance it is dropped (never slipped: there is no response to cut).
    pub fn request(&self, query: &[u8], client: IpAddr) -> bool {
        let interval = self.intervals[Category::Request as usize];
        if interval == 0 {
            return true;
        }
        let mut name = [0; MAX_NAME];
        if self.covered(query, &mut name).is_none() {
            return true;
        }
        let key = self.key(client, Category::Request, 0, &[]);
        match self.debit(key, interval, 0, self.now()) {
            Verdict::Answer => true,
            _ => {
                crate::metrics::metrics().rrl_exceeded(true, client);
                debug!(%client, "rrl: request rate exceeded");
                self.report_only
            }
        }
    }

    /// Whether the UDP response in `response` goes to `client`. A slipped one is cut in place
    /// to its header, question and OPT, with TC set.
    pub fn response(&self, response: &mut Vec<u8>, client: IpAddr) -> bool {
        let mut qname = [0; MAX_NAME];
        let Some(qname_len) = self.covered(response, &mut qname) else {
            return true;
        };
        let Some((category, qtype, name)) = classify(response) else {
            return true;
        };
        let interval = self.intervals[category as usize];
        if interval == 0 {
            return true;
        }
        let key = match name {
            Named::Question => self.key(client, category, qtype, &qname[..qname_len]),
            Named::At(at) => {
                let mut owner = [0; MAX_NAME];
                let len = wire::read_name(response, at, &mut owner, Pointers::Follow)
                    .map_or(0, |(len, _)| len);
                self.key(client, category, qtype, &owner[..len])
            }
            Named::Nothing => self.key(client, category, qtype, &[]),
        };
        let verdict = self.debit(key, interval, self.slip_ratio, self.now());
        if verdict == Verdict::Answer {
            return true;
        }
        crate::metrics::metrics().rrl_exceeded(false, client);
        debug!(%client, ?category, ?verdict, "rrl: response rate exceeded");
        if self.report_only {
            return true;
        }
        if verdict == Verdict::Slip {
            slip(response);
            return true;
        }
        false
    }

    /// The question's name of `message`, read into `name` (lowercase wire format), when it
    /// lies in the zones limited: its length.
    fn covered(&self, message: &[u8], name: &mut [u8; MAX_NAME]) -> Option<usize> {
        let (len, _) = wire::read_name(message, HEADER_LEN, name, Pointers::Follow)?;
        self.zones.holds_wire(&name[..len]).then_some(len)
    }

    /// The account's key: a keyed hash of the client's prefix, the category, and the type and
    /// name that category tells apart.
    fn key(&self, client: IpAddr, category: Category, qtype: u16, name: &[u8]) -> u64 {
        let (family, prefix) = match client.to_canonical() {
            IpAddr::V4(v4) => (4u8, u128::from(u32::from(v4) & self.ipv4_mask)),
            IpAddr::V6(v6) => (6u8, u128::from(v6) & self.ipv6_mask),
        };
        let qtype = match category {
            Category::Response | Category::Referral => qtype,
            _ => 0,
        };
        self.hasher
            .hash_one((family, prefix, category as u8, qtype, name))
    }

    fn now(&self) -> i64 {
        i64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(i64::MAX)
    }

    /// One response (`interval` nanoseconds' worth) paid from account `key` at `now`.
    /// A new account starts with full credit. With `slip_ratio` N, every Nth response the
    /// account could not pay for slips.
    pub(crate) fn debit(&self, key: u64, interval: i64, slip_ratio: u32, now: i64) -> Verdict {
        // Credit holds one second's allowance, or one response when that is less than one.
        let cap = SECOND.max(interval);
        self.table.account(key, now.saturating_sub(cap), |a| {
            let credit = now.saturating_sub(a.allow).min(cap);
            let balance = credit.saturating_sub(interval).max(-self.window);
            a.allow = now.saturating_sub(balance);
            if balance >= 0 {
                return Verdict::Answer;
            }
            if slip_ratio == 0 {
                return Verdict::Drop;
            }
            a.limited += 1;
            if a.limited >= slip_ratio {
                a.limited = 0;
                Verdict::Slip
            } else {
                Verdict::Drop
            }
        })
    }
}

/// Where the name a category is accounted by comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Named {
    Question,
    /// The owner of the first authority record, at this offset.
    At(usize),
    Nothing,
}

/// What the response in `message` is accounted as, its question's type, and by which name.
/// `None` if it has no question to read.
fn classify(message: &[u8]) -> Option<(Category, u16, Named)> {
    let header = Header::of(message).filter(|h| h.questions() == 1)?;
    let question_end = wire::question_end(message)?;
    let qtype = u16::from_be_bytes([message[question_end - 4], message[question_end - 3]]);
    let rcode = header.rcode_low();
    let truncated = header.truncated();
    let (answers, authority) = (header.answers(), header.authority());
    // A response cut for size is taken for the answer it would have been.
    if answers > 0 || truncated {
        return Some((Category::Response, qtype, Named::Question));
    }
    let first_authority = (authority > 0).then_some(question_end);
    Some(match rcode {
        // NXDOMAIN: per the zone that says so.
        3 => (
            Category::Nxdomain,
            qtype,
            first_authority.map_or(Named::Nothing, Named::At),
        ),
        0 => match first_authority {
            Some(at) if record_type(message, at) == Some(NS) => {
                (Category::Referral, qtype, Named::At(at))
            }
            _ => (Category::Nodata, qtype, Named::Question),
        },
        _ => (Category::Error, qtype, Named::Nothing),
    })
}

/// The type of the record starting at `at`.
fn record_type(message: &[u8], at: usize) -> Option<u16> {
    let fixed = wire::skip_name(message, at)?;
    let t = message.get(fixed..fixed + 2)?;
    Some(u16::from_be_bytes([t[0], t[1]]))
}

/// Cuts `response` to a slip: its header with TC set and no records but its OPT, its question.
fn slip(response: &mut Vec<u8>) {
    let Some(mut header) = HeaderMut::of(response) else {
        return;
    };
    header.set_truncated();
    let questions = header.get().questions();
    let Some(question_end) = wire::question_end(response).filter(|_| questions == 1) else {
        response.truncate(HEADER_LEN);
        if let Some(mut header) = HeaderMut::of(response) {
            header.clear_counts();
        }
        return;
    };
    let opt = find_opt(response);
    let end = match opt {
        Some((start, end)) => {
            response.copy_within(start..end, question_end);
            question_end + (end - start)
        }
        None => question_end,
    };
    response.truncate(end);
    if let Some(mut header) = HeaderMut::of(response) {
        header.set_counts(0, 0, u16::from(opt.is_some()));
    }
}

/// Where the OPT record of a response is (its first byte and the one after it), if it has one.
fn find_opt(message: &[u8]) -> Option<(usize, usize)> {
    let header = Header::of(message)?;
    let before = usize::from(header.answers()) + usize::from(header.authority());
    for record in wire::records_after_question(message) {
        let record = record?;
        if record.index >= before && record.rtype == OPT {
            return Some((record.start, record.data.end));
        }
    }
    None
}

/// One account: its key (0: none), when its balance was zero (nanoseconds from the epoch;
/// the balance is the time since, capped), and its limited responses since the last slip.
#[derive(Debug, Clone, Copy, Default)]
struct Account {
    key: u64,
    allow: i64,
    limited: u32,
}

/// The accounts: a fixed number of buckets of [`WAYS`], each behind its own lock.
struct Table {
    buckets: Box<[Mutex<[Account; WAYS]>]>,
    /// Accounts used in each bucket (fewer than [`WAYS`] only in a table smaller than that).
    ways: usize,
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table")
            .field("buckets", &self.buckets.len())
            .field("ways", &self.ways)
            .finish()
    }
}

impl Table {
    /// Room for at most `size` accounts (at least one).
    fn new(size: usize) -> Self {
        let ways = size.clamp(1, WAYS);
        let buckets = (size / ways).max(1);
        Self {
            buckets: (0..buckets)
                .map(|_| Mutex::new([Account::default(); WAYS]))
                .collect(),
            ways,
        }
    }

    /// How many accounts it can hold.
    #[cfg(test)]
    fn capacity(&self) -> usize {
        self.buckets.len() * self.ways
    }

    /// How many accounts it holds.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.buckets
            .iter()
            .map(|b| {
                let b = b.lock().unwrap_or_else(PoisonError::into_inner);
                b[..self.ways].iter().filter(|a| a.key != 0).count()
            })
            .sum()
    }

    /// Runs `f` on account `key`, made with `allow` when it is not there; it takes the place
    /// of an empty one, or of the one with the most credit, in its bucket.
    fn account<R>(&self, key: u64, allow: i64, f: impl FnOnce(&mut Account) -> R) -> R {
        let key = key.max(1);
        let bucket = ((u128::from(key) * self.buckets.len() as u128) >> 64) as usize;
        let mut bucket = self.buckets[bucket]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let accounts = &mut bucket[..self.ways];
        let i = match accounts.iter().position(|a| a.key == key) {
            Some(i) => i,
            None => {
                let (i, _) = accounts
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, a)| if a.key == 0 { i64::MIN } else { a.allow })
                    .expect("a bucket has at least one account");
                accounts[i] = Account {
                    key,
                    allow,
                    limited: 0,
                };
                i
            }
        };
        f(&mut accounts[i])
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv6Addr;
    use std::path::Path;

    use super::*;
    use crate::config::Config;

    const MS: i64 = 1_000_000;

    fn rrl(options: &str) -> Rrl {
        let c = Config::from_text(
            &format!(".:53 {{\n rrl {{\n{options}\n }}\n}}\n"),
            53,
            Path::new("."),
        )
        .unwrap();
        Rrl::new(c.servers[0].get::<RrlConfig>().unwrap())
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// `n` responses of one account at `now`: how many of each verdict.
    fn burst(r: &Rrl, key: u64, n: usize, now: i64) -> [usize; 3] {
        let interval = r.intervals[Category::Response as usize];
        let mut out = [0; 3];
        for _ in 0..n {
            out[r.debit(key, interval, r.slip_ratio, now) as usize] += 1;
        }
        out
    }

    /// A response message: `rcode`, `answers` A records for `name`, and `authority` records
    /// (NS or SOA) owned by `zone`; an OPT when `opt`.
    fn response(
        name: &str,
        qtype: u16,
        rcode: u8,
        answers: u16,
        authority: Option<(u16, &str)>,
        opt: bool,
    ) -> Vec<u8> {
        let wire_name = |n: &str| {
            let mut w = Vec::new();
            for label in n.split('.').filter(|l| !l.is_empty()) {
                w.push(label.len() as u8);
                w.extend_from_slice(label.as_bytes());
            }
            w.push(0);
            w
        };
        let mut m = vec![0x12, 0x34, 0x84, rcode, 0, 1];
        m.extend_from_slice(&answers.to_be_bytes());
        m.extend_from_slice(&u16::from(authority.is_some()).to_be_bytes());
        m.extend_from_slice(&u16::from(opt).to_be_bytes());
        m.extend(wire_name(name));
        m.extend_from_slice(&qtype.to_be_bytes());
        m.extend_from_slice(&[0, 1]);
        for _ in 0..answers {
            m.extend_from_slice(&[0xC0, 0x0C, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 10, 0, 0, 1]);
        }
        if let Some((rtype, zone)) = authority {
            m.extend(wire_name(zone));
            m.extend_from_slice(&rtype.to_be_bytes());
            m.extend_from_slice(&[0, 1, 0, 0, 0, 30, 0, 2, 0xC0, 0x0C]);
        }
        if opt {
            m.extend_from_slice(&wire::opt(1232, 0, false));
        }
        m
    }

    #[test]
    fn a_burst_gets_one_seconds_allowance_then_the_window_bounds_the_debt() {
        let r = rrl("  responses-per-second 10\n  window 1");
        // 100 at one instant: the fresh account's second of credit pays for 10.
        assert_eq!(burst(&r, 7, 100, 0), [10, 90, 0]);
        // The debt is capped at the window (1 s) and paying for the next one takes 100 ms:
        // nothing before 1.1 s (a response refused still costs its 100 ms)...
        assert_eq!(burst(&r, 7, 1, 1_099 * MS), [0, 1, 0]);
        assert_eq!(burst(&r, 7, 1, 1_199 * MS), [0, 1, 0]);
        // ... and then one per 100 ms.
        assert_eq!(burst(&r, 7, 1, 1_300 * MS), [1, 0, 0]);
        assert_eq!(burst(&r, 7, 1, 1_400 * MS), [1, 0, 0]);
        assert_eq!(burst(&r, 7, 1, 1_450 * MS), [0, 1, 0]);
        // Idle long enough, the credit is back to one second's worth, not more.
        assert_eq!(burst(&r, 7, 100, 60_000 * MS), [10, 90, 0]);
    }

    #[test]
    fn a_steady_client_within_its_allowance_is_never_limited() {
        let r = rrl("  responses-per-second 10\n  window 5");
        for i in 0..1000 {
            assert_eq!(burst(&r, 1, 1, i * 100 * MS), [1, 0, 0], "response {i}");
        }
        // Twice the allowance: what is refused costs too (as in BIND), so only the first
        // second's credit, and what it earns while it lasts, is answered: 900 ms, less 50 ms
        // a response, pays for 18 more after the first. The debt then stays at the window.
        let mut answered = 0;
        for i in 0..2000 {
            answered += burst(&r, 2, 1, i * 50 * MS)[0];
        }
        assert_eq!(answered, 19);
        // Slowing down to the allowance is not enough while the debt lasts; after the
        // window (5 s) it is.
        let t = 2000 * 50 * MS;
        assert_eq!(burst(&r, 2, 1, t), [0, 1, 0]);
        assert_eq!(burst(&r, 2, 1, t + 5_000 * MS), [0, 1, 0]);
        assert_eq!(burst(&r, 2, 1, t + 5_200 * MS), [1, 0, 0]);
    }

    #[test]
    fn every_nth_limited_response_slips() {
        for (ratio, slips) in [(1, 90), (2, 45), (3, 30), (4, 22), (0, 0)] {
            let r = rrl(&format!("  responses-per-second 10\n  slip-ratio {ratio}"));
            assert_eq!(
                burst(&r, 9, 100, 0),
                [10, 90 - slips, slips],
                "slip-ratio {ratio}"
            );
        }
        let r = rrl("  responses-per-second 10\n  slip-ratio 2");
        let order: Vec<Verdict> = (0..14)
            .map(|_| r.debit(3, 100 * MS, 2, 0))
            .skip(10)
            .collect();
        assert_eq!(
            order,
            [Verdict::Drop, Verdict::Slip, Verdict::Drop, Verdict::Slip]
        );
    }

    #[test]
    fn fractional_allowances_still_let_one_through() {
        let r = rrl("  responses-per-second 0.5\n  window 1");
        assert_eq!(burst(&r, 5, 10, 0), [1, 9, 0]);
        assert_eq!(burst(&r, 5, 1, 2_999 * MS), [0, 1, 0]);
        assert_eq!(burst(&r, 5, 1, 6_000 * MS), [1, 0, 0]);
    }

    #[test]
    fn clients_are_accounted_by_prefix() {
        let r = rrl("  responses-per-second 10");
        let key = |s: &str| r.key(ip(s), Category::Response, 1, b"\x03www\x00");
        assert_eq!(key("192.0.2.1"), key("192.0.2.254"), "one /24");
        assert_eq!(key("192.0.2.1"), key("::ffff:192.0.2.9"), "mapped is IPv4");
        assert_ne!(key("192.0.2.1"), key("192.0.3.1"));
        assert_eq!(
            key("2001:db8:0:100::1"),
            key("2001:db8:0:1ff:ffff::"),
            "one /56"
        );
        assert_ne!(key("2001:db8:0:100::1"), key("2001:db8:0:200::1"));
        let host =
            rrl("  responses-per-second 10\n  ipv4-prefix-length 32\n  ipv6-prefix-length 128");
        let key = |s: &str| host.key(ip(s), Category::Response, 1, b"\x03www\x00");
        assert_ne!(key("192.0.2.1"), key("192.0.2.2"));
        assert_ne!(key("2001:db8::1"), key("2001:db8::2"));
        let one_bit =
            rrl("  responses-per-second 10\n  ipv4-prefix-length 1\n  ipv6-prefix-length 1");
        let key = |s: &str| one_bit.key(ip(s), Category::Error, 0, &[]);
        assert_eq!(key("1.2.3.4"), key("127.255.0.1"));
        assert_ne!(key("1.2.3.4"), key("128.0.0.1"));
        assert_eq!(key("::1"), key(&Ipv6Addr::from(u128::MAX >> 1).to_string()));
    }

    #[test]
    fn categories_are_accounted_as_bind_does() {
        let r = rrl("  responses-per-second 1\n  ipv4-prefix-length 32");
        let c = ip("192.0.2.1");
        let answered = |r: &Rrl, m: Vec<u8>| {
            let mut m = m;
            r.response(&mut m, c)
        };
        // An answer: per name and type.
        assert!(answered(&r, response("a.example", 1, 0, 1, None, false)));
        assert!(!answered(&r, response("A.Example", 1, 0, 1, None, false)));
        assert!(answered(&r, response("a.example", 28, 0, 1, None, false)));
        assert!(answered(&r, response("b.example", 1, 0, 1, None, false)));
        // NODATA: per name, any type.
        assert!(answered(
            &r,
            response("a.example", 16, 0, 0, Some((6, "example")), false)
        ));
        assert!(!answered(
            &r,
            response("a.example", 99, 0, 0, Some((6, "example")), false)
        ));
        // NXDOMAIN: per zone, whatever the name.
        assert!(answered(
            &r,
            response("x.example", 1, 3, 0, Some((6, "example")), false)
        ));
        assert!(!answered(
            &r,
            response("y.example", 1, 3, 0, Some((6, "EXAMPLE")), false)
        ));
        assert!(answered(
            &r,
            response("y.other", 1, 3, 0, Some((6, "other")), false)
        ));
        // A referral: per delegated zone and type.
        assert!(answered(
            &r,
            response("z.sub.example", 1, 0, 0, Some((2, "sub.example")), false)
        ));
        assert!(!answered(
            &r,
            response("w.sub.example", 1, 0, 0, Some((2, "sub.example")), false)
        ));
        // Errors: one account per client.
        assert!(answered(&r, response("a.example", 1, 2, 0, None, false)));
        assert!(!answered(&r, response("q.other", 255, 5, 0, None, false)));
        // Another client has its own.
        assert!(r.response(
            &mut response("q.other", 255, 5, 0, None, false),
            ip("192.0.2.2")
        ));
    }

    #[test]
    fn a_zero_allowance_leaves_its_kind_alone() {
        let r = rrl("  responses-per-second 1\n  nxdomains-per-second 0");
        let c = ip("192.0.2.1");
        for _ in 0..10 {
            assert!(r.response(
                &mut response("x.example", 1, 3, 0, Some((6, "example")), false),
                c
            ));
        }
        let off = rrl("  window 1");
        for _ in 0..10 {
            assert!(off.response(&mut response("a.example", 1, 0, 1, None, false), c));
            assert!(off.request(&response("a.example", 1, 0, 0, None, false), c));
        }
    }

    #[test]
    fn only_names_in_its_zones_are_limited() {
        let c = Config::from_text(
            ".:53 {\n rrl limited.example {\n  responses-per-second 1\n }\n}\n",
            53,
            Path::new("."),
        )
        .unwrap();
        let r = Rrl::new(c.servers[0].get::<RrlConfig>().unwrap());
        let client = ip("192.0.2.1");
        for _ in 0..5 {
            assert!(r.response(&mut response("free.example", 1, 0, 1, None, false), client));
        }
        assert!(r.response(
            &mut response("a.limited.example", 1, 0, 1, None, false),
            client
        ));
        assert!(!r.response(
            &mut response("a.limited.example", 1, 0, 1, None, false),
            client
        ));
    }

    #[test]
    fn a_slip_is_the_question_with_tc_and_the_opt() {
        let r = rrl("  responses-per-second 1\n  slip-ratio 1");
        let c = ip("192.0.2.1");
        let full = response("a.example", 1, 0, 3, Some((6, "example")), true);
        let mut first = full.clone();
        assert!(r.response(&mut first, c));
        assert_eq!(first, full, "the allowance's response is untouched");
        let mut slipped = full.clone();
        assert!(r.response(&mut slipped, c));
        let question_end = wire::question_end(&full).unwrap();
        let mut expected = full[..question_end].to_vec();
        expected[2] |= 0x02;
        expected[6..12].copy_from_slice(&[0, 0, 0, 0, 0, 1]);
        expected.extend_from_slice(&wire::opt(1232, 0, false));
        assert_eq!(slipped, expected);
        // Without OPT: header and question only; rcode and flags kept.
        let mut nx = response("b.example", 1, 3, 0, Some((6, "example")), false);
        let mut again = nx.clone();
        assert!(r.response(&mut nx, c));
        assert!(r.response(&mut again, c));
        assert_eq!(again.len(), wire::question_end(&again).unwrap());
        assert_eq!(&again[2..12], &[0x86, 3, 0, 1, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn report_only_counts_and_answers() {
        let r = rrl("  responses-per-second 1\n  requests-per-second 1\n  report-only");
        let c = ip("203.0.113.77");
        let exceeded = |requests: bool| {
            let text = crate::metrics::metrics().render(&[]);
            let name = if requests { "requests" } else { "responses" };
            let line = format!("coredns_rrl_{name}_exceeded_total{{client_ip=\"203.0.113.77\"}} ");
            text.lines()
                .find_map(|l| l.strip_prefix(&line))
                .map_or(0, |v| v.parse::<u64>().unwrap())
        };
        for _ in 0..10 {
            let m = response("a.example", 1, 0, 1, None, false);
            assert!(r.request(&m, c));
            let mut m2 = m.clone();
            assert!(r.response(&mut m2, c));
            assert_eq!(m2, m);
        }
        assert_eq!(exceeded(false), 9);
        assert_eq!(exceeded(true), 9);
    }

    #[test]
    fn requests_are_limited_per_client_whatever_they_ask() {
        let r = rrl("  requests-per-second 5");
        let c = ip("192.0.2.1");
        let asked: Vec<bool> = (0..8)
            .map(|i| r.request(&response(&format!("n{i}.example"), 1, 0, 0, None, false), c))
            .collect();
        assert_eq!(asked, [true, true, true, true, true, false, false, false]);
        assert!(r.request(
            &response("n.example", 1, 0, 0, None, false),
            ip("192.0.3.1")
        ));
        // Responses are not limited without their allowance.
        assert!(r.response(&mut response("n.example", 1, 0, 1, None, false), c));
    }

    #[test]
    fn the_table_never_grows_and_keeps_the_accounts_in_debt() {
        let r = rrl("  responses-per-second 10\n  max-table-size 64");
        assert_eq!(r.table.capacity(), 64);
        // A client in debt.
        let attacker = r.key(ip("198.51.100.1"), Category::Response, 1, b"\x01a\x00");
        assert_eq!(burst(&r, attacker, 50, 0), [10, 40, 0]);
        // Thousands of other clients pass through, once each.
        for i in 0..10_000u32 {
            let client = IpAddr::from((i << 8).to_be_bytes());
            let key = r.key(client, Category::Response, 1, b"\x01a\x00");
            assert_eq!(burst(&r, key, 1, 0), [1, 0, 0]);
            assert!(r.table.len() <= 64);
        }
        assert_eq!(r.table.len(), 64);
        // Each of them has more credit than the attacker, who is still limited.
        assert_eq!(burst(&r, attacker, 1, 0), [0, 1, 0]);
        // Tables smaller than a bucket, and sizes that are not a multiple of one.
        for (size, capacity) in [(1, 1), (5, 5), (8, 8), (20, 16), (100_000, 100_000)] {
            assert_eq!(Table::new(size).capacity(), capacity, "{size}");
        }
        let tiny = rrl("  responses-per-second 10\n  max-table-size 1");
        assert_eq!(burst(&tiny, 1, 20, 0), [10, 10, 0]);
        assert_eq!(burst(&tiny, 2, 20, 0), [10, 10, 0], "took the only place");
    }

    #[test]
    fn shared_by_threads_without_losing_a_debit() {
        let r = std::sync::Arc::new(rrl("  responses-per-second 100\n  window 60"));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let r = std::sync::Arc::clone(&r);
                std::thread::spawn(move || burst(&r, 42, 1000, 0))
            })
            .collect();
        let total = threads
            .into_iter()
            .map(|t| t.join().unwrap()[0])
            .sum::<usize>();
        assert_eq!(total, 100);
    }

    #[test]
    fn damaged_messages_are_not_limited_and_never_panic() {
        let r = rrl("  responses-per-second 1\n  slip-ratio 1\n  requests-per-second 1");
        let c = ip("192.0.2.1");
        let good = response("a.example", 1, 3, 0, Some((6, "example")), true);
        for len in 0..good.len() {
            let mut cut = good[..len].to_vec();
            let _ = r.response(&mut cut, c);
            let _ = r.request(&good[..len], c);
        }
        // A pointer loop in the authority owner, and one in the question.
        let mut looped = response("a.example", 1, 3, 0, Some((6, "example")), false);
        let at = wire::question_end(&looped).unwrap();
        looped[at] = 0xC0;
        looped[at + 1] = at as u8;
        for _ in 0..3 {
            let _ = r.response(&mut looped.clone(), c);
        }
        let mut q = vec![0, 0, 0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xC0, 12, 0, 1, 0, 1];
        assert!(r.response(&mut q, c), "no question to read");
    }
}
