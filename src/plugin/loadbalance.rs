//! The `loadbalance` plugin (`round_robin`): address records come in a random order in every
//! successful response, however it was made: from the table, on the fast path, from the cache
//! or fresh from upstream, as CoreDNS's `loadbalance` shuffles every response it writes.

use hickory_proto::op::ResponseCode;

use super::setup::{Building, Context, Setup, SetupError};
use super::{Phases, Plugin, Random, Reply};
use crate::corefile::{ConfigError, Directive, directive_err};
use crate::wire;

#[derive(Debug, Default)]
pub struct Loadbalance;

impl Phases for Loadbalance {
    fn finish(&self, reply: &mut Reply, random: &mut Random<'_>) {
        if reply.rcode == ResponseCode::NoError && reply.answers.count > 1 {
            wire::shuffle_addresses(&mut reply.answers, &mut random.draw());
        }
    }

    fn finish_wire(&self, message: &mut [u8], random: &mut Random<'_>) {
        wire::shuffle_message_addresses(message, || random.draw());
    }
}

impl Setup for Loadbalance {
    /// `loadbalance [round_robin]`.
    fn parse(d: &Directive, _: &Context<'_>) -> Result<Self, ConfigError> {
        if !matches!(d.args.as_slice(), [] | [_])
            || d.args.first().is_some_and(|p| p != "round_robin")
        {
            return Err(directive_err(
                d,
                "loadbalance",
                "only the round_robin policy is supported",
            ));
        }
        Ok(Loadbalance)
    }

    fn build(&self, b: &mut Building<'_>) -> Result<(), SetupError> {
        b.chain.push(Plugin::Loadbalance(Loadbalance));
        Ok(())
    }
}
