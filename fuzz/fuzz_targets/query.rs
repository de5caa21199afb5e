#![no_main]
//! `cargo fuzz run query -s none`: see clusterdns::fuzzing::query.

libfuzzer_sys::fuzz_target!(|data: &[u8]| clusterdns::fuzzing::query(data));
